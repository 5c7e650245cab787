/**
 * Tiny generated checkpoints for tests and the first quick start: real Hugging Face folders
 * (config.json + safetensors, Llama / Mistral / Qwen2 layouts) and PEFT LoRA adapters, from
 * a seed. Every tensor is drawn from its own stream derived from (seed, tensor name), so the
 * same seed gives the same bytes whatever the order or the set of tensors.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CheckpointWriter, openCheckpoint, writeFileAtomic, writeSafetensors } from '../checkpoint/index.ts';
import { InputError } from '../errors.ts';
import type { FloatDType } from '../tensor/dtype.ts';
import { Rng, deriveSeed } from '../tensor/rng.ts';

export type TinyArchitecture = 'LlamaForCausalLM' | 'MistralForCausalLM' | 'Qwen2ForCausalLM';

export interface TinyLlamaOptions {
  seed?: number;
  architecture?: TinyArchitecture;
  layers?: number;
  hidden?: number;
  intermediate?: number;
  heads?: number;
  kvHeads?: number;
  vocab?: number;
  tieWordEmbeddings?: boolean;
  dtype?: FloatDType;
  maxShardBytes?: number;
  /** Merged into config.json (e.g. rope_scaling, sliding_window). */
  config?: Record<string, unknown>;
  /** Written as tokenizer.json. */
  tokenizer?: object;
  /** Make a "fine-tune": the tensors of another tiny folder plus scale * N(0, 1) noise. */
  perturb?: { from: string; scale: number };
}

const MODEL_TYPE: Record<TinyArchitecture, string> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
};

const TORCH_DTYPE: Record<FloatDType, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/** Tensor names and shapes of a Llama-family checkpoint, in Hugging Face naming. */
export function llamaTensorShapes(config: {
  hidden: number; intermediate: number; layers: number; heads: number; kvHeads: number; vocab: number; tie: boolean; qkvBias: boolean;
}): Array<{ name: string; shape: number[] }> {
  const { hidden: d, intermediate: f, layers, heads, kvHeads, vocab, tie, qkvBias } = config;
  const headDim = d / heads;
  const kv = kvHeads * headDim;
  const out: Array<{ name: string; shape: number[] }> = [{ name: 'model.embed_tokens.weight', shape: [vocab, d] }];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    out.push(
      { name: `${p}input_layernorm.weight`, shape: [d] },
      { name: `${p}self_attn.q_proj.weight`, shape: [d, d] },
      { name: `${p}self_attn.k_proj.weight`, shape: [kv, d] },
      { name: `${p}self_attn.v_proj.weight`, shape: [kv, d] },
      { name: `${p}self_attn.o_proj.weight`, shape: [d, d] },
      { name: `${p}post_attention_layernorm.weight`, shape: [d] },
      { name: `${p}mlp.gate_proj.weight`, shape: [f, d] },
      { name: `${p}mlp.up_proj.weight`, shape: [f, d] },
      { name: `${p}mlp.down_proj.weight`, shape: [d, f] },
    );
    if (qkvBias) {
      out.push(
        { name: `${p}self_attn.q_proj.bias`, shape: [d] },
        { name: `${p}self_attn.k_proj.bias`, shape: [kv] },
        { name: `${p}self_attn.v_proj.bias`, shape: [kv] },
      );
    }
  }
  out.push({ name: 'model.norm.weight', shape: [d] });
  if (!tie) out.push({ name: 'lm_head.weight', shape: [vocab, d] });
  return out;
}

function fillNormal(values: Float32Array, seed: string, mean: number, std: number): Float32Array {
  const rng = Rng.seeded(seed);
  for (let i = 0; i < values.length; i++) values[i] = mean + std * rng.normal();
  return values;
}

/** Write a tiny Llama-family folder to `dir` and return its absolute path. */
export function makeTinyLlama(dir: string, options: TinyLlamaOptions = {}): string {
  const arch = options.architecture ?? 'LlamaForCausalLM';
  const seed = options.seed ?? 0;
  const hidden = options.hidden ?? 16;
  const heads = options.heads ?? 4;
  const kvHeads = options.kvHeads ?? heads;
  const layers = options.layers ?? 2;
  const intermediate = options.intermediate ?? hidden * 2;
  const vocab = options.vocab ?? 32;
  const tie = options.tieWordEmbeddings ?? false;
  const dtype = options.dtype ?? 'F32';
  if (hidden % heads !== 0 || heads % kvHeads !== 0) {
    throw new InputError('E_TINY_SHAPE', `tiny model: hidden (${hidden}) must divide by heads (${heads}) and heads by kvHeads (${kvHeads})`);
  }
  const config: Record<string, unknown> = {
    architectures: [arch],
    model_type: MODEL_TYPE[arch],
    hidden_size: hidden,
    intermediate_size: intermediate,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    vocab_size: vocab,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    hidden_act: 'silu',
    tie_word_embeddings: tie,
    torch_dtype: TORCH_DTYPE[dtype],
    bos_token_id: 1,
    eos_token_id: 2,
    ...(arch === 'MistralForCausalLM' ? { sliding_window: 4096 } : {}),
    ...(arch === 'Qwen2ForCausalLM' ? { use_sliding_window: false, sliding_window: null } : {}),
    ...options.config,
  };
  const shapes = llamaTensorShapes({ hidden, intermediate, layers, heads, kvHeads, vocab, tie, qkvBias: arch === 'Qwen2ForCausalLM' });
  const out = resolve(dir);
  mkdirSync(out, { recursive: true });
  const from = options.perturb ? openCheckpoint(options.perturb.from) : null;
  const writer = new CheckpointWriter(out, {
    tensors: shapes.map((s) => ({ ...s, dtype })),
    maxShardBytes: options.maxShardBytes,
  });
  try {
    for (const { name, shape } of shapes) {
      const n = shape.reduce((a, b) => a * b, 1);
      const tensorSeed = deriveSeed('tiny-llama', seed, name);
      let values: Float32Array;
      if (from) {
        values = from.readFloat32(name);
        if (values.length !== n) throw new InputError('E_TINY_SHAPE', `tiny model: '${name}' in ${options.perturb!.from} has ${values.length} values, expected ${n}; use the same sizes`);
        const noise = fillNormal(new Float32Array(n), tensorSeed, 0, options.perturb!.scale);
        for (let i = 0; i < n; i++) values[i]! += noise[i]!;
      } else {
        const isNorm = name.endsWith('norm.weight');
        values = fillNormal(new Float32Array(n), tensorSeed, isNorm ? 1 : 0, isNorm ? 0.1 : 0.2);
      }
      writer.write(name, values);
    }
    const files: Record<string, string> = {};
    if (options.tokenizer) files['tokenizer.json'] = `${JSON.stringify(options.tokenizer)}\n`;
    writer.finish({ config, files });
  } catch (err) {
    writer.abort();
    throw err;
  } finally {
    from?.close();
  }
  return out;
}

export interface TinyLoraOptions {
  seed?: number;
  rank?: number;
  alpha?: number;
  /** Module name suffixes to adapt. */
  targetModules?: string[];
  useRslora?: boolean;
}

/** Write a PEFT LoRA adapter for the Llama folder `baseDir` into `dir`. */
export function makeTinyLora(dir: string, baseDir: string, options: TinyLoraOptions = {}): string {
  const rank = options.rank ?? 2;
  const alpha = options.alpha ?? 4;
  const targets = options.targetModules ?? ['q_proj', 'v_proj'];
  const seed = options.seed ?? 0;
  const base = openCheckpoint(baseDir);
  const tensors: Array<{ name: string; dtype: 'F32'; shape: number[]; data: Float32Array }> = [];
  try {
    for (const name of base.names()) {
      const module = name.replace(/\.weight$/, '');
      if (module === name || !targets.some((t) => module.endsWith(`.${t}`))) continue;
      const [out, inn] = base.info(name).shape as [number, number];
      const key = `base_model.model.${module}`;
      tensors.push(
        { name: `${key}.lora_A.weight`, dtype: 'F32', shape: [rank, inn], data: fillNormal(new Float32Array(rank * inn), deriveSeed('tiny-lora', seed, module, 'A'), 0, 0.3) },
        // B is zero at initialisation in PEFT; a trained adapter's is not, so draw it too
        { name: `${key}.lora_B.weight`, dtype: 'F32', shape: [out, rank], data: fillNormal(new Float32Array(out * rank), deriveSeed('tiny-lora', seed, module, 'B'), 0, 0.3) },
      );
    }
  } finally {
    base.close();
  }
  const out = resolve(dir);
  mkdirSync(out, { recursive: true });
  writeSafetensors(join(out, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  writeFileAtomic(join(out, 'adapter_config.json'), `${JSON.stringify({
    peft_type: 'LORA',
    base_model_name_or_path: baseDir,
    r: rank,
    lora_alpha: alpha,
    target_modules: targets,
    use_rslora: options.useRslora ?? false,
    fan_in_fan_out: false,
    lora_dropout: 0,
    bias: 'none',
    task_type: 'CAUSAL_LM',
  }, null, 2)}\n`);
  return out;
}

/**
 * The `tiny` zoo: a base and two "fine-tunes" (the base plus seeded noise) of a small Llama,
 * and a LoRA adapter of the base. Enough to exercise every reader, writer and merge method.
 */
export function buildTinyZoo(dir: string, seed = 0): { base: string; models: string[]; lora: string } {
  const root = resolve(dir);
  const base = makeTinyLlama(join(root, 'base'), { seed, hidden: 32, heads: 4, kvHeads: 2, layers: 4, vocab: 64 });
  const models = ['math', 'chat'].map((name, i) => makeTinyLlama(join(root, name), {
    seed: seed * 1000 + i + 1, hidden: 32, heads: 4, kvHeads: 2, layers: 4, vocab: 64, perturb: { from: base, scale: 0.02 },
  }));
  const lora = makeTinyLora(join(root, 'lora'), base, { seed, rank: 4, alpha: 8 });
  return { base, models, lora };
}
