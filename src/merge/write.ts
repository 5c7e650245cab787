/**
 * Merging to disk: open the sources, plan (every input error raised here, before any output),
 * then stream tensor by tensor into a Hugging Face folder through the checkpoint writer. Peak
 * memory is about the sources' float32 copies of one tensor plus its output. The folder gets
 * config.json, shards and index, tokenizer files, a model card README.md and the recipe as JSON
 * (plus mergekit_config.yml when mergekit can express the recipe).
 */
import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { CheckpointWriter, temporaryPathFor } from '../checkpoint/index.ts';
import type { Checkpoint } from '../checkpoint/index.ts';
import { InputError } from '../errors.ts';
import { DTYPE_SIZE, type DType, type FloatDType } from '../tensor/dtype.ts';
import { recipeHash, recipeToMergekitYaml } from '../recipe/index.ts';
import type { Recipe } from '../recipe/index.ts';
import { computeTensor } from './execute.ts';
import { planMerge, type MergePlan } from './plan.ts';
import { SourceSet } from './reader.ts';

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

export interface WriteFolderOptions {
  seed: string | number;
  maxShardBytes?: number;
  metadata?: Record<string, string>;
  /** Flush shards to disk (default true; false for a folder deleted after one read). */
  durable?: boolean;
  /** config.json of the output; none is written when absent (a bare safetensors source). */
  config?: object;
  tokenizerFrom?: Checkpoint | string;
  files?: Record<string, string>;
  onProgress?: (done: number, total: number, name: string) => void;
}

/**
 * Merge every tensor task of a plan straight into a new Hugging Face folder at `dir`, one tensor
 * at a time: the sources are read through the set's pooled reader and every output reuses one
 * buffer, so nothing of the model is held whole (peak: one task's inputs and output). Shards,
 * index, config, tokenizer files and `files` are written as CheckpointWriter does; on an error the
 * temporary files are removed and the error is rethrown. Returns the bytes of tensor data written.
 * Used by `evomerge merge` and by search workers writing a candidate for a command evaluator.
 */
export function writeMergedFolder(plan: MergePlan, sources: SourceSet, dir: string, o: WriteFolderOptions): number {
  const writer = new CheckpointWriter(dir, {
    tensors: plan.tasks.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })),
    maxShardBytes: o.maxShardBytes,
    metadata: o.metadata ?? { format: 'pt' },
    durable: o.durable,
  });
  const reader = sources.reader();
  let out: Float32Array | null = null;
  let bytes = 0;
  try {
    for (const [i, task] of plan.tasks.entries()) {
      if (task.kind === 'copy') {
        const raw = sources.readRaw(task.models[0]!.model, task.models[0]!.tensor);
        writer.write(task.name, raw);
        bytes += raw.byteLength;
      } else {
        const n = task.shape.reduce((a, b) => a * b, 1);
        if (!out || out.length < n) out = new Float32Array(n);
        const merged = computeTensor(task, plan.method, reader, o.seed, out.length === n ? out : out.subarray(0, n));
        writer.write(task.name, merged);
        bytes += n * DTYPE_SIZE[task.dtype];
      }
      o.onProgress?.(i + 1, plan.tasks.length, task.name);
    }
    writer.finish({ config: o.config, ...(o.tokenizerFrom ? { tokenizerFrom: o.tokenizerFrom } : {}), files: o.files });
  } catch (err) {
    writer.abort();
    throw err;
  }
  return bytes;
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
    let bytes: number;
    try {
      bytes = writeMergedFolder(plan, sources, staging, {
        seed: recipe.seed, maxShardBytes: options.maxShardBytes, metadata: { format: 'pt', evomerge_recipe_hash: hash },
        config, tokenizerFrom: tokSource, files, onProgress: options.onProgress,
      });
      // rename(2) replaces an empty folder, so an empty `dir` given by the user is fine
      renameSync(staging, finalDir);
    } catch (err) {
      rmSync(staging, { recursive: true, force: true });
      throw err;
    }
    return { dir, tensors: plan.tasks.length, bytesWritten: bytes, seconds: (performance.now() - t0) / 1000, recipeHash: hash };
  } finally {
    sources.close();
  }
}
