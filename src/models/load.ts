/**
 * One entry to turn a checkpoint (on disk, or merged tensors in memory) into a runnable model,
 * choosing the family from config.json's `architectures`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint } from '../checkpoint/index.ts';
import { InputError, NotSupportedError } from '../errors.ts';
import { LLAMA_ARCHITECTURES, parseLlamaConfig } from './llama-config.ts';
import { LlamaModel, type CausalLM } from './llama.ts';
import { MLP_ARCHITECTURE, ResidualMlp, parseResidualMlpConfig, type Classifier } from './mlp.ts';
import { loadTokenizer, type TextTokenizer } from './tokenizer.ts';
import type { WeightSource } from './weights.ts';

export type ModelFamily = 'llama' | 'residual-mlp';
export type RunnableModel = CausalLM | Classifier;

/** The family a config.json belongs to; throws naming the architectures when none fits. */
export function familyOf(config: Record<string, unknown> | null, file = 'config.json'): ModelFamily {
  const archs = config && Array.isArray(config.architectures) ? (config.architectures as unknown[]) : null;
  if (!archs) throw new InputError('E_MODEL_CONFIG', `${file}: field 'architectures' is missing; evomerge needs it to know which model family to run`);
  if (archs.some((a) => (LLAMA_ARCHITECTURES as readonly unknown[]).includes(a))) return 'llama';
  if (archs.includes(MLP_ARCHITECTURE)) return 'residual-mlp';
  throw new NotSupportedError('E_ARCH_UNSUPPORTED', `${file}: architectures ${JSON.stringify(archs)} is not supported; evomerge runs ${LLAMA_ARCHITECTURES.join(', ')} and ${MLP_ARCHITECTURE}`);
}

/**
 * Builds a model from a parsed config.json and a weight source. `tokenizer` is used by causal
 * LMs for text evaluators. The caller selects the backend first (`useBackend`).
 */
export function modelFromWeights(config: Record<string, unknown>, source: WeightSource, options: { tokenizer?: TextTokenizer | null; file?: string } = {}): RunnableModel {
  const file = options.file ?? `${source.path}/config.json`;
  return familyOf(config, file) === 'llama'
    ? LlamaModel.load(parseLlamaConfig(config, file), source, options.tokenizer ?? null)
    : ResidualMlp.load(parseResidualMlpConfig(config, file), source);
}

/** Opens a model folder (config.json, safetensors, tokenizer.json) and uploads it. */
export function loadModel(dir: string): { model: RunnableModel; family: ModelFamily; config: Record<string, unknown> } {
  const ckpt = openCheckpoint(dir);
  try {
    const file = join(dir, 'config.json');
    const config = ckpt.config;
    if (!config) throw new InputError('E_MODEL_CONFIG', `${dir} has no config.json; evomerge needs it to know the architecture`);
    const family = familyOf(config, file);
    const tokenizer = family === 'llama' && existsSync(join(dir, 'tokenizer.json')) ? loadTokenizer(dir, config) : null;
    const model = modelFromWeights(config, ckpt, { tokenizer, file });
    return { model, family, config };
  } finally {
    ckpt.close();
  }
}
