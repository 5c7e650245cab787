/**
 * A recipe merged into a finished Hugging Face folder, what `evomerge merge` writes and what
 * `evomerge export` writes for a candidate's model: the tensors streamed by the merge's writer
 * (src/merge/write.ts), config.json, tokenizer files, the model card README.md (./card.ts) and
 * the recipe as JSON (plus mergekit_config.yml when mergekit can express the recipe).
 */
import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { temporaryPathFor } from '../checkpoint/index.ts';
import { InputError } from '../errors.ts';
import { planRecipe, SourceSet, writeMergedFolder } from '../merge/index.ts';
import { recipeHash, recipeToMergekitYaml, type Recipe } from '../recipe/index.ts';
import type { FloatDType } from '../tensor/dtype.ts';
import { mergedModelCard } from './card.ts';

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
    const config: Record<string, unknown> = { ...(ref.config ?? {}) };
    // the layer count's key: num_hidden_layers (Hugging Face), num_blocks (the residual MLP)
    for (const key of ['num_hidden_layers', 'num_blocks']) if (recipe.slices && key in config) config[key] = plan.layers;
    const outDt = recipe.out_dtype ?? recipe.dtype;
    if (outDt) config.torch_dtype = outDt;
    const files: Record<string, string> = {
      'README.md': mergedModelCard(plan, hash, recipe.seed),
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
