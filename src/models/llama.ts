/**
 * The Llama family on TensorFlow.js: `LlamaForCausalLM`, `MistralForCausalLM` and
 * `Qwen2ForCausalLM` checkpoints in the Hugging Face layout.
 *
 * Architecture (Touvron et al. 2023, "LLaMA", section 2.2; semantics as in Hugging Face
 * transformers `models/llama/modeling_llama.py`): pre-norm decoder layers with RMSNorm (Zhang and
 * Sennrich 2019), rotary position embeddings in the rotate-half layout (Su et al. 2021, eq. 34),
 * SwiGLU MLP (Shazeer 2020), grouped-query attention (Ainslie et al. 2023) where query head h uses
 * key-value head floor(h / (heads / kv_heads)). Qwen2 adds biases to the q, k and v projections;
 * Mistral restricts attention to a sliding window (Jiang et al. 2023, section 2).
 *
 * A model is a set of uploaded tensors plus a *path*: the sequence of layers the hidden state goes
 * through, each with a scale on the hidden state entering it. A plain model is its own layers
 * with scale 1; a data-flow merge (Akiba et al. 2024, "Evolutionary Optimization of Model Merging
 * Recipes", section 3.2) is a path over layers of several models (see `composeLlamaPath`).
 */
import { z } from 'zod';
import { tf } from './backend.ts';
import { InputError, NotSupportedError, ShapeMismatchError } from '../errors.ts';
import { pathSource, readChecked, type WeightSource } from './weights.ts';
import type { TextTokenizer } from './tokenizer.ts';

export const LLAMA_ARCHITECTURES = ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM'] as const;
export type LlamaArchitecture = (typeof LLAMA_ARCHITECTURES)[number];

export class ModelConfigError extends InputError {
  constructor(file: string, field: string, message: string) {
    super('E_MODEL_CONFIG', `${file}: field '${field}' ${message}`);
  }
}

const ropeScalingSchema = z.object({
  rope_type: z.string().optional(),
  type: z.string().optional(),
  factor: z.number().positive().optional(),
  low_freq_factor: z.number().optional(),
  high_freq_factor: z.number().optional(),
  original_max_position_embeddings: z.number().int().positive().optional(),
}).loose();

const llamaConfigSchema = z.object({
  architectures: z.array(z.string()).min(1),
  vocab_size: z.number().int().positive(),
  hidden_size: z.number().int().positive(),
  intermediate_size: z.number().int().positive(),
  num_hidden_layers: z.number().int().positive(),
  num_attention_heads: z.number().int().positive(),
  num_key_value_heads: z.number().int().positive().nullish(),
  head_dim: z.number().int().positive().nullish(),
  rms_norm_eps: z.number().positive().default(1e-6),
  rope_theta: z.number().positive().default(10000),
  rope_scaling: ropeScalingSchema.nullish(),
  max_position_embeddings: z.number().int().positive().default(2048),
  tie_word_embeddings: z.boolean().default(false),
  hidden_act: z.string().default('silu'),
  attention_bias: z.boolean().default(false),
  mlp_bias: z.boolean().default(false),
  sliding_window: z.number().int().positive().nullish(),
  use_sliding_window: z.boolean().optional(),
  max_window_layers: z.number().int().nonnegative().optional(),
  layer_types: z.array(z.string()).optional(),
  bos_token_id: z.number().int().nullish(),
  eos_token_id: z.union([z.number().int(), z.array(z.number().int())]).nullish(),
}).loose();

export type RopeSettings =
  | { type: 'default'; theta: number; dim: number }
  | { type: 'linear'; theta: number; dim: number; factor: number }
  | { type: 'dynamic'; theta: number; dim: number; factor: number; maxPositions: number }
  | { type: 'llama3'; theta: number; dim: number; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

/** A parsed, validated config with every default filled in. */
export interface LlamaConfig {
  architecture: LlamaArchitecture;
  vocabSize: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  rmsNormEps: number;
  rope: RopeSettings;
  maxPositions: number;
  tieWordEmbeddings: boolean;
  activation: 'silu' | 'gelu' | 'gelu_tanh';
  /** Which projections carry biases. */
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
  /** Sliding window per layer (null: full causal attention). */
  windows: Array<number | null>;
  bosTokenId: number | null;
  eosTokenIds: number[];
}

/** Parses a Llama-family config.json; every error names the field. */
export function parseLlamaConfig(raw: unknown, file = 'config.json'): LlamaConfig {
  const parsed = llamaConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ModelConfigError(file, issue.path.join('.') || '(root)', `is invalid: ${issue.message}`);
  }
  const c = parsed.data;
  const architecture = c.architectures.find((a): a is LlamaArchitecture => (LLAMA_ARCHITECTURES as readonly string[]).includes(a));
  if (!architecture) {
    throw new NotSupportedError('E_ARCH_UNSUPPORTED', `${file}: architectures ${JSON.stringify(c.architectures)} is not supported; evomerge runs ${LLAMA_ARCHITECTURES.join(', ')} and EvomergeResidualMLP`);
  }
  const kvHeads = c.num_key_value_heads ?? c.num_attention_heads;
  if (c.num_attention_heads % kvHeads !== 0) {
    throw new ModelConfigError(file, 'num_key_value_heads', `(${kvHeads}) must divide num_attention_heads (${c.num_attention_heads})`);
  }
  const headDim = c.head_dim ?? c.hidden_size / c.num_attention_heads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new ModelConfigError(file, 'head_dim', `(${headDim}) must be an even integer (hidden_size / num_attention_heads when absent)`);
  }
  const activation = ({ silu: 'silu', swish: 'silu', gelu: 'gelu', gelu_pytorch_tanh: 'gelu_tanh', gelu_new: 'gelu_tanh' } as const)[c.hidden_act as 'silu'];
  if (!activation) throw new ModelConfigError(file, 'hidden_act', `'${c.hidden_act}' is not supported (silu, gelu, gelu_pytorch_tanh)`);

  const rope = parseRope(c.rope_scaling ?? null, c.rope_theta, headDim, c.max_position_embeddings, file);

  // Which layers slide: Mistral slides everywhere when sliding_window is set; Qwen2 only when
  // use_sliding_window is true, and then from layer max_window_layers on (transformers
  // `Qwen2Config.layer_types`); an explicit layer_types list wins.
  const windows: Array<number | null> = [];
  for (let i = 0; i < c.num_hidden_layers; i++) {
    let slides: boolean;
    if (c.layer_types) {
      const t = c.layer_types[i];
      if (t !== 'sliding_attention' && t !== 'full_attention') throw new ModelConfigError(file, `layer_types.${i}`, `'${t}' is not sliding_attention or full_attention`);
      slides = t === 'sliding_attention';
    } else if (architecture === 'Qwen2ForCausalLM') {
      slides = c.use_sliding_window === true && i >= (c.max_window_layers ?? 0);
    } else {
      slides = architecture === 'MistralForCausalLM' || c.use_sliding_window === true;
    }
    windows.push(slides && c.sliding_window ? c.sliding_window : null);
  }

  const eos = c.eos_token_id;
  return {
    architecture,
    vocabSize: c.vocab_size,
    hidden: c.hidden_size,
    intermediate: c.intermediate_size,
    layers: c.num_hidden_layers,
    heads: c.num_attention_heads,
    kvHeads,
    headDim,
    rmsNormEps: c.rms_norm_eps,
    rope,
    maxPositions: c.max_position_embeddings,
    tieWordEmbeddings: c.tie_word_embeddings,
    activation,
    qkvBias: architecture === 'Qwen2ForCausalLM' || c.attention_bias,
    oBias: architecture !== 'Qwen2ForCausalLM' && c.attention_bias,
    mlpBias: c.mlp_bias,
    windows,
    bosTokenId: c.bos_token_id ?? null,
    eosTokenIds: eos === null || eos === undefined ? [] : Array.isArray(eos) ? eos : [eos],
  };
}

function parseRope(s: z.infer<typeof ropeScalingSchema> | null, theta: number, dim: number, maxPositions: number, file: string): RopeSettings {
  const type = s ? (s.rope_type ?? s.type ?? 'default') : 'default';
  const need = (field: string, v: number | undefined): number => {
    if (v === undefined) throw new ModelConfigError(file, `rope_scaling.${field}`, `is required for rope type '${type}'`);
    return v;
  };
  switch (type) {
    case 'default':
      return { type: 'default', theta, dim };
    case 'linear':
      return { type: 'linear', theta, dim, factor: need('factor', s?.factor) };
    case 'dynamic':
      return { type: 'dynamic', theta, dim, factor: need('factor', s?.factor), maxPositions: s?.original_max_position_embeddings ?? maxPositions };
    case 'llama3':
      return {
        type: 'llama3', theta, dim, factor: need('factor', s?.factor),
        lowFreqFactor: need('low_freq_factor', s?.low_freq_factor), highFreqFactor: need('high_freq_factor', s?.high_freq_factor),
        originalMaxPositions: need('original_max_position_embeddings', s?.original_max_position_embeddings),
      };
    default:
      throw new NotSupportedError('E_ROPE_UNSUPPORTED', `${file}: rope_scaling type '${type}' is not supported (default, linear, dynamic, llama3)`);
  }
}

/**
 * Inverse frequencies of the rotary embedding for a sequence of `seqLen` positions, in float64.
 * Base: inv_freq[i] = theta^(-2i/d) (Su et al. 2021, eq. 15). Scalings follow transformers
 * `modeling_rope_utils.py`: linear divides positions by the factor (Chen et al. 2023, position
 * interpolation); dynamic NTK raises the base to theta * (factor*L/L0 - (factor-1))^(d/(d-2))
 * once L exceeds L0; llama3 divides low frequencies by the factor and blends the middle band.
 */
export function ropeInverseFrequencies(rope: RopeSettings, seqLen: number): Float64Array {
  const half = rope.dim / 2;
  let base = rope.theta;
  if (rope.type === 'dynamic' && seqLen > rope.maxPositions) {
    base = rope.theta * ((rope.factor * seqLen) / rope.maxPositions - (rope.factor - 1)) ** (rope.dim / (rope.dim - 2));
  }
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / base ** ((2 * i) / rope.dim);
  if (rope.type === 'linear') for (let i = 0; i < half; i++) inv[i]! /= rope.factor;
  if (rope.type === 'llama3') {
    const lowWavelen = rope.originalMaxPositions / rope.lowFreqFactor;
    const highWavelen = rope.originalMaxPositions / rope.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const f = inv[i]!;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen > lowWavelen) inv[i] = f / rope.factor;
      else if (wavelen >= highWavelen) {
        const smooth = (rope.originalMaxPositions / wavelen - rope.lowFreqFactor) / (rope.highFreqFactor - rope.lowFreqFactor);
        inv[i] = (1 - smooth) * (f / rope.factor) + smooth * f;
      }
    }
  }
  return inv;
}

/** The tensors of one decoder layer on the backend, plus what its source config says about it. */
export interface LlamaLayer {
  inNorm: tf.Tensor1D;
  postNorm: tf.Tensor1D;
  /** q, k and v projections stacked along the output axis, stored [in, out]: [hidden, (heads + 2 kvHeads) headDim]. */
  wqkv: tf.Tensor2D;
  bqkv: tf.Tensor1D | null;
  wo: tf.Tensor2D;
  bo: tf.Tensor1D | null;
  /** gate and up stacked, [hidden, 2 intermediate]; every matrix here is stored [in, out]. */
  wgu: tf.Tensor2D;
  bgu: tf.Tensor1D | null;
  wd: tf.Tensor2D;
  bd: tf.Tensor1D | null;
  window: number | null;
  config: LlamaConfig;
}

export interface LlamaPathStep {
  layer: LlamaLayer;
  /** Multiplies the hidden state entering this layer; 1 leaves it untouched. */
  scale: number;
}

export interface CausalLM {
  readonly kind: 'causal-lm';
  readonly config: LlamaConfig;
  readonly tokenizer: TextTokenizer | null;
  /** Logits [batch, length, vocab] as one flat array per sequence (float32). */
  logits(sequences: readonly (readonly number[])[]): Promise<Float32Array[]>;
  /**
   * log p(ids[t] | ids[<t]) for t = 1..n-1 of each sequence, in float64. Sequences of different
   * lengths are right-padded into one batch; causal masking keeps padding out of real positions.
   */
  tokenLogProbs(sequences: readonly (readonly number[])[]): Promise<Float64Array[]>;
  /** Greedy decoding with a KV cache; stops at EOS, after `maxTokens`, or when `stop` says so. */
  generate(prompt: readonly number[], options: { maxTokens: number; stop?: (generated: readonly number[]) => boolean }): Promise<number[]>;
  /** Frees what this object owns on the backend (a composed path frees nothing of its sources). */
  dispose(): void;
}

const f32 = (data: Float32Array, shape: number[]) => tf.tensor(data, shape, 'float32');

/**
 * A PyTorch [out, in] matrix uploaded as [in, out]. The wasm backend multiplies by a transposed
 * operand about ten times slower than by a plain one (measured in `evomerge bench eval`'s
 * development: 1.0 against 7.7 GFLOP/s for [512,256]x[256,1408]), so weights are transposed
 * once, on the backend, at upload.
 */
function matrixIn(data: Float32Array, out: number, inp: number): tf.Tensor2D {
  const t = tf.tensor2d(data, [out, inp]);
  const tt = tf.transpose(t);
  t.dispose();
  return tt;
}

function concatRows(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Uploads one layer. Projections are stacked so a layer costs three matrix products, not seven. */
function uploadLayer(source: WeightSource, config: LlamaConfig, i: number): LlamaLayer {
  const { hidden: H, intermediate: I, heads, kvHeads, headDim: D } = config;
  const p = `model.layers.${i}.`;
  const r = (name: string, shape: number[]) => readChecked(source, p + name, shape);
  const qRows = heads * D;
  const kvRows = kvHeads * D;
  const tensors: tf.Tensor[] = [];
  const keep = <T extends tf.Tensor>(t: T): T => {
    tensors.push(t);
    return t;
  };
  try {
    const wqkv = keep(matrixIn(concatRows([r('self_attn.q_proj.weight', [qRows, H]), r('self_attn.k_proj.weight', [kvRows, H]), r('self_attn.v_proj.weight', [kvRows, H])]), qRows + 2 * kvRows, H));
    const bqkv = config.qkvBias
      ? keep(f32(concatRows([r('self_attn.q_proj.bias', [qRows]), r('self_attn.k_proj.bias', [kvRows]), r('self_attn.v_proj.bias', [kvRows])]), [qRows + 2 * kvRows])) as tf.Tensor1D
      : null;
    return {
      inNorm: keep(f32(r('input_layernorm.weight', [H]), [H])) as tf.Tensor1D,
      postNorm: keep(f32(r('post_attention_layernorm.weight', [H]), [H])) as tf.Tensor1D,
      wqkv,
      bqkv,
      wo: keep(matrixIn(r('self_attn.o_proj.weight', [H, qRows]), H, qRows)),
      bo: config.oBias ? keep(f32(r('self_attn.o_proj.bias', [H]), [H])) as tf.Tensor1D : null,
      wgu: keep(matrixIn(concatRows([r('mlp.gate_proj.weight', [I, H]), r('mlp.up_proj.weight', [I, H])]), 2 * I, H)),
      bgu: config.mlpBias ? keep(f32(concatRows([r('mlp.gate_proj.bias', [I]), r('mlp.up_proj.bias', [I])]), [2 * I])) as tf.Tensor1D : null,
      wd: keep(matrixIn(r('mlp.down_proj.weight', [H, I]), H, I)),
      bd: config.mlpBias ? keep(f32(r('mlp.down_proj.bias', [H]), [H])) as tf.Tensor1D : null,
      window: config.windows[i] ?? null,
      config,
    };
  } catch (err) {
    for (const t of tensors) t.dispose();
    throw err;
  }
}

function layerTensors(l: LlamaLayer): tf.Tensor[] {
  const all: Array<tf.Tensor | null> = [l.inNorm, l.postNorm, l.wqkv, l.bqkv, l.wo, l.bo, l.wgu, l.bgu, l.wd, l.bd];
  return all.filter((t): t is tf.Tensor => t !== null);
}

/** RMSNorm (Zhang and Sennrich 2019, eq. 4): x / sqrt(mean(x^2) + eps) * w, over the last axis. */
function rmsNorm(x: tf.Tensor2D, w: tf.Tensor1D, eps: number): tf.Tensor2D {
  const ms = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, eps))), w) as tf.Tensor2D;
}

function linear(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D | null): tf.Tensor2D {
  const y: tf.Tensor2D = tf.matMul(x, w);
  return b ? (tf.add(y, b) as tf.Tensor2D) : y;
}

function activate(x: tf.Tensor, a: LlamaConfig['activation']): tf.Tensor {
  if (a === 'silu') return tf.mul(x, tf.sigmoid(x));
  if (a === 'gelu') {
    // exact gelu: x * Phi(x) (Hendrycks and Gimpel 2016), with erf
    return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
  }
  // tanh approximation (Hendrycks and Gimpel 2016, section 2)
  const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
}

interface RopeTables {
  /** [T, D]: cos(p * f) for the two halves. */
  cos: tf.Tensor2D;
  /** [T, D]: -sin on the first half and +sin on the second, so rotate_half becomes a swap. */
  sin: tf.Tensor2D;
}

function ropeTables(rope: RopeSettings, start: number, length: number): RopeTables {
  const D = rope.dim;
  const half = D / 2;
  const inv = ropeInverseFrequencies(rope, start + length);
  const cos = new Float32Array(length * D);
  const sin = new Float32Array(length * D);
  for (let t = 0; t < length; t++) {
    const pos = start + t;
    for (let i = 0; i < half; i++) {
      const a = pos * inv[i]!;
      const c = Math.cos(a);
      const s = Math.sin(a);
      cos[t * D + i] = c;
      cos[t * D + half + i] = c;
      sin[t * D + i] = -s;
      sin[t * D + half + i] = s;
    }
  }
  return { cos: tf.tensor2d(cos, [length, D]), sin: tf.tensor2d(sin, [length, D]) };
}

/** x [B, heads, T, D] rotated: x*cos + rotate_half(x)*sin with rotate_half(x) = [-x2, x1]. */
function applyRope(x: tf.Tensor4D, t: RopeTables): tf.Tensor4D {
  const half = x.shape[3] / 2;
  const [x1, x2] = tf.split(x, [half, half], 3);
  const swapped = tf.concat([x2!, x1!], 3);
  return tf.add(tf.mul(x, t.cos), tf.mul(swapped, t.sin));
}

/**
 * Additive attention mask [groups*T, S] for queries at positions start..start+T-1 over keys
 * 0..S-1: causal, and with a window w a key j is visible from query p only if j > p - w
 * (transformers `masking_utils.sliding_window_overlay`).
 */
function maskBias(start: number, T: number, S: number, groups: number, window: number | null): tf.Tensor2D {
  const m = new Float32Array(groups * T * S);
  for (let t = 0; t < T; t++) {
    const p = start + t;
    const lo = window === null ? 0 : Math.max(0, p - window + 1);
    for (let j = 0; j < S; j++) if (j > p || j < lo) m[t * S + j] = -1e9;
  }
  for (let g = 1; g < groups; g++) m.copyWithin(g * T * S, 0, T * S);
  return tf.tensor2d(m, [groups * T, S]);
}

interface KvCache {
  k: tf.Tensor4D;
  v: tf.Tensor4D;
}

interface ForwardContext {
  B: number;
  T: number;
  start: number;
  ropeCache: Map<string, RopeTables>;
  maskCache: Map<string, tf.Tensor2D>;
}

function ropeKey(r: RopeSettings): string {
  return JSON.stringify(r);
}

/** One decoder layer on x [B*T, H]. With `cache`, keys and values are appended to it. */
function decoderLayer(x: tf.Tensor2D, l: LlamaLayer, ctx: ForwardContext, cache: KvCache | null): { y: tf.Tensor2D; cache: KvCache | null } {
  const c = l.config;
  const { B, T, start } = ctx;
  const D = c.headDim;
  const groups = c.heads / c.kvHeads;
  let rope = ctx.ropeCache.get(ropeKey(c.rope));
  if (!rope) {
    rope = ropeTables(c.rope, start, T);
    ctx.ropeCache.set(ropeKey(c.rope), rope);
  }

  const h = rmsNorm(x, l.inNorm, c.rmsNormEps);
  const qkv = linear(h, l.wqkv, l.bqkv);
  const [q2, k2, v2] = tf.split(qkv, [c.heads * D, c.kvHeads * D, c.kvHeads * D], 1);
  const heads = (t: tf.Tensor, n: number) => tf.transpose(tf.reshape(t, [B, T, n, D]), [0, 2, 1, 3]) as tf.Tensor4D;
  const q = applyRope(heads(q2!, c.heads), rope);
  let k = applyRope(heads(k2!, c.kvHeads), rope);
  let v = heads(v2!, c.kvHeads);
  let next: KvCache | null = null;
  if (cache) {
    k = tf.concat([cache.k, k], 2);
    v = tf.concat([cache.v, v], 2);
    next = { k, v };
  }
  const S = k.shape[2];
  const maskKey = `${l.window}`;
  let mask = ctx.maskCache.get(maskKey);
  if (!mask) {
    mask = maskBias(start, T, S, groups, l.window);
    ctx.maskCache.set(maskKey, mask);
  }
  // Grouped-query attention without copying keys: the `groups` query heads that share a
  // key-value head are stacked along the time axis, [B, kvHeads, groups*T, D].
  const qg = tf.reshape(q, [B, c.kvHeads, groups * T, D]);
  const scores = tf.add(tf.mul(tf.matMul(qg, k, false, true), 1 / Math.sqrt(D)), mask);
  const attn = tf.matMul(tf.softmax(scores), v);
  const merged = tf.reshape(tf.transpose(tf.reshape(attn, [B, c.heads, T, D]), [0, 2, 1, 3]), [B * T, c.heads * D]) as tf.Tensor2D;
  const x1 = tf.add(x, linear(merged, l.wo, l.bo)) as tf.Tensor2D;

  const h2 = rmsNorm(x1, l.postNorm, c.rmsNormEps);
  const gu = linear(h2, l.wgu, l.bgu);
  const [gate, up] = tf.split(gu, 2, 1);
  const y = tf.add(x1, linear(tf.mul(activate(gate!, c.activation), up!) as tf.Tensor2D, l.wd, l.bd)) as tf.Tensor2D;
  return { y, cache: next };
}

/** Embeddings, final norm and head: the ends of a path. */
export interface LlamaEnds {
  embed: tf.Tensor2D;
  norm: tf.Tensor1D;
  /** [hidden, vocab] (stored [in, out]); a transposed copy of the embeddings when tied. */
  head: tf.Tensor2D;
  config: LlamaConfig;
}

/** A runnable causal LM over a path of layers. */
export class LlamaPathModel implements CausalLM {
  readonly kind = 'causal-lm' as const;
  readonly config: LlamaConfig;
  readonly tokenizer: TextTokenizer | null;
  readonly embedEnds: LlamaEnds;
  readonly headEnds: LlamaEnds;
  readonly path: readonly LlamaPathStep[];
  private readonly owned: tf.Tensor[];

  constructor(options: { embed: LlamaEnds; head: LlamaEnds; path: LlamaPathStep[]; tokenizer: TextTokenizer | null; owned?: tf.Tensor[] }) {
    this.embedEnds = options.embed;
    this.headEnds = options.head;
    this.path = options.path;
    this.config = options.embed.config;
    this.tokenizer = options.tokenizer;
    this.owned = options.owned ?? [];
  }

  private checkIds(sequences: readonly (readonly number[])[]): void {
    const V = this.config.vocabSize;
    for (const s of sequences) {
      if (s.length === 0) throw new InputError('E_EMPTY_SEQUENCE', 'a token sequence is empty; every sequence needs at least one token');
      for (const id of s) {
        if (!Number.isInteger(id) || id < 0 || id >= V) {
          throw new InputError('E_TOKEN_RANGE', `token id ${id} is outside the model's vocabulary [0, ${V}) (vocab_size in config.json); the tokenizer does not match this model`);
        }
      }
    }
  }

  /** Hidden states [B*T, H] after the path and the final norm. Runs inside a tidy of the caller. */
  private body(ids: tf.Tensor1D, B: number, T: number, start: number, caches: Array<KvCache | null> | null): { x: tf.Tensor2D; caches: Array<KvCache | null> } {
    const ctx: ForwardContext = { B, T, start, ropeCache: new Map(), maskCache: new Map() };
    let x: tf.Tensor2D = tf.gather(this.embedEnds.embed, ids);
    const next: Array<KvCache | null> = [];
    this.path.forEach((step, i) => {
      if (step.scale !== 1) x = tf.mul(x, step.scale) as tf.Tensor2D;
      const r = decoderLayer(x, step.layer, ctx, caches ? caches[i] ?? null : null);
      x = r.y;
      next.push(r.cache);
    });
    return { x: rmsNorm(x, this.headEnds.norm, this.headEnds.config.rmsNormEps), caches: next };
  }

  private padded(sequences: readonly (readonly number[])[]): { ids: Int32Array; B: number; T: number } {
    const B = sequences.length;
    const T = Math.max(...sequences.map((s) => s.length));
    const ids = new Int32Array(B * T);
    sequences.forEach((s, b) => ids.set(s, b * T));
    return { ids, B, T };
  }

  /**
   * Logits [B*T, vocab] of right-padded ids [B*T] as a tensor, inside the caller's tidy or
   * gradient tape: the differentiable forward that src/refine builds over merged tensors.
   */
  forwardLogits(ids: tf.Tensor1D, B: number, T: number): tf.Tensor2D {
    const { x } = this.body(ids, B, T, 0, null);
    return tf.matMul(x, this.headEnds.head) as tf.Tensor2D;
  }

  async logits(sequences: readonly (readonly number[])[]): Promise<Float32Array[]> {
    this.checkIds(sequences);
    const { ids, B, T } = this.padded(sequences);
    const out = tf.tidy(() => {
      const { x } = this.body(tf.tensor1d(ids, 'int32'), B, T, 0, null);
      return tf.matMul(x, this.headEnds.head);
    });
    const data = (await out.data()) as Float32Array;
    out.dispose();
    const V = this.config.vocabSize;
    return sequences.map((s, b) => data.slice(b * T * V, (b * T + s.length) * V));
  }

  async tokenLogProbs(sequences: readonly (readonly number[])[]): Promise<Float64Array[]> {
    this.checkIds(sequences);
    const { ids, B, T } = this.padded(sequences);
    // Gather each next token's log-probability on the backend so only B*T numbers come back.
    const targets = new Int32Array(B * T * 2);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        targets[(b * T + t) * 2] = b * T + t;
        targets[(b * T + t) * 2 + 1] = t + 1 < T ? ids[b * T + t + 1]! : 0;
      }
    }
    const out = tf.tidy(() => {
      const { x } = this.body(tf.tensor1d(ids, 'int32'), B, T, 0, null);
      const logp = tf.logSoftmax(tf.matMul(x, this.headEnds.head));
      return tf.gatherND(logp, tf.tensor2d(targets, [B * T, 2], 'int32'));
    });
    const data = (await out.data()) as Float32Array;
    out.dispose();
    return sequences.map((s, b) => Float64Array.from(data.subarray(b * T, b * T + s.length - 1)));
  }

  async generate(prompt: readonly number[], options: { maxTokens: number; stop?: (generated: readonly number[]) => boolean }): Promise<number[]> {
    this.checkIds([prompt]);
    const eos = new Set(this.config.eosTokenIds);
    const generated: number[] = [];
    let caches: Array<KvCache | null> = this.path.map((step) => ({
      k: tf.zeros([1, step.layer.config.kvHeads, 0, this.config.headDim]) as tf.Tensor4D,
      v: tf.zeros([1, step.layer.config.kvHeads, 0, this.config.headDim]) as tf.Tensor4D,
    }));
    const free = (cs: Array<KvCache | null>) => cs.forEach((c) => c && (c.k.dispose(), c.v.dispose()));
    try {
      let input = [...prompt];
      let pos = 0;
      for (let n = 0; n < options.maxTokens; n++) {
        const T = input.length;
        const prev = caches;
        // tidy frees every intermediate; the argmax and the grown caches come back out of it.
        const flat = tf.tidy(() => {
          const r = this.body(tf.tensor1d(input, 'int32'), 1, T, pos, prev);
          const last = tf.slice(r.x, [T - 1, 0], [1, -1]);
          const logits = tf.matMul(last, this.headEnds.head);
          return [tf.argMax(logits, 1), ...r.caches.flatMap((c) => [c!.k, c!.v])];
        });
        free(prev);
        const next = flat[0]!;
        caches = this.path.map((_, i) => ({ k: flat[1 + 2 * i] as tf.Tensor4D, v: flat[2 + 2 * i] as tf.Tensor4D }));
        const id = (await next.data())[0]!;
        next.dispose();
        pos += T;
        if (eos.has(id)) break;
        generated.push(id);
        if (options.stop?.(generated)) break;
        input = [id];
      }
    } finally {
      free(caches);
    }
    return generated;
  }

  dispose(): void {
    for (const t of this.owned) if (!t.isDisposed) t.dispose();
  }
}

/** A loaded Llama-family model: its ends, its layers, and itself as a path with scale 1. */
export class LlamaModel extends LlamaPathModel {
  readonly layers: readonly LlamaLayer[];
  readonly ends: LlamaEnds;

  private constructor(ends: LlamaEnds, layers: LlamaLayer[], tokenizer: TextTokenizer | null, owned: tf.Tensor[]) {
    super({ embed: ends, head: ends, path: layers.map((layer) => ({ layer, scale: 1 })), tokenizer, owned });
    this.layers = layers;
    this.ends = ends;
  }

  /** Uploads every tensor the config implies from `source` (a checkpoint or in-memory merge). */
  static load(config: LlamaConfig, source: WeightSource, tokenizer: TextTokenizer | null = null): LlamaModel {
    const { vocabSize: V, hidden: H } = config;
    const owned: tf.Tensor[] = [];
    try {
      const embed = f32(readChecked(source, 'model.embed_tokens.weight', [V, H]), [V, H]) as tf.Tensor2D;
      owned.push(embed);
      const head = config.tieWordEmbeddings ? (tf.transpose(embed) as tf.Tensor2D) : matrixIn(readChecked(source, 'lm_head.weight', [V, H]), V, H);
      owned.push(head);
      const norm = f32(readChecked(source, 'model.norm.weight', [H]), [H]) as tf.Tensor1D;
      owned.push(norm);
      const layers: LlamaLayer[] = [];
      for (let i = 0; i < config.layers; i++) {
        const l = uploadLayer(source, config, i);
        layers.push(l);
        owned.push(...layerTensors(l));
      }
      return new LlamaModel({ embed, norm, head, config }, layers, tokenizer, owned);
    } catch (err) {
      for (const t of owned) t.dispose();
      throw err;
    }
  }
}

export interface LayerStep {
  /** Index of the source model in the `models` array. */
  source: number;
  layer: number;
  scale: number;
}

/**
 * A data-flow merge (Akiba et al. 2024, section 3.2): the hidden state goes through `steps`,
 * layers drawn from several models of the same width, each step scaling the state entering it.
 * Embeddings come from `models[embeddings]`, final norm and head from `models[head]`. The
 * result shares the sources' tensors: dispose the sources, not it.
 */
export function composeLlamaPath(models: readonly LlamaModel[], steps: readonly LayerStep[], options: { embeddings?: number; head?: number } = {}): LlamaPathModel {
  const e = options.embeddings ?? 0;
  const h = options.head ?? e;
  const pick = (i: number, what: string) => pathSource(models, i, what);
  const embed = pick(e, 'embeddings');
  const head = pick(h, 'head');
  const ref = embed.config;
  if (head.config.vocabSize !== ref.vocabSize) throw new ShapeMismatchError(`layer path: the head's source has vocab ${head.config.vocabSize} but the embeddings' source has ${ref.vocabSize}`);
  const path = steps.map((s, i): LlamaPathStep => {
    const m = pick(s.source, `step ${i}`);
    const layer = m.layers[s.layer];
    if (!layer) throw new InputError('E_PATH_LAYER', `layer path: step ${i} names layer ${s.layer} of source ${s.source}, which has ${m.layers.length} layers`);
    if (m.config.hidden !== ref.hidden || m.config.headDim !== ref.headDim) {
      throw new ShapeMismatchError(`layer path: step ${i} (source ${s.source}) has hidden size ${m.config.hidden} and head_dim ${m.config.headDim}, but the embeddings' source has ${ref.hidden} and ${ref.headDim}; all sources must have the same width`);
    }
    if (!Number.isFinite(s.scale)) throw new InputError('E_PATH_SCALE', `layer path: step ${i} has scale ${s.scale}; scales must be finite numbers`);
    return { layer, scale: s.scale };
  });
  if (path.length === 0) throw new InputError('E_PATH_EMPTY', 'layer path is empty; a path needs at least one layer');
  return new LlamaPathModel({ embed: embed.ends, head: head.ends, path, tokenizer: embed.tokenizer });
}

/** Every tensor a Llama-family checkpoint with this config holds, with its shape. */
export function llamaShapesOf(c: LlamaConfig): Array<{ name: string; shape: number[] }> {
  const { vocabSize: V, hidden: H, intermediate: I, heads, kvHeads, headDim: D } = c;
  const out: Array<{ name: string; shape: number[] }> = [{ name: 'model.embed_tokens.weight', shape: [V, H] }];
  for (let i = 0; i < c.layers; i++) {
    const p = `model.layers.${i}.`;
    out.push(
      { name: p + 'input_layernorm.weight', shape: [H] },
      { name: p + 'post_attention_layernorm.weight', shape: [H] },
      { name: p + 'self_attn.q_proj.weight', shape: [heads * D, H] },
      { name: p + 'self_attn.k_proj.weight', shape: [kvHeads * D, H] },
      { name: p + 'self_attn.v_proj.weight', shape: [kvHeads * D, H] },
      { name: p + 'self_attn.o_proj.weight', shape: [H, heads * D] },
      { name: p + 'mlp.gate_proj.weight', shape: [I, H] },
      { name: p + 'mlp.up_proj.weight', shape: [I, H] },
      { name: p + 'mlp.down_proj.weight', shape: [H, I] },
    );
    if (c.qkvBias) out.push({ name: p + 'self_attn.q_proj.bias', shape: [heads * D] }, { name: p + 'self_attn.k_proj.bias', shape: [kvHeads * D] }, { name: p + 'self_attn.v_proj.bias', shape: [kvHeads * D] });
    if (c.oBias) out.push({ name: p + 'self_attn.o_proj.bias', shape: [H] });
    if (c.mlpBias) out.push({ name: p + 'mlp.gate_proj.bias', shape: [I] }, { name: p + 'mlp.up_proj.bias', shape: [I] }, { name: p + 'mlp.down_proj.bias', shape: [H] });
  }
  out.push({ name: 'model.norm.weight', shape: [H] });
  if (!c.tieWordEmbeddings) out.push({ name: 'lm_head.weight', shape: [V, H] });
  return out;
}
