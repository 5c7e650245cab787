/**
 * Training of small Llama-family causal LMs (the lang-math and fusion zoos, and the fused targets
 * of src/fuse/), with tfjs-core's autodiff and Adam. The forward pass follows src/models/llama.ts
 * (Touvron et al. 2023, section 2.2: pre-norm RMSNorm, rotary embeddings in the rotate-half
 * layout, SwiGLU MLP, causal attention) and a test checks it against `LlamaModel`'s logits. Two
 * differences serve training only: token embeddings are a one-hot matrix product, because the
 * wasm backend has no gradient for `gather`, and every product is plain (see ./ops.ts). Matrices
 * live as [in, out]; export transposes them back.
 */
import { InputError } from '../errors.ts';
import { tf } from '../models/backend.ts';
import { parseLlamaConfig, ropeInverseFrequencies, type LlamaConfig } from '../models/llama-config.ts';
import { llamaShapesOf } from '../models/llama-layout.ts';
import { Rng, deriveSeed } from '../tensor/rng.ts';
import { batchMatmulPlain, matmulPlain, softmaxCrossEntropy, transpose } from './ops.ts';

/** Names stored [out, in] on disk and [in, out] while training. */
function isMatrix(name: string, shape: readonly number[]): boolean {
  return shape.length === 2 && name !== 'model.embed_tokens.weight';
}

/**
 * Initial weights as in transformers' `LlamaPreTrainedModel._init_weights`: N(0, 0.02^2) for every
 * matrix (`initializer_range` 0.02), ones for RMSNorm weights.
 */
export function initialLlamaWeights(config: Record<string, unknown>, seed: string, std = 0.02): Map<string, Float32Array> {
  const c = parseLlamaConfig(config);
  const out = new Map<string, Float32Array>();
  for (const { name, shape } of llamaShapesOf(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    if (name.endsWith('norm.weight')) a.fill(1);
    else {
      const g = Rng.seeded(deriveSeed(seed, name)).fillNormal(new Float64Array(n));
      for (let i = 0; i < n; i++) a[i] = std * g[i]!;
    }
    out.set(name, a);
  }
  return out;
}

/** RMSNorm (Zhang and Sennrich 2019, eq. 4). */
function rmsNorm(x: tf.Tensor2D, w: tf.Tensor, eps: number): tf.Tensor2D {
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps))), w);
}

export interface LmPhase {
  /** Token sequences of length T + 1 (inputs are the first T, targets the last T). */
  sample: (rng: Rng) => Int32Array;
  steps: number;
  batch: number;
  learningRate: number;
  seed: string;
  trainable?: (name: string) => boolean;
}

/** A soft next-token target for `LlamaTrainer.step`: `dense` is [B*T, V], each row a distribution over the vocabulary. */
export interface SoftTarget {
  /** Weight of the gold cross-entropy in [0, 1]; the soft target gets 1 - lambda. */
  lambda: number;
  dense: Float32Array;
}

export class LlamaTrainer {
  readonly config: LlamaConfig;
  private readonly vars = new Map<string, tf.Variable>();
  private readonly shapes: Array<{ name: string; shape: number[] }>;
  private readonly rope = new Map<number, { cos: tf.Tensor2D; sin: tf.Tensor2D; mask: tf.Tensor2D; swap: tf.Tensor2D }>();

  constructor(configJson: Record<string, unknown>, weights: ReadonlyMap<string, Float32Array>) {
    this.config = parseLlamaConfig(configJson);
    const c = this.config;
    if (c.qkvBias || c.oBias || c.mlpBias || c.tieWordEmbeddings || c.activation !== 'silu' || c.rope.type !== 'default' || c.windows.some((w) => w !== null)) {
      throw new InputError('E_ZOO_TRAIN', 'training supports plain Llama configs only (no biases, untied embeddings, silu, default rope, no sliding window)');
    }
    this.shapes = llamaShapesOf(c);
    for (const { name, shape } of this.shapes) {
      const w = weights.get(name);
      if (!w) throw new InputError('E_MISSING_TENSOR', `training: tensor ${name} is missing from the initial weights`);
      const t = isMatrix(name, shape) ? tf.tensor2d(transpose(w, shape[0]!, shape[1]!), [shape[1]!, shape[0]!]) : tf.tensor(w, shape);
      this.vars.set(name, tf.variable(t, true));
      t.dispose();
    }
  }

  private v(name: string): tf.Tensor2D {
    return this.vars.get(name)! as unknown as tf.Tensor2D;
  }

  /** Rotary tables [T, D] (Su et al. 2021, eq. 34, rotate-half layout) and the causal mask [T, T], kept per length. */
  private tables(T: number) {
    let t = this.rope.get(T);
    if (!t) {
      const D = this.config.headDim;
      const half = D / 2;
      const inv = ropeInverseFrequencies(this.config.rope, T);
      const cos = new Float32Array(T * D);
      const sin = new Float32Array(T * D);
      for (let p = 0; p < T; p++) {
        for (let i = 0; i < half; i++) {
          const a = p * inv[i]!;
          cos[p * D + i] = Math.cos(a);
          cos[p * D + half + i] = Math.cos(a);
          sin[p * D + i] = -Math.sin(a);
          sin[p * D + half + i] = Math.sin(a);
        }
      }
      const P = new Float32Array(D * D);
      // (x P)_j = x_{j + half} for j < half and x_{j - half} after: rotate_half without its signs
      for (let j = 0; j < D; j++) P[((j + half) % D) * D + j] = 1;
      const mask = new Float32Array(T * T);
      for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) mask[i * T + j] = -1e9;
      // kept: the tables are made inside a step's tidy but reused by every later step
      t = { cos: tf.keep(tf.tensor2d(cos, [T, D])), sin: tf.keep(tf.tensor2d(sin, [T, D])), mask: tf.keep(tf.tensor2d(mask, [T, T])), swap: tf.keep(tf.tensor2d(P, [D, D])) };
      this.rope.set(T, t);
    }
    return t;
  }

  /** Logits [B*T, V] for token ids [B, T]; call inside a tidy. */
  forward(ids: tf.Tensor2D, B: number, T: number): tf.Tensor2D {
    const c = this.config;
    const { heads, kvHeads, headDim: D, vocabSize: V } = c;
    const { cos, sin, mask, swap } = this.tables(T);
    const groups = heads / kvHeads;
    // rotate_half as a product with the half-swap permutation (signs live in the sin table): no split and concat to differentiate
    const rot = (x: tf.Tensor4D) => {
      const [b, n, t] = x.shape;
      const swapped = tf.reshape(matmulPlain(tf.reshape(x, [b * n * t, D]) as tf.Tensor2D, swap), [b, n, t, D]);
      return tf.add(tf.mul(x, cos), tf.mul(swapped, sin)) as tf.Tensor4D;
    };
    const split = (x: tf.Tensor2D, n: number) => tf.transpose(tf.reshape(x, [B, T, n, D]), [0, 2, 1, 3]) as tf.Tensor4D;
    let x = matmulPlain(tf.cast(tf.oneHot(tf.reshape(ids, [B * T]) as tf.Tensor1D, V), 'float32') as tf.Tensor2D, this.v('model.embed_tokens.weight'));
    for (let l = 0; l < c.layers; l++) {
      const p = `model.layers.${l}.`;
      const h = rmsNorm(x, this.v(`${p}input_layernorm.weight`), c.rmsNormEps);
      const q = rot(split(matmulPlain(h, this.v(`${p}self_attn.q_proj.weight`)), heads));
      let k = rot(split(matmulPlain(h, this.v(`${p}self_attn.k_proj.weight`)), kvHeads));
      let v = split(matmulPlain(h, this.v(`${p}self_attn.v_proj.weight`)), kvHeads);
      if (groups > 1) {
        // grouped-query attention: query head i reads key-value head floor(i / groups)
        // (copies by concat: tfjs has no rank-5 gradient for tile)
        const repeat = (t: tf.Tensor4D) => { const e = tf.expandDims(t, 2); return tf.reshape(tf.concat(Array.from({ length: groups }, () => e), 2), [B, heads, T, D]) as tf.Tensor4D; };
        k = repeat(k);
        v = repeat(v);
      }
      const scores = tf.add(tf.mul(batchMatmulPlain(q, tf.transpose(k, [0, 1, 3, 2]) as tf.Tensor4D), 1 / Math.sqrt(D)), mask);
      const attn = batchMatmulPlain(tf.softmax(scores) as tf.Tensor4D, v);
      const merged = tf.reshape(tf.transpose(attn, [0, 2, 1, 3]), [B * T, heads * D]) as tf.Tensor2D;
      x = tf.add(x, matmulPlain(merged, this.v(`${p}self_attn.o_proj.weight`)));
      const h2 = rmsNorm(x, this.v(`${p}post_attention_layernorm.weight`), c.rmsNormEps);
      const gate = matmulPlain(h2, this.v(`${p}mlp.gate_proj.weight`));
      const up = matmulPlain(h2, this.v(`${p}mlp.up_proj.weight`));
      // SwiGLU (Shazeer 2020, eq. 5 with Swish_1 = silu)
      x = tf.add(x, matmulPlain(tf.mul(tf.mul(gate, tf.sigmoid(gate)), up), this.v(`${p}mlp.down_proj.weight`)));
    }
    return matmulPlain(rmsNorm(x, this.v('model.norm.weight'), c.rmsNormEps), this.v('lm_head.weight'));
  }

  /** The variables `trainable` selects (all by default), in the order of the checkpoint's tensors. */
  trainableVariables(trainable?: (name: string) => boolean): tf.Variable[] {
    return [...this.vars].filter(([n]) => trainable?.(n) ?? true).map(([, v]) => v);
  }

  /**
   * One Adam step on a batch of token sequences of length T + 1 (inputs the first T, gold the last
   * T); returns the loss tensor (the caller disposes it). Without `soft` the loss is the mean
   * next-token cross-entropy. With `soft` it is
   *   lambda * CE(gold) + (1 - lambda) * CE(soft target)
   * (FuseLLM, Wan et al. 2024, section 3.2: L = lambda L_CLM + (1 - lambda) L_Fusion, with the
   * fusion term a cross-entropy against the fused distribution as in the FuseLLM repository's
   * trainer). Cross-entropy is linear in its target, so the two terms are one cross-entropy
   * against the mixed target lambda * onehot(gold) + (1 - lambda) * q, whose rows still sum to 1
   * (softmaxCrossEntropy's gradient softmax - target needs that). At lambda = 1 the mixed target
   * is the one-hot exactly, so the step is the plain one bit for bit.
   */
  step(optimizer: tf.Optimizer, seqs: readonly Int32Array[], variables: tf.Variable[], soft?: SoftTarget): tf.Scalar {
    const B = seqs.length;
    const T = seqs[0]!.length - 1;
    const V = this.config.vocabSize;
    const inp = new Int32Array(B * T);
    const tgt = new Int32Array(B * T);
    seqs.forEach((s, b) => {
      if (s.length !== T + 1) throw new InputError('E_ZOO_TRAIN', `training: sequence ${b} of the batch has ${s.length} tokens but the first has ${T + 1}; a batch needs one length`);
      inp.set(s.subarray(0, T), b * T);
      tgt.set(s.subarray(1), b * T);
    });
    let mixed: Float32Array | null = null;
    if (soft) {
      if (soft.dense.length !== B * T * V) throw new InputError('E_ZOO_TRAIN', `training: the soft target has ${soft.dense.length} values but the batch needs ${B * T * V} ([${B * T}, ${V}])`);
      const { lambda, dense } = soft;
      mixed = new Float32Array(B * T * V);
      for (let r = 0; r < B * T; r++) {
        const o = r * V;
        for (let c = 0; c < V; c++) mixed[o + c] = (1 - lambda) * dense[o + c]!;
        mixed[o + tgt[r]!] = lambda + mixed[o + tgt[r]!]!;
      }
    }
    return tf.tidy(() => {
      const ids = tf.tensor2d(inp, [B, T], 'int32');
      const target = mixed ? tf.tensor2d(mixed, [B * T, V]) : (tf.cast(tf.oneHot(tf.tensor1d(tgt, 'int32'), V), 'float32') as tf.Tensor2D);
      const { value, grads } = tf.variableGrads(() => softmaxCrossEntropy(this.forward(ids, B, T), target), variables);
      optimizer.applyGradients(grads as unknown as Record<string, tf.Variable>);
      return value;
    });
  }

  /** Minibatch Adam on the mean next-token cross-entropy; returns the last loss read. */
  async train(phase: LmPhase, onStep?: (step: number, loss: number | null) => void): Promise<number> {
    const trainable = this.trainableVariables(phase.trainable);
    const optimizer = tf.train.adam(phase.learningRate);
    const rng = Rng.seeded(phase.seed);
    let last = NaN;
    for (let step = 0; step < phase.steps; step++) {
      const seqs = Array.from({ length: phase.batch }, () => phase.sample(rng));
      const lossT = this.step(optimizer, seqs, trainable);
      const want = step % 25 === 0 || step === phase.steps - 1;
      const loss = want ? lossT.dataSync()[0]! : null;
      lossT.dispose();
      if (loss !== null) last = loss;
      onStep?.(step + 1, loss);
      if (step % 5 === 4) await new Promise((r) => setImmediate(r));
    }
    optimizer.dispose();
    return last;
  }

  weights(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const { name, shape } of this.shapes) {
      const data = this.vars.get(name)!.dataSync() as Float32Array;
      out.set(name, isMatrix(name, shape) ? transpose(data, shape[1]!, shape[0]!) : Float32Array.from(data));
    }
    return out;
  }

  dispose(): void {
    for (const v of this.vars.values()) v.dispose();
    this.vars.clear();
    for (const t of this.rope.values()) for (const x of Object.values(t)) x.dispose();
    this.rope.clear();
  }
}
