/**
 * Executing one tensor task: read its source tensors through a `TensorReader`, run the method's
 * per-tensor function, return float32 data. The reader abstracts where tensors live: checkpoints
 * on disk (merge to disk), or arrays already in memory, e.g. SharedArrayBuffer-backed copies that
 * search workers view without copying (`memoryReader`), so a candidate is merged without a disk
 * round trip and with nothing but its own output allocated.
 */
import type { HalfInput, LoraFactorsInput, MergeMethod, TensorInput } from '../methods/index.ts';
import type { HalfSource } from '../tensor/wasm-half.ts';
import type { TensorTask } from './plan.ts';
import { layoutRows } from './vocab.ts';

export interface TensorReader {
  /**
   * Float32 data of a source tensor (may be cached, shared or pooled; never written). A pooling
   * reader (SourceSet's) may reuse the arrays it returned once `reset` is called, which
   * computeTensor does before reading a task's inputs: keep a read array past that only as a copy.
   */
  read(model: string, tensor: string): Float32Array;
  /**
   * A source tensor's stored bits when it is stored as BF16 or F16, as a source read block by
   * block on demand (valid until `reset`), else null. A reader with this method pools `read`.
   */
  readHalf?(model: string, tensor: string): { dtype: 'BF16' | 'F16'; source: HalfSource } | null;
  /** The arrays returned so far may be reused (a new tensor task begins). */
  reset?(): void;
  /** Whether `a` is one of this reader's pooled arrays, which a method may overwrite (TensorInput.scratchModels). */
  owns?(a: Float32Array): boolean;
  /** LoRA factors of an adapter for a base tensor. */
  loraFactors?(adapter: string, tensor: string): LoraFactorsInput & { transposed?: boolean };
  /** LoRA delta materialised as the base tensor's shape (used for transposed factors). */
  loraDelta?(adapter: string, tensor: string): Float32Array;
}

/** A reader over tensors already in memory: `sources.get(model).get(tensor)`. */
export function memoryReader(sources: ReadonlyMap<string, ReadonlyMap<string, Float32Array>>): TensorReader {
  return {
    read(model, tensor) {
      const t = sources.get(model)?.get(tensor);
      if (!t) throw new Error(`memoryReader: ${model} has no tensor ${tensor} loaded`);
      return t;
    },
  };
}

/**
 * Compute one merged tensor (float32). `out` may be supplied to avoid an allocation. The seed is
 * the recipe's (or an override): random masks are seeded by (seed, output tensor name, model index).
 */
export function computeTensor(task: TensorTask, method: MergeMethod, reader: TensorReader, seed: string | number, out?: Float32Array): Float32Array {
  if (task.kind === 'copy') throw new RangeError(`computeTensor: ${task.name} is a copy task (non-float); copy its raw bytes`);
  reader.reset?.();
  if (method.readsHalf && reader.readHalf && !task.rows && !task.lora) {
    const half = readHalfInputs(task, reader);
    if (half) return method.merge(lazyInput(task, reader, half), task.global, task.perModel, { seed }, out);
  }
  let base = task.base ? reader.read(task.base.model, task.base.tensor) : null;
  let models = task.models.map((r) => reader.read(r.model, r.tensor));
  let laidOut = false;
  if (task.rows) {
    // embedding rows in the output vocabulary (vocab.ts), each input a new array of its own
    const inputs = [...(base ? [base] : []), ...models];
    const cols = task.shape[1]!;
    const arranged = inputs.map((_, i) => layoutRows(task.rows!, i, (j) => inputs[j]!, cols));
    base = base ? arranged[0]! : null;
    models = arranged.slice(base ? 1 : 0);
    laidOut = true;
  }
  let lora: Array<LoraFactorsInput | null> | undefined;
  if (task.lora) {
    lora = task.lora.map((adapter) => {
      if (!adapter) return null;
      const f = reader.loraFactors!(adapter, task.name);
      // factors stored transposed (embeddings, Conv1D): hand the materialised delta instead
      return f.transposed ? { ...f, delta: reader.loraDelta!(adapter, task.name) } : f;
    });
  }
  const scratchModels = laidOut || (models.length > 0 && reader.owns !== undefined && models.every((a) => reader.owns!(a)));
  return method.merge({ name: task.name, shape: task.shape, base, models, modelIndex: task.modelIndex, lora, scratchModels }, task.global, task.perModel, { seed }, out);
}

/** The task's inputs as half bits when base and models are all stored in one half dtype; else null. */
function readHalfInputs(task: TensorTask, reader: TensorReader): HalfInput | null {
  const base = task.base ? reader.readHalf!(task.base.model, task.base.tensor) : null;
  if (task.base && !base) return null;
  const models: HalfSource[] = [];
  let dtype = base?.dtype;
  for (const r of task.models) {
    const h = reader.readHalf!(r.model, r.tensor);
    if (!h || (dtype !== undefined && h.dtype !== dtype)) return null;
    dtype = h.dtype;
    models.push(h.source);
  }
  return dtype === undefined ? null : { dtype, base: base?.source ?? null, models };
}

/**
 * A method's input holding the half bits, whose float32 `base` and `models` are read (pooled by
 * the reader, hence scratch) only if the method asks for them.
 */
function lazyInput(task: TensorTask, reader: TensorReader, half: HalfInput): TensorInput {
  let base: Float32Array | null | undefined;
  let models: Float32Array[] | undefined;
  return {
    name: task.name,
    shape: task.shape,
    modelIndex: task.modelIndex,
    half,
    scratchModels: true,
    get base() {
      if (base === undefined) base = task.base ? reader.read(task.base.model, task.base.tensor) : null;
      return base;
    },
    get models() {
      models ??= task.models.map((r) => reader.read(r.model, r.tensor));
      return models;
    },
  };
}
