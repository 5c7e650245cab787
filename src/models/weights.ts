/**
 * Where a model's weights come from. A checkpoint on disk (`TensorSource` of src/checkpoint/)
 * and merged tensors held in memory by the search both fit this one small interface, so a
 * merged candidate reaches the backend without a disk round trip.
 */
import { InputError, MissingTensorError, ShapeMismatchError } from '../errors.ts';
import { Rng, deriveSeed } from '../tensor/rng.ts';

export interface WeightSource {
  /** Names the source in error messages (a path, or a label such as `candidate 17`). */
  readonly path: string;
  has(name: string): boolean;
  /** Float32 values in row-major order (PyTorch layout: linear weights are [out, in]). */
  readFloat32(name: string): Float32Array;
  /** Shape when the source knows it; in-memory maps do not, and only the length is checked. */
  info?(name: string): { shape: number[] };
}

/** Merged tensors held in memory, keyed by Hugging Face tensor name. */
export function weightsFromMap(tensors: ReadonlyMap<string, Float32Array>, label = 'in-memory weights'): WeightSource {
  return {
    path: label,
    has: (name) => tensors.has(name),
    readFloat32(name) {
      const t = tensors.get(name);
      if (!t) throw new MissingTensorError(`tensor ${name} is not in ${label}`);
      return t;
    },
  };
}

/** Reads a tensor and checks it against the shape the model's config implies. */
export function readChecked(source: WeightSource, name: string, shape: readonly number[]): Float32Array {
  if (!source.has(name)) {
    throw new MissingTensorError(`tensor ${name} [${shape.join(',')}] is missing from ${source.path}; the config implies it (is this checkpoint of the architecture its config.json names?)`);
  }
  if (source.info) {
    const actual = source.info(name).shape;
    if (actual.length !== shape.length || actual.some((d, i) => d !== shape[i])) {
      throw new ShapeMismatchError(`tensor ${name} is [${actual.join(',')}] in ${source.path} but the config implies [${shape.join(',')}]; check config.json against the weights`);
    }
  }
  const data = source.readFloat32(name);
  const n = shape.reduce((a, b) => a * b, 1);
  if (data.length !== n) {
    throw new ShapeMismatchError(`tensor ${name} has ${data.length} values in ${source.path} but the config implies [${shape.join(',')}] (${n} values)`);
  }
  return data;
}

/**
 * Random weights for generated benchmark and test models: N(0, std^2) for matrices, and
 * 1 + N(0, std^2) for vectors whose name ends in `norm.weight` or `layernorm.weight`, so norms
 * start near identity. Reproducible from `seed` through the project's seeded streams.
 */
export function randomWeights(shapes: ReadonlyArray<{ name: string; shape: readonly number[] }>, seed: number, std = 0.1): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const { name, shape } of shapes) {
    const rng = Rng.seeded(deriveSeed(seed, name));
    const n = shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    const offset = /norm\.weight$/.test(name) ? 1 : 0;
    for (let i = 0; i < n; i++) a[i] = offset + std * rng.normal();
    out.set(name, a);
  }
  return out;
}

/** The source model `i` of a layer path (Akiba et al. 2024, section 3.2), or an error naming the step. */
export function pathSource<M>(models: readonly M[], i: number, what: string): M {
  const m = models[i];
  if (!m) throw new InputError('E_PATH_SOURCE', `layer path: ${what} names source ${i} but only ${models.length} models were given`);
  return m;
}
