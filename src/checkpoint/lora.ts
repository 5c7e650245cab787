/**
 * PEFT LoRA adapters (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models",
 * eq. 3: h = W0 x + (alpha / r) B A x; rsLoRA, Kalajdzievski 2023: alpha / sqrt(r)).
 *
 * An adapter folder holds `adapter_config.json` and `adapter_model.safetensors` with tensors
 * `base_model.model.<module>.lora_A.weight` [r, in] and `...lora_B.weight` [out, r]
 * (embeddings: `lora_embedding_A` [r, vocab], `lora_embedding_B` [dim, r]). We materialise
 * the update of the base tensor `<module>.weight`, so an adapter can be a merge source.
 * Per-module ranks and alphas come from `rank_pattern` / `alpha_pattern`, matched as PEFT
 * does: a pattern key matches a module whose name is the key or ends with `.` + key (keys
 * may be regular expressions).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { CheckpointFormatError, MissingTensorError, NotSupportedError } from '../errors.ts';
import { readConfig } from './folder.ts';
import { SafetensorsFile } from './safetensors.ts';

export const LoraConfigSchema = z.looseObject({
  peft_type: z.string().optional(),
  r: z.number().int().positive(),
  lora_alpha: z.number(),
  target_modules: z.union([z.array(z.string()), z.string(), z.null()]).optional(),
  use_rslora: z.boolean().optional().default(false),
  fan_in_fan_out: z.boolean().optional().default(false),
  use_dora: z.boolean().optional().default(false),
  rank_pattern: z.record(z.string(), z.number().int().positive()).optional().default({}),
  alpha_pattern: z.record(z.string(), z.number()).optional().default({}),
  base_model_name_or_path: z.string().nullable().optional(),
  modules_to_save: z.array(z.string()).nullable().optional(),
});
export type LoraConfig = z.infer<typeof LoraConfigSchema>;

export interface LoraFactors {
  /** A as stored, row-major [rank, inFeatures]. */
  a: Float32Array;
  /** B as stored, row-major [outFeatures, rank]. */
  b: Float32Array;
  rank: number;
  /** alpha / r, or alpha / sqrt(r) with rsLoRA. */
  scale: number;
  outFeatures: number;
  inFeatures: number;
  /** The base tensor is the transpose of B A (embeddings; Conv1D with fan_in_fan_out). */
  transposed: boolean;
}

export interface LoraAdapter {
  readonly path: string;
  readonly config: LoraConfig;
  /** Base tensor names this adapter updates, sorted. */
  targets(): string[];
  /** Full tensors saved beside the factors (modules_to_save), by base tensor name. */
  fullTensors(): string[];
  factors(baseName: string): LoraFactors;
  /** The materialised update scale * B A, shaped as the base tensor. */
  delta(baseName: string): Float32Array;
  close(): void;
}

interface Target {
  module: string;
  a: string;
  b: string;
  embedding: boolean;
}

const FACTOR = /^(?:base_model\.model\.)?(.+)\.(lora_A|lora_B)(?:\.[A-Za-z0-9_-]+)?\.weight$/;
const EMBED_FACTOR = /^(?:base_model\.model\.)?(.+)\.(lora_embedding_A|lora_embedding_B)(?:\.[A-Za-z0-9_-]+)?$/;

/** The pattern key (of rank_pattern / alpha_pattern) that applies to `module`, if any. */
export function patternKeyFor(keys: readonly string[], module: string): string | undefined {
  return keys.find((key) => {
    if (module === key || module.endsWith(`.${key}`)) return true;
    try {
      return new RegExp(`^(?:.*\\.)?(?:${key})$`).test(module);
    } catch {
      return false;
    }
  });
}

class OpenLoraAdapter implements LoraAdapter {
  readonly path: string;
  readonly config: LoraConfig;
  private readonly file: SafetensorsFile;
  private readonly byBase: Map<string, Target>;
  private readonly full: Map<string, string>;

  constructor(path: string, config: LoraConfig, file: SafetensorsFile) {
    this.path = path;
    this.config = config;
    this.file = file;
    const parts = new Map<string, { a?: string; b?: string; embedding: boolean }>();
    this.full = new Map();
    for (const name of file.names()) {
      const m = FACTOR.exec(name) ?? EMBED_FACTOR.exec(name);
      if (!m) {
        if (/lora_magnitude_vector|lora_bias/.test(name)) {
          throw new NotSupportedError('E_LORA_UNSUPPORTED', `${path}: tensor '${name}' belongs to a LoRA variant (DoRA or LoRA bias) that evomerge does not support yet`);
        }
        this.full.set(name.replace(/^base_model\.model\./, ''), name);
        continue;
      }
      const module = m[1]!;
      const which = m[2]!;
      const entry = parts.get(module) ?? { embedding: which.startsWith('lora_embedding') };
      if (which.endsWith('A')) entry.a = name;
      else entry.b = name;
      parts.set(module, entry);
    }
    this.byBase = new Map();
    for (const [module, p] of parts) {
      if (!p.a || !p.b) {
        throw new CheckpointFormatError('E_LORA', file.path, `module '${module}' has lora_${p.a ? 'A' : 'B'} but not lora_${p.a ? 'B' : 'A'}; the adapter is incomplete`);
      }
      this.byBase.set(`${module}.weight`, { module, a: p.a, b: p.b, embedding: p.embedding });
    }
  }

  targets(): string[] {
    return [...this.byBase.keys()].sort();
  }

  fullTensors(): string[] {
    return [...this.full.keys()].sort();
  }

  private target(baseName: string): Target {
    const t = this.byBase.get(baseName);
    if (!t) throw new MissingTensorError(`the LoRA adapter ${this.path} has no update for '${baseName}' (it updates ${this.byBase.size} tensors; see evomerge inspect)`);
    return t;
  }

  /** Rank and scale for one module, honouring rank_pattern and alpha_pattern. */
  rankAndScale(module: string): { rank: number; scale: number } {
    const { rank_pattern: rp, alpha_pattern: ap, r, lora_alpha: alpha0, use_rslora: rs } = this.config;
    const rk = patternKeyFor(Object.keys(rp), module);
    const ak = patternKeyFor(Object.keys(ap), module);
    const rank = rk !== undefined ? rp[rk]! : r;
    const alpha = ak !== undefined ? ap[ak]! : alpha0;
    return { rank, scale: rs ? alpha / Math.sqrt(rank) : alpha / rank };
  }

  factors(baseName: string): LoraFactors {
    const t = this.target(baseName);
    const ia = this.file.info(t.a);
    const ib = this.file.info(t.b);
    const { rank, scale } = this.rankAndScale(t.module);
    const bad = (why: string) => new CheckpointFormatError('E_LORA_SHAPE', this.file.path, `module '${t.module}': ${why}`);
    if (ia.shape.length !== 2 || ib.shape.length !== 2) throw bad(`lora_A ${JSON.stringify(ia.shape)} and lora_B ${JSON.stringify(ib.shape)} must both be matrices`);
    // linear: A [r, in], B [out, r]; embedding: A [r, vocab], B [dim, r]; both give B A [B0, A1]
    const [ra, inFeatures] = ia.shape as [number, number];
    const [outFeatures, rb] = ib.shape as [number, number];
    if (ra !== rb) throw bad(`lora_A has rank ${ra} but lora_B has rank ${rb}`);
    if (ra !== rank) throw bad(`the factors have rank ${ra} but adapter_config.json gives r = ${rank} for this module`);
    return {
      a: this.file.readFloat32(t.a),
      b: this.file.readFloat32(t.b),
      rank,
      scale,
      outFeatures,
      inFeatures,
      transposed: t.embedding || this.config.fan_in_fan_out,
    };
  }

  delta(baseName: string): Float32Array {
    return materializeLora(this.factors(baseName));
  }

  close(): void {
    this.file.close();
  }
}

/** scale * B A, row-major [out, in] (or its transpose [in, out] when `transposed`). */
export function materializeLora(f: LoraFactors): Float32Array {
  const { a, b, rank, scale, outFeatures: out, inFeatures: inn } = f;
  const prod = new Float32Array(out * inn);
  for (let o = 0; o < out; o++) {
    const row = o * inn;
    for (let k = 0; k < rank; k++) {
      const s = scale * b[o * rank + k]!;
      if (s === 0) continue;
      const ak = k * inn;
      for (let i = 0; i < inn; i++) prod[row + i]! += s * a[ak + i]!;
    }
  }
  if (!f.transposed) return prod;
  const t = new Float32Array(out * inn);
  for (let o = 0; o < out; o++) for (let i = 0; i < inn; i++) t[i * out + o] = prod[o * inn + i]!;
  return t;
}

export function openLoraAdapter(dir: string): LoraAdapter {
  const abs = resolve(dir);
  const cfgFile = join(abs, 'adapter_config.json');
  if (!existsSync(cfgFile)) throw new CheckpointFormatError('E_LORA', abs, 'no adapter_config.json: this is not a PEFT adapter folder');
  const parsed = LoraConfigSchema.safeParse(readConfigFile(abs));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new CheckpointFormatError('E_LORA_CONFIG', cfgFile, `field '${issue.path.join('.')}': ${issue.message}`);
  }
  const config = parsed.data;
  if (config.peft_type !== undefined && config.peft_type !== 'LORA') {
    throw new NotSupportedError('E_LORA_UNSUPPORTED', `${cfgFile}: peft_type '${config.peft_type}' is not supported (only LORA)`);
  }
  if (config.use_dora) throw new NotSupportedError('E_LORA_UNSUPPORTED', `${cfgFile}: DoRA adapters (use_dora: true) are not supported yet`);
  const file = join(abs, 'adapter_model.safetensors');
  if (!existsSync(file)) throw new CheckpointFormatError('E_LORA', abs, 'adapter_model.safetensors is missing (evomerge reads safetensors adapters only)');
  return new OpenLoraAdapter(abs, config, SafetensorsFile.open(file));
}

function readConfigFile(dir: string): unknown {
  // adapter_config.json shares config.json's JSON rules; reuse the same reader on another name
  return readConfig(dir, 'adapter_config.json');
}
