/**
 * The forward pass of the Llama family (Touvron et al. 2023, "LLaMA", section 2.2; semantics as in
 * Hugging Face transformers `models/llama/modeling_llama.py`): pre-norm decoder layers with RMSNorm
 * (Zhang and Sennrich 2019), rotary position embeddings in the rotate-half layout (Su et al. 2021,
 * eq. 34), SwiGLU MLP (Shazeer 2020), grouped-query attention (Ainslie et al. 2023) where query
 * head h uses key-value head floor(h / (heads / kv_heads)), optional biases (Qwen2) and sliding
 * windows (Mistral, Jiang et al. 2023, section 2). It runs over a path of layers, each with a
 * scale on the hidden state entering it (see ./llama.ts), with an optional KV cache for decoding.
 */
import { tf } from './backend.ts';
import { ropeInverseFrequencies, type LlamaConfig, type RopeSettings } from './llama-config.ts';
import type { LlamaEnds, LlamaLayer } from './llama-layout.ts';

export interface LlamaPathStep {
  layer: LlamaLayer;
  /** Multiplies the hidden state entering this layer; 1 leaves it untouched. */
  scale: number;
}

/** The ends and layers a forward pass runs over: a model's own, or a data-flow merge's. */
export interface LlamaPath {
  readonly embedEnds: LlamaEnds;
  readonly headEnds: LlamaEnds;
  readonly path: readonly LlamaPathStep[];
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

export interface KvCache {
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

/**
 * Hidden states [B*T, H] of ids [B*T] after the path and the final norm, for queries at positions
 * start..start+T-1; with `caches` (one per step), keys and values are appended to them and the
 * grown caches returned. Runs inside a tidy or gradient tape of the caller.
 */
export function llamaHidden(p: LlamaPath, ids: tf.Tensor1D, B: number, T: number, start: number, caches: Array<KvCache | null> | null): { x: tf.Tensor2D; caches: Array<KvCache | null> } {
  const ctx: ForwardContext = { B, T, start, ropeCache: new Map(), maskCache: new Map() };
  let x: tf.Tensor2D = tf.gather(p.embedEnds.embed, ids);
  const next: Array<KvCache | null> = [];
  p.path.forEach((step, i) => {
    if (step.scale !== 1) x = tf.mul(x, step.scale) as tf.Tensor2D;
    const r = decoderLayer(x, step.layer, ctx, caches ? caches[i] ?? null : null);
    x = r.y;
    next.push(r.cache);
  });
  return { x: rmsNorm(x, p.headEnds.norm, p.headEnds.config.rmsNormEps), caches: next };
}
