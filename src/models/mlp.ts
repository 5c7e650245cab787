/**
 * The residual MLP classifier: a small, documented family for the vision zoo (see README.md,
 * "Residual MLP classifier format"). An input projection, a stack of equal-width pre-norm
 * residual blocks h <- h + fc2(act(fc1(norm(h)))) (He et al. 2016, "Identity Mappings in Deep
 * Residual Networks", section 3, full pre-activation), a final norm, and one or more named
 * classification heads. fc1 widens the stream to `intermediate_size` (default `hidden_size`) and
 * fc2 maps it back, so blocks are hidden-to-hidden whatever their inner width. Blocks are the
 * layers of a data-flow merge, as decoder layers are for the Llama family.
 */
import { z } from 'zod';
import { tf } from './backend.ts';
import { InputError, NotSupportedError, ShapeMismatchError } from '../errors.ts';
import { ModelConfigError } from './llama-config.ts';
import { pathSource, readChecked, type WeightSource } from './weights.ts';

export const MLP_ARCHITECTURE = 'EvomergeResidualMLP';

const headSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9_-]+$/, 'use letters, digits, _ and - only (it is part of tensor names)'),
  num_classes: z.number().int().min(2),
  labels: z.array(z.string()).optional(),
});

export const residualMlpConfigSchema = z.object({
  architectures: z.array(z.string()).min(1),
  model_type: z.string().optional(),
  input_size: z.number().int().positive(),
  hidden_size: z.number().int().positive(),
  /** Width of fc1's output inside each block; absent means hidden_size. */
  intermediate_size: z.number().int().min(1).optional(),
  num_blocks: z.number().int().nonnegative(),
  activation: z.enum(['relu', 'gelu', 'silu', 'tanh']).default('relu'),
  norm: z.enum(['layernorm', 'none']).default('layernorm'),
  layer_norm_eps: z.number().positive().default(1e-5),
  input_scale: z.number().default(1),
  input_offset: z.number().default(0),
  heads: z.array(headSchema).min(1),
}).loose();

export type ResidualMlpConfigJson = z.input<typeof residualMlpConfigSchema>;

export interface ResidualMlpConfig {
  inputSize: number;
  hidden: number;
  /** Width of fc1's output (fc2's input) in every block. */
  intermediate: number;
  blocks: number;
  activation: 'relu' | 'gelu' | 'silu' | 'tanh';
  norm: 'layernorm' | 'none';
  eps: number;
  inputScale: number;
  inputOffset: number;
  heads: Array<{ name: string; classes: number; labels?: string[] }>;
}

export function parseResidualMlpConfig(raw: unknown, file = 'config.json'): ResidualMlpConfig {
  const parsed = residualMlpConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ModelConfigError(file, issue.path.join('.') || '(root)', `is invalid: ${issue.message}`);
  }
  const c = parsed.data;
  if (!c.architectures.includes(MLP_ARCHITECTURE)) {
    throw new NotSupportedError('E_ARCH_UNSUPPORTED', `${file}: architectures ${JSON.stringify(c.architectures)} is not ${MLP_ARCHITECTURE}`);
  }
  const names = new Set<string>();
  c.heads.forEach((h, i) => {
    if (names.has(h.name)) throw new ModelConfigError(file, `heads.${i}.name`, `'${h.name}' is used twice; head names must be unique`);
    names.add(h.name);
    if (h.labels && h.labels.length !== h.num_classes) throw new ModelConfigError(file, `heads.${i}.labels`, `has ${h.labels.length} entries but num_classes is ${h.num_classes}`);
  });
  return {
    inputSize: c.input_size,
    hidden: c.hidden_size,
    intermediate: c.intermediate_size ?? c.hidden_size,
    blocks: c.num_blocks,
    activation: c.activation,
    norm: c.norm,
    eps: c.layer_norm_eps,
    inputScale: c.input_scale,
    inputOffset: c.input_offset,
    heads: c.heads.map((h) => ({ name: h.name, classes: h.num_classes, ...(h.labels ? { labels: h.labels } : {}) })),
  };
}

/**
 * Tensor names and shapes of a residual MLP checkpoint, in a stable order. Linear weights are
 * [out, in], the layout of PyTorch's nn.Linear (https://pytorch.org/docs/stable/generated/torch.nn.Linear.html).
 */
export function residualMlpTensorShapes(c: ResidualMlpConfig): Array<{ name: string; shape: number[] }> {
  const W = c.hidden;
  const I = c.intermediate;
  const out: Array<{ name: string; shape: number[] }> = [
    { name: 'input.weight', shape: [W, c.inputSize] },
    { name: 'input.bias', shape: [W] },
  ];
  for (let i = 0; i < c.blocks; i++) {
    if (c.norm === 'layernorm') out.push({ name: `blocks.${i}.norm.weight`, shape: [W] }, { name: `blocks.${i}.norm.bias`, shape: [W] });
    out.push(
      { name: `blocks.${i}.fc1.weight`, shape: [I, W] }, { name: `blocks.${i}.fc1.bias`, shape: [I] },
      { name: `blocks.${i}.fc2.weight`, shape: [W, I] }, { name: `blocks.${i}.fc2.bias`, shape: [W] },
    );
  }
  if (c.norm === 'layernorm') out.push({ name: 'norm.weight', shape: [W] }, { name: 'norm.bias', shape: [W] });
  for (const h of c.heads) out.push({ name: `heads.${h.name}.weight`, shape: [h.classes, W] }, { name: `heads.${h.name}.bias`, shape: [h.classes] });
  return out;
}

export interface MlpBlock {
  norm: { w: tf.Tensor1D; b: tf.Tensor1D } | null;
  /** Weights pre-transposed to [in, out] at upload, so the hot loop multiplies without transposes. */
  w1: tf.Tensor2D;
  b1: tf.Tensor1D;
  w2: tf.Tensor2D;
  b2: tf.Tensor1D;
  config: ResidualMlpConfig;
}

export interface MlpEnds {
  win: tf.Tensor2D;
  bin: tf.Tensor1D;
  norm: { w: tf.Tensor1D; b: tf.Tensor1D } | null;
  heads: Map<string, { w: tf.Tensor2D; b: tf.Tensor1D; classes: number }>;
  config: ResidualMlpConfig;
}

export interface Classifier {
  readonly kind: 'classifier';
  readonly config: ResidualMlpConfig;
  /** Logits of each head for `n` inputs given row-major as [n, inputSize] (raw values: the model's input_scale and input_offset apply). */
  logits(x: Float32Array | tf.Tensor2D, n?: number): Promise<Map<string, Float32Array>>;
  /** Arg-max class per input, for each head (computed on the backend; only n ints come back). */
  predict(x: Float32Array | tf.Tensor2D, n?: number): Promise<Map<string, Int32Array>>;
  dispose(): void;
}

/** The family's activation, shared with the zoo's trainer so training and inference agree. */
export function mlpActivation<T extends tf.Tensor>(x: T, a: ResidualMlpConfig['activation']): T {
  switch (a) {
    case 'relu':
      return tf.relu(x);
    case 'tanh':
      return tf.tanh(x);
    case 'silu':
      return tf.mul(x, tf.sigmoid(x));
    case 'gelu':
      // exact gelu x * Phi(x) (Hendrycks and Gimpel 2016)
      return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
  }
}

/** LayerNorm (Ba et al. 2016, eq. 4) over the last axis, with the biased variance as in PyTorch. */
function layerNorm(x: tf.Tensor2D, n: { w: tf.Tensor1D; b: tf.Tensor1D }, eps: number): tf.Tensor2D {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, eps))), n.w), n.b) as tf.Tensor2D;
}

function dense(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D, activation?: ResidualMlpConfig['activation']): tf.Tensor2D {
  if (activation === 'relu') return tf.fused.matMul({ a: x, b: w, bias: b, activation: 'relu' }) as tf.Tensor2D;
  const y = tf.fused.matMul({ a: x, b: w, bias: b }) as tf.Tensor2D;
  return activation ? mlpActivation(y, activation) : y;
}

export interface MlpPathStep {
  block: MlpBlock;
  scale: number;
}

/** A classifier over a path of blocks; `ResidualMlp` is the plain case. */
export class MlpPathModel implements Classifier {
  readonly kind = 'classifier' as const;
  readonly config: ResidualMlpConfig;
  readonly inputEnds: MlpEnds;
  readonly headEnds: MlpEnds;
  readonly path: readonly MlpPathStep[];
  private readonly owned: tf.Tensor[];

  constructor(options: { input: MlpEnds; head: MlpEnds; path: MlpPathStep[]; owned?: tf.Tensor[] }) {
    this.inputEnds = options.input;
    this.headEnds = options.head;
    this.path = options.path;
    this.config = options.head.config;
    this.owned = options.owned ?? [];
  }

  private input(x: Float32Array | tf.Tensor2D, n?: number): tf.Tensor2D {
    const inSize = this.inputEnds.config.inputSize;
    if (x instanceof Float32Array) {
      const rows = n ?? x.length / inSize;
      if (!Number.isInteger(rows) || rows * inSize !== x.length) {
        throw new ShapeMismatchError(`classifier input has ${x.length} values, not a multiple of input_size ${inSize}`);
      }
      return tf.tensor2d(x, [rows, inSize]);
    }
    if (x.shape[1] !== inSize) throw new ShapeMismatchError(`classifier input has ${x.shape[1]} features per row but the model's input_size is ${inSize}`);
    return x;
  }

  /** Head logits as tensors; call inside a tidy. */
  forward(x: tf.Tensor2D): Map<string, tf.Tensor2D> {
    const e = this.inputEnds;
    let input = x;
    if (e.config.inputScale !== 1) input = tf.mul(input, e.config.inputScale) as tf.Tensor2D;
    if (e.config.inputOffset !== 0) input = tf.add(input, e.config.inputOffset) as tf.Tensor2D;
    let h = dense(input, e.win, e.bin);
    for (const { block, scale } of this.path) {
      if (scale !== 1) h = tf.mul(h, scale) as tf.Tensor2D;
      const n = block.norm ? layerNorm(h, block.norm, block.config.eps) : h;
      h = tf.add(h, dense(dense(n, block.w1, block.b1, block.config.activation), block.w2, block.b2)) as tf.Tensor2D;
    }
    const hd = this.headEnds;
    if (hd.norm) h = layerNorm(h, hd.norm, hd.config.eps);
    const out = new Map<string, tf.Tensor2D>();
    for (const [name, head] of hd.heads) out.set(name, dense(h, head.w, head.b));
    return out;
  }

  async logits(x: Float32Array | tf.Tensor2D, n?: number): Promise<Map<string, Float32Array>> {
    const heads = tf.tidy(() => [...this.forward(this.input(x, n)).values()]);
    const names = [...this.headEnds.heads.keys()];
    const out = new Map<string, Float32Array>();
    for (let i = 0; i < heads.length; i++) out.set(names[i]!, (await heads[i]!.data()) as Float32Array);
    heads.forEach((t) => t.dispose());
    return out;
  }

  async predict(x: Float32Array | tf.Tensor2D, n?: number): Promise<Map<string, Int32Array>> {
    const heads = tf.tidy(() => [...this.forward(this.input(x, n)).values()].map((l) => tf.argMax(l, 1)));
    const names = [...this.headEnds.heads.keys()];
    const out = new Map<string, Int32Array>();
    for (let i = 0; i < heads.length; i++) out.set(names[i]!, (await heads[i]!.data()) as Int32Array);
    heads.forEach((t) => t.dispose());
    return out;
  }

  dispose(): void {
    for (const t of this.owned) if (!t.isDisposed) t.dispose();
  }
}

function transposed(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}

export class ResidualMlp extends MlpPathModel {
  readonly blocks: readonly MlpBlock[];
  readonly ends: MlpEnds;

  private constructor(ends: MlpEnds, blocks: MlpBlock[], owned: tf.Tensor[]) {
    super({ input: ends, head: ends, path: blocks.map((block) => ({ block, scale: 1 })), owned });
    this.blocks = blocks;
    this.ends = ends;
  }

  /** Uploads the tensors named in the README's format from a checkpoint or in-memory merge. */
  static load(config: ResidualMlpConfig, source: WeightSource): ResidualMlp {
    const owned: tf.Tensor[] = [];
    const W = config.hidden;
    const I = config.intermediate;
    const vec = (name: string, n: number): tf.Tensor1D => {
      const t = tf.tensor1d(readChecked(source, name, [n]));
      owned.push(t);
      return t;
    };
    // PyTorch's nn.Linear layout [out, in] on disk; [in, out] on the backend.
    const mat = (name: string, out: number, inp: number): tf.Tensor2D => {
      const t = tf.tensor2d(transposed(readChecked(source, name, [out, inp]), out, inp), [inp, out]);
      owned.push(t);
      return t;
    };
    const ln = (p: string) => (config.norm === 'layernorm' ? { w: vec(`${p}.weight`, W), b: vec(`${p}.bias`, W) } : null);
    try {
      const ends: MlpEnds = {
        win: mat('input.weight', W, config.inputSize),
        bin: vec('input.bias', W),
        norm: null,
        heads: new Map(),
        config,
      };
      const blocks: MlpBlock[] = [];
      for (let i = 0; i < config.blocks; i++) {
        blocks.push({
          norm: ln(`blocks.${i}.norm`),
          w1: mat(`blocks.${i}.fc1.weight`, I, W), b1: vec(`blocks.${i}.fc1.bias`, I),
          w2: mat(`blocks.${i}.fc2.weight`, W, I), b2: vec(`blocks.${i}.fc2.bias`, W),
          config,
        });
      }
      ends.norm = ln('norm');
      for (const h of config.heads) ends.heads.set(h.name, { w: mat(`heads.${h.name}.weight`, h.classes, W), b: vec(`heads.${h.name}.bias`, h.classes), classes: h.classes });
      return new ResidualMlp(ends, blocks, owned);
    } catch (err) {
      owned.forEach((t) => t.dispose());
      throw err;
    }
  }
}

/**
 * A data-flow path over blocks of several residual MLPs of one hidden width (see composeLlamaPath).
 * Only hidden_size must agree: a block maps hidden to hidden, so its intermediate width is its own.
 */
export function composeMlpPath(models: readonly ResidualMlp[], steps: ReadonlyArray<{ source: number; layer: number; scale: number }>, options: { embeddings?: number; head?: number } = {}): MlpPathModel {
  const e = options.embeddings ?? 0;
  const h = options.head ?? e;
  const pick = (i: number, what: string) => pathSource(models, i, what);
  const input = pick(e, 'embeddings');
  const head = pick(h, 'head');
  const W = input.config.hidden;
  const path = steps.map((s, i): MlpPathStep => {
    const m = pick(s.source, `step ${i}`);
    const block = m.blocks[s.layer];
    if (!block) throw new InputError('E_PATH_LAYER', `layer path: step ${i} names block ${s.layer} of source ${s.source}, which has ${m.blocks.length} blocks`);
    if (m.config.hidden !== W) throw new ShapeMismatchError(`layer path: step ${i} (source ${s.source}) has hidden_size ${m.config.hidden} but the input's source has ${W}`);
    if (!Number.isFinite(s.scale)) throw new InputError('E_PATH_SCALE', `layer path: step ${i} has scale ${s.scale}; scales must be finite numbers`);
    return { block, scale: s.scale };
  });
  if (head.config.hidden !== W) throw new ShapeMismatchError(`layer path: the head's source has hidden_size ${head.config.hidden} but the input's source has ${W}`);
  return new MlpPathModel({ input: input.ends, head: head.ends, path });
}
