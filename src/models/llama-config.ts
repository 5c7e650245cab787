/**
 * Configs of the Llama family (`LlamaForCausalLM`, `MistralForCausalLM`, `Qwen2ForCausalLM`):
 * config.json parsed and validated with every default filled in (semantics of Hugging Face
 * transformers `models/llama/configuration_llama.py`, `models/qwen2/configuration_qwen2.py`), and
 * the rotary embedding's inverse frequencies with their scalings. The runnable model is ./llama.ts.
 */
import { z } from 'zod';
import { InputError, NotSupportedError } from '../errors.ts';

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
