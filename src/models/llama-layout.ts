/**
 * The tensors of a Llama-family model, described once: their names (the Hugging Face layout), their
 * checkpoint shapes, their order, and how they are assembled into what the forward pass runs on.
 *
 * The forward pass (./llama-forward.ts) runs on a decoder layer as `LlamaLayer`: every matrix held
 * [in, out] (PyTorch stores [out, in]), the q, k and v projections stacked into one matrix and gate
 * and up into another, so a layer costs three matrix products, not seven. Two callers assemble
 * layers from the same description with their own operations: `LlamaModel.load` (./llama.ts)
 * uploads checkpoint arrays, and the gradient stage (src/refine/gradient.ts) builds them from
 * differentiable tensors so that TensorFlow.js can differentiate the model's own forward.
 */
import type { tf } from './backend.ts';
import type { LlamaConfig } from './llama-config.ts';

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

/** Embeddings, final norm and head: the ends of a path. */
export interface LlamaEnds {
  embed: tf.Tensor2D;
  norm: tf.Tensor1D;
  /** [hidden, vocab] (stored [in, out]); a transposed copy of the embeddings when tied. */
  head: tf.Tensor2D;
  config: LlamaConfig;
}

/** A checkpoint tensor: its full name and its shape as stored. */
export interface LlamaTensor {
  name: string;
  shape: number[];
}

type MatrixField = 'wqkv' | 'wo' | 'wgu' | 'wd';
type VectorField = 'inNorm' | 'postNorm' | 'bqkv' | 'bo' | 'bgu' | 'bd';

/**
 * A decoder layer's tensors in checkpoint order (the order of `llamaShapesOf`, so of every
 * checkpoint the zoos write), each with its shape, the config flag that adds it (biases), and the
 * `LlamaLayer` field it goes into; the parts of one field are stacked in this order.
 */
const LAYER_TENSORS: ReadonlyArray<{ suffix: string; field: MatrixField | VectorField; shape: (c: LlamaConfig) => number[]; when?: (c: LlamaConfig) => boolean }> = [
  { suffix: 'input_layernorm.weight', field: 'inNorm', shape: (c) => [c.hidden] },
  { suffix: 'post_attention_layernorm.weight', field: 'postNorm', shape: (c) => [c.hidden] },
  { suffix: 'self_attn.q_proj.weight', field: 'wqkv', shape: (c) => [c.heads * c.headDim, c.hidden] },
  { suffix: 'self_attn.k_proj.weight', field: 'wqkv', shape: (c) => [c.kvHeads * c.headDim, c.hidden] },
  { suffix: 'self_attn.v_proj.weight', field: 'wqkv', shape: (c) => [c.kvHeads * c.headDim, c.hidden] },
  { suffix: 'self_attn.o_proj.weight', field: 'wo', shape: (c) => [c.hidden, c.heads * c.headDim] },
  { suffix: 'mlp.gate_proj.weight', field: 'wgu', shape: (c) => [c.intermediate, c.hidden] },
  { suffix: 'mlp.up_proj.weight', field: 'wgu', shape: (c) => [c.intermediate, c.hidden] },
  { suffix: 'mlp.down_proj.weight', field: 'wd', shape: (c) => [c.hidden, c.intermediate] },
  { suffix: 'self_attn.q_proj.bias', field: 'bqkv', shape: (c) => [c.heads * c.headDim], when: (c) => c.qkvBias },
  { suffix: 'self_attn.k_proj.bias', field: 'bqkv', shape: (c) => [c.kvHeads * c.headDim], when: (c) => c.qkvBias },
  { suffix: 'self_attn.v_proj.bias', field: 'bqkv', shape: (c) => [c.kvHeads * c.headDim], when: (c) => c.qkvBias },
  { suffix: 'self_attn.o_proj.bias', field: 'bo', shape: (c) => [c.hidden], when: (c) => c.oBias },
  { suffix: 'mlp.gate_proj.bias', field: 'bgu', shape: (c) => [c.intermediate], when: (c) => c.mlpBias },
  { suffix: 'mlp.up_proj.bias', field: 'bgu', shape: (c) => [c.intermediate], when: (c) => c.mlpBias },
  { suffix: 'mlp.down_proj.bias', field: 'bd', shape: (c) => [c.hidden], when: (c) => c.mlpBias },
];

/**
 * The fields of `LlamaLayer` in the order they are assembled (hence read from a checkpoint: one
 * missing several tensors reports the q projection first).
 */
const FIELDS: ReadonlyArray<{ field: MatrixField; kind: 'matrix' } | { field: VectorField; kind: 'vector' }> = [
  { field: 'wqkv', kind: 'matrix' },
  { field: 'bqkv', kind: 'vector' },
  { field: 'inNorm', kind: 'vector' },
  { field: 'postNorm', kind: 'vector' },
  { field: 'wo', kind: 'matrix' },
  { field: 'bo', kind: 'vector' },
  { field: 'wgu', kind: 'matrix' },
  { field: 'bgu', kind: 'vector' },
  { field: 'wd', kind: 'matrix' },
  { field: 'bd', kind: 'vector' },
];

const EMBED = 'model.embed_tokens.weight';
const NORM = 'model.norm.weight';
const HEAD = 'lm_head.weight';

function layerTensors(c: LlamaConfig, i: number): Array<LlamaTensor & { field: MatrixField | VectorField }> {
  const p = `model.layers.${i}.`;
  return LAYER_TENSORS.filter((t) => t.when?.(c) ?? true).map((t) => ({ name: p + t.suffix, shape: t.shape(c), field: t.field }));
}

/** Every tensor a Llama-family checkpoint with this config holds, with its shape, in checkpoint order. */
export function llamaShapesOf(c: LlamaConfig): LlamaTensor[] {
  const { vocabSize: V, hidden: H } = c;
  const out: LlamaTensor[] = [{ name: EMBED, shape: [V, H] }];
  for (let i = 0; i < c.layers; i++) out.push(...layerTensors(c, i).map(({ name, shape }) => ({ name, shape })));
  out.push({ name: NORM, shape: [H] });
  if (!c.tieWordEmbeddings) out.push({ name: HEAD, shape: [V, H] });
  return out;
}

/** How one caller makes backend tensors out of checkpoint tensors (uploaded arrays, or differentiable tensors). */
export interface LlamaTensorOps {
  /** A tensor as stored (the embeddings, [vocab, hidden]). */
  stored(t: LlamaTensor): tf.Tensor2D;
  /** Matrices stored [out_k, in], held as one [in, sum of out_k]: stacked along the output axis. */
  matrix(parts: readonly LlamaTensor[]): tf.Tensor2D;
  /** Vectors, concatenated. */
  vector(parts: readonly LlamaTensor[]): tf.Tensor1D;
  /** The [in, out] view of a tensor already held as stored: the tied head from the embeddings. */
  transposed(t: tf.Tensor2D): tf.Tensor2D;
}

/** Decoder layer `i` of a model with config `c`, assembled by `ops`. */
export function assembleLlamaLayer(c: LlamaConfig, i: number, ops: LlamaTensorOps): LlamaLayer {
  const tensors = layerTensors(c, i);
  const got = new Map<string, tf.Tensor | null>();
  for (const f of FIELDS) {
    const parts = tensors.filter((t) => t.field === f.field).map(({ name, shape }) => ({ name, shape }));
    got.set(f.field, f.kind === 'matrix' ? ops.matrix(parts) : parts.length ? ops.vector(parts) : null);
  }
  const m = (f: MatrixField) => got.get(f) as tf.Tensor2D;
  const v = (f: VectorField) => got.get(f) as tf.Tensor1D | null;
  return {
    inNorm: v('inNorm')!, postNorm: v('postNorm')!, wqkv: m('wqkv'), bqkv: v('bqkv'), wo: m('wo'), bo: v('bo'),
    wgu: m('wgu'), bgu: v('bgu'), wd: m('wd'), bd: v('bd'), window: c.windows[i] ?? null, config: c,
  };
}

/** The embeddings, final norm and head of a model with config `c`, assembled by `ops`. */
export function assembleLlamaEnds(c: LlamaConfig, ops: LlamaTensorOps): LlamaEnds {
  const { vocabSize: V, hidden: H } = c;
  const embed = ops.stored({ name: EMBED, shape: [V, H] });
  const head = c.tieWordEmbeddings ? ops.transposed(embed) : ops.matrix([{ name: HEAD, shape: [V, H] }]);
  const norm = ops.vector([{ name: NORM, shape: [H] }]);
  return { embed, norm, head, config: c };
}
