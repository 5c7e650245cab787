/**
 * Merging to disk: open the sources, plan (every input error raised here, before any output),
 * then stream tensor by tensor into a Hugging Face folder through the checkpoint writer. Peak
 * memory is about the sources' float32 copies of one tensor plus its output. The folder gets
 * config.json, shards and index, tokenizer files, a model card README.md and the recipe as JSON
 * (plus mergekit_config.yml when mergekit can express the recipe).
 */
import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { openCheckpoint, openLoraAdapter, CheckpointWriter, temporaryPathFor } from '../checkpoint/index.ts';
import type { Checkpoint, LoraAdapter } from '../checkpoint/index.ts';
import { InputError } from '../errors.ts';
import type { DType, FloatDType } from '../tensor/dtype.ts';
import { recipeHash, recipeToMergekitYaml } from '../recipe/index.ts';
import type { Recipe } from '../recipe/index.ts';
import { computeTensor, type TensorReader } from './execute.ts';
import { planMerge, type MergePlan } from './plan.ts';

export interface MergeToDiskOptions {
  /** Overrides the recipe's seed. */
  seed?: number;
  /** Overrides the recipe's out_dtype. */
  outDtype?: FloatDType;
  maxShardBytes?: number;
  /** Called after each tensor: (done, total, name). */
  onProgress?: (done: number, total: number, name: string) => void;
}

export interface MergeResult {
  dir: string;
  tensors: number;
  bytesWritten: number;
  seconds: number;
  recipeHash: string;
}

/** Opened sources of a recipe, closed together. */
export class SourceSet {
  private readonly checkpoints = new Map<string, Checkpoint>();
  private readonly adapters = new Map<string, LoraAdapter>();

  checkpoint(model: string): Checkpoint {
    let c = this.checkpoints.get(model);
    if (!c) {
      c = openCheckpoint(model);
      this.checkpoints.set(model, c);
    }
    return c;
  }

  adapter(model: string): LoraAdapter {
    let a = this.adapters.get(model);
    if (!a) {
      a = openLoraAdapter(model);
      this.adapters.set(model, a);
    }
    return a;
  }

  /** A reader that reads each source tensor from disk as float32 (nothing cached). */
  reader(): TensorReader {
    return {
      read: (model, tensor) => this.checkpoint(model).readFloat32(tensor),
      loraFactors: (adapter, tensor) => this.adapter(adapter).factors(tensor),
      loraDelta: (adapter, tensor) => this.adapter(adapter).delta(tensor),
    };
  }

  close(): void {
    for (const c of this.checkpoints.values()) c.close();
    for (const a of this.adapters.values()) a.close();
    this.checkpoints.clear();
    this.adapters.clear();
  }
}

/** Plan a recipe against its sources on disk (raises every input error). */
export function planRecipe(recipe: Recipe, sources: SourceSet, outDtype?: DType): MergePlan {
  return planMerge(recipe, (m) => sources.checkpoint(m), (m) => sources.adapter(m), outDtype);
}

function modelCard(plan: MergePlan, hash: string, seed: number): string {
  const r = plan.recipe;
  const m = plan.method;
  const lines = [
    '---',
    'tags:',
    '- merge',
    '- evomerge',
    ...(m.mergekitId ? ['- mergekit'] : []),
    '---',
    '',
    `# Merged model`,
    '',
    `Made with evomerge using **${m.title}** (\`${m.id}\`): ${m.reference}.`,
    '',
    '## Sources',
    '',
    ...(r.base ? [`- base: \`${r.base}\``] : []),
    ...plan.models.filter((x) => x !== r.base).map((x) => `- \`${x}\``),
    '',
    '## Parameters',
    '',
  ];
  for (const p of m.params) {
    const set = r.parameters && Object.hasOwn(r.parameters, p.name) ? JSON.stringify(r.parameters[p.name]) : null;
    lines.push(`- \`${p.name}\` (${p.scope}): ${set ?? (p.default === undefined ? (p.scope === 'per-model' ? 'set per model (below)' : 'required') : `default ${JSON.stringify(p.default)}`)}`);
  }
  for (const s of r.sources ?? []) if (s.parameters) lines.push(`- \`${s.model}\`: ${JSON.stringify(s.parameters)}`);
  for (const [i, s] of (r.slices ?? []).entries()) {
    lines.push(`- slice ${i}: ${s.sources.map((x) => `\`${x.model}\` layers [${x.layer_range.join(', ')})${x.parameters ? ` ${JSON.stringify(x.parameters)}` : ''}`).join(', ')}${s.parameters ? `; ${JSON.stringify(s.parameters)}` : ''}`);
  }
  lines.push('', `Seed: ${seed}. Recipe hash: \`${hash}\`. The full recipe is in \`recipe.json\`.`, '');
  return lines.join('\n');
}

/** Staging folders `.<name>.tmp-<pid>-<hex>` beside `dir` left by merges whose process is gone (killed). */
function removeStaleStaging(dir: string): void {
  const parent = dirname(dir);
  if (!existsSync(parent)) return;
  const pattern = new RegExp(`^\\.${basename(dir).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.tmp-(\\d+)-[0-9a-f]+$`);
  for (const name of readdirSync(parent)) {
    const pid = pattern.exec(name)?.[1];
    if (!pid) continue;
    try {
      process.kill(Number(pid), 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') rmSync(join(parent, name), { recursive: true, force: true });
    }
  }
}

/**
 * Merge a recipe into a Hugging Face folder at `dir` (which must not exist or be empty). The
 * folder is written under a hidden staging name beside `dir` and renamed into place when
 * complete, so a killed merge leaves no partial folder under the final name and a rerun of the
 * same command finishes the job (it removes the dead process's staging folder).
 */
export function mergeToDisk(recipeIn: Recipe, dir: string, options: MergeToDiskOptions = {}): MergeResult {
  const t0 = performance.now();
  const recipe: Recipe = { ...recipeIn, seed: options.seed ?? recipeIn.seed, ...(options.outDtype ? { out_dtype: ({ F32: 'float32', F16: 'float16', BF16: 'bfloat16' } as const)[options.outDtype] } : {}) };
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new InputError('E_OUTPUT_EXISTS', `${dir}: the output folder exists and is not empty; choose a new folder or empty it`);
  }
  const sources = new SourceSet();
  try {
    const plan = planRecipe(recipe, sources);
    const hash = recipeHash(recipe);
    let mergekitYaml: string | null = null;
    try {
      mergekitYaml = recipeToMergekitYaml(recipe);
    } catch {
      mergekitYaml = null; // not expressible in mergekit: recipe.json is the record
    }
    const ref = sources.checkpoint(plan.configFrom);
    const finalDir = resolve(dir);
    removeStaleStaging(finalDir);
    const staging = temporaryPathFor(finalDir);
    const writer = new CheckpointWriter(staging, {
      tensors: plan.tasks.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })),
      maxShardBytes: options.maxShardBytes,
      metadata: { format: 'pt', evomerge_recipe_hash: hash },
    });
    const reader = sources.reader();
    let bytes = 0;
    try {
      for (const [i, task] of plan.tasks.entries()) {
        if (task.kind === 'copy') {
          const raw = sources.checkpoint(task.models[0]!.model).readRaw(task.models[0]!.tensor);
          writer.write(task.name, raw);
          bytes += raw.byteLength;
        } else {
          const out = computeTensor(task, plan.method, reader, recipe.seed);
          writer.write(task.name, out);
          bytes += out.length * (task.dtype === 'F32' ? 4 : 2);
        }
        options.onProgress?.(i + 1, plan.tasks.length, task.name);
      }
      const config: Record<string, unknown> = { ...(ref.config ?? {}) };
      // the layer count's key: num_hidden_layers (Hugging Face), num_blocks (the residual MLP)
      for (const key of ['num_hidden_layers', 'num_blocks']) if (recipe.slices && key in config) config[key] = plan.layers;
      const outDt = recipe.out_dtype ?? recipe.dtype;
      if (outDt) config.torch_dtype = outDt;
      const files: Record<string, string> = {
        'README.md': modelCard(plan, hash, recipe.seed),
        'recipe.json': `${JSON.stringify(recipe, null, 2)}\n`,
      };
      if (mergekitYaml) files['mergekit_config.yml'] = mergekitYaml;
      const tokSource = plan.tokenizerFrom === plan.configFrom ? ref : sources.checkpoint(plan.tokenizerFrom);
      writer.finish({ config, tokenizerFrom: tokSource, files });
      // rename(2) replaces an empty folder, so an empty `dir` given by the user is fine
      renameSync(staging, finalDir);
    } catch (err) {
      writer.abort();
      rmSync(staging, { recursive: true, force: true });
      throw err;
    }
    return { dir, tensors: plan.tasks.length, bytesWritten: bytes, seconds: (performance.now() - t0) / 1000, recipeHash: hash };
  } finally {
    sources.close();
  }
}
