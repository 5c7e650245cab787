/**
 * The Llama family on TensorFlow.js: `LlamaForCausalLM`, `MistralForCausalLM` and
 * `Qwen2ForCausalLM` checkpoints in the Hugging Face layout. Configs are ./llama-config.ts, the
 * tensors ./llama-layout.ts, the forward pass ./llama-forward.ts, decoding ./llama-generate.ts.
 *
 * A model is a set of uploaded tensors plus a *path*: the sequence of layers the hidden state goes
 * through, each with a scale on the hidden state entering it. A plain model is its own layers
 * with scale 1; a data-flow merge (Akiba et al. 2024, "Evolutionary Optimization of Model Merging
 * Recipes", section 3.2) is a path over layers of several models (see `composeLlamaPath`).
 */
import { tf } from './backend.ts';
import { InputError, ShapeMismatchError } from '../errors.ts';
import type { LlamaConfig } from './llama-config.ts';
import { llamaHidden, type LlamaPathStep } from './llama-forward.ts';
import { generateGreedy } from './llama-generate.ts';
import { assembleLlamaEnds, assembleLlamaLayer, type LlamaEnds, type LlamaLayer, type LlamaTensor, type LlamaTensorOps } from './llama-layout.ts';
import { pathSource, readChecked, type WeightSource } from './weights.ts';
import type { TextTokenizer } from './tokenizer.ts';

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

/** Upload operations for the layout: checkpoint arrays read from `source`, every tensor made kept in `owned`. */
function uploadOps(source: WeightSource, owned: tf.Tensor[]): LlamaTensorOps {
  const keep = <T extends tf.Tensor>(t: T): T => {
    owned.push(t);
    return t;
  };
  const read = (t: LlamaTensor) => readChecked(source, t.name, t.shape);
  const rows = (parts: readonly LlamaTensor[]) => (parts.length === 1 ? read(parts[0]!) : concatRows(parts.map(read)));
  return {
    stored: (t) => keep(f32(read(t), t.shape) as tf.Tensor2D),
    matrix: (parts) => keep(matrixIn(rows(parts), parts.reduce((n, p) => n + p.shape[0]!, 0), parts[0]!.shape[1]!)),
    vector: (parts) => keep(f32(rows(parts), [parts.reduce((n, p) => n + p.shape[0]!, 0)]) as tf.Tensor1D),
    transposed: (t) => keep(tf.transpose(t) as tf.Tensor2D),
  };
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
    const { x } = llamaHidden(this, ids, B, T, 0, null);
    return tf.matMul(x, this.headEnds.head) as tf.Tensor2D;
  }

  async logits(sequences: readonly (readonly number[])[]): Promise<Float32Array[]> {
    this.checkIds(sequences);
    const { ids, B, T } = this.padded(sequences);
    const out = tf.tidy(() => {
      const { x } = llamaHidden(this, tf.tensor1d(ids, 'int32'), B, T, 0, null);
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
      const { x } = llamaHidden(this, tf.tensor1d(ids, 'int32'), B, T, 0, null);
      const logp = tf.logSoftmax(tf.matMul(x, this.headEnds.head));
      return tf.gatherND(logp, tf.tensor2d(targets, [B * T, 2], 'int32'));
    });
    const data = (await out.data()) as Float32Array;
    out.dispose();
    return sequences.map((s, b) => Float64Array.from(data.subarray(b * T, b * T + s.length - 1)));
  }

  async generate(prompt: readonly number[], options: { maxTokens: number; stop?: (generated: readonly number[]) => boolean }): Promise<number[]> {
    this.checkIds([prompt]);
    return generateGreedy(this, prompt, options);
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
    const owned: tf.Tensor[] = [];
    try {
      const ops = uploadOps(source, owned);
      const ends = assembleLlamaEnds(config, ops);
      const layers = Array.from({ length: config.layers }, (_, i) => assembleLlamaLayer(config, i, ops));
      return new LlamaModel(ends, layers, tokenizer, owned);
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
