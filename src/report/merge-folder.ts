/**
 * A recipe merged into a finished Hugging Face folder, what `evomerge merge` writes and what
 * `evomerge export` writes for a candidate's model: the tensors streamed by the merge's writer
 * (src/merge/write.ts), config.json, tokenizer files, the model card README.md (./card.ts) and
 * the recipe as JSON (plus mergekit_config.yml when mergekit can express the recipe).
 */
import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { temporaryPathFor } from '../checkpoint/index.ts';
import { InputError, RuntimeFailure } from '../errors.ts';
import { mergeThreads, planElements, planRecipe, THREADED_MIN_ELEMENTS, SourceSet, taskPeakBytes, writeMergedFolder, writeMergedFolderThreaded, type MergePlan, type MergeThreadData, type MergeThreadJob, type WriteFolderOptions } from '../merge/index.ts';
import { WorkerPool } from '../pool/pool.ts';
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
  /** Threads that merged the tensors. */
  threads?: number;
  /** What planning accepted but reported (embedding rows cut, a model without tokenizer, ...). */
  warnings?: string[];
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

/** A merge planned and ready to write: everything but the tensors. */
interface PreparedMerge {
  recipe: Recipe;
  plan: MergePlan;
  sources: SourceSet;
  hash: string;
  staging: string;
  finalDir: string;
  write: WriteFolderOptions;
}

function prepareMerge(recipeIn: Recipe, dir: string, sources: SourceSet, options: MergeToDiskOptions): PreparedMerge {
  const recipe: Recipe = { ...recipeIn, seed: options.seed ?? recipeIn.seed, ...(options.outDtype ? { out_dtype: ({ F32: 'float32', F16: 'float16', BF16: 'bfloat16' } as const)[options.outDtype] } : {}) };
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new InputError('E_OUTPUT_EXISTS', `${dir}: the output folder exists and is not empty; choose a new folder or empty it`);
  }
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
  if (plan.vocab?.rows != null) config.vocab_size = plan.vocab.rows; // withPlannedVocab (src/merge/plan.ts)
  const files: Record<string, string> = {
    'README.md': mergedModelCard(plan, hash, recipe.seed),
    'recipe.json': `${JSON.stringify(recipe, null, 2)}\n`,
  };
  if (mergekitYaml) files['mergekit_config.yml'] = mergekitYaml;
  // an output vocabulary's tokenizer files (src/merge/vocab.ts) replace the source's
  Object.assign(files, plan.vocab?.files ?? {});
  const tokSource = plan.vocab?.sourceDir ?? (plan.tokenizerFrom === plan.configFrom ? ref : sources.checkpoint(plan.tokenizerFrom));
  return {
    recipe, plan, sources, hash, staging, finalDir,
    write: {
      seed: recipe.seed, maxShardBytes: options.maxShardBytes, metadata: { format: 'pt', evomerge_recipe_hash: hash },
      config, tokenizerFrom: tokSource, tokenizerSkip: plan.vocab?.skip, files, onProgress: options.onProgress,
    },
  };
}

/** Rename the written staging folder into place; on a failed write remove it. */
function settle(p: PreparedMerge, dir: string, t0: number, bytes: number, threads: number): MergeResult {
  // rename(2) replaces an empty folder, so an empty `dir` given by the user is fine
  renameSync(p.staging, p.finalDir);
  return { dir, tensors: p.plan.tasks.length, bytesWritten: bytes, seconds: (performance.now() - t0) / 1000, recipeHash: p.hash, threads, ...(p.plan.warnings ? { warnings: p.plan.warnings } : {}) };
}

/**
 * Merge a recipe into a Hugging Face folder at `dir` (which must not exist or be empty). The
 * folder is written under a hidden staging name beside `dir` and renamed into place when
 * complete, so a killed merge leaves no partial folder under the final name and a rerun of the
 * same command finishes the job (it removes the dead process's staging folder).
 */
export function mergeToDisk(recipeIn: Recipe, dir: string, options: MergeToDiskOptions = {}): MergeResult {
  const t0 = performance.now();
  const sources = new SourceSet();
  try {
    const p = prepareMerge(recipeIn, dir, sources, options);
    try {
      return settle(p, dir, t0, writeMergedFolder(p.plan, sources, p.staging, p.write), 1);
    } catch (err) {
      rmSync(p.staging, { recursive: true, force: true });
      throw err;
    }
  } finally {
    sources.close();
  }
}

export interface ThreadedMergeOptions extends MergeToDiskOptions {
  /** Threads wanted (default: the machine's cores; one below THREADED_MIN_ELEMENTS output elements). */
  threads?: number;
  /** Bytes the merge's threads may hold together (default: half the machine's memory). */
  maxMemory?: number;
}

const MERGE_HANDLER = fileURLToPath(new URL('../merge/parallel.ts', import.meta.url));

/**
 * `mergeToDisk` with the tensor tasks spread over pool threads (src/merge/parallel.ts): the same
 * folder, byte for byte. The threads are `threads`, at most what `maxMemory` allows at one task's
 * peak per thread; one thread merges in this thread without a pool.
 */
export async function mergeToDiskThreaded(recipeIn: Recipe, dir: string, options: ThreadedMergeOptions = {}): Promise<MergeResult> {
  const t0 = performance.now();
  const sources = new SourceSet();
  try {
    const p = prepareMerge(recipeIn, dir, sources, options);
    const requested = options.threads ?? (planElements(p.plan) < THREADED_MIN_ELEMENTS ? 1 : availableParallelism());
    if (!Number.isInteger(requested) || requested < 1) throw new InputError('E_BAD_THREADS', `the merge's threads must be a positive integer, got ${requested}; pass --threads 1 or more`);
    const budget = options.maxMemory ?? Math.floor(totalmem() / 2);
    const tasks = p.plan.tasks.length;
    const threads = Math.min(tasks, mergeThreads(requested, budget, taskPeakBytes(p.plan, sources)));
    if (threads <= 1) {
      try {
        return settle(p, dir, t0, writeMergedFolder(p.plan, sources, p.staging, p.write), 1);
      } catch (err) {
        rmSync(p.staging, { recursive: true, force: true });
        throw err;
      }
    }
    const data: MergeThreadData = { recipe: p.recipe, closed: new SharedArrayBuffer(4) };
    const pool = new WorkerPool<MergeThreadJob, number>({ handler: MERGE_HANDLER, data, threads });
    try {
      const run = async (job: MergeThreadJob): Promise<number> => {
        const r = await pool.run(job);
        if (!r.ok) throw new RuntimeFailure('E_MERGE_THREAD', `merging ${job.kind === 'tensor' ? `tensor '${job.name}'` : 'on a thread'} failed: ${r.error}`);
        return r.value;
      };
      const bytes = await writeMergedFolderThreaded(p.plan, p.staging, { ...p.write, threads, run });
      return settle(p, dir, t0, bytes, threads);
    } catch (err) {
      rmSync(p.staging, { recursive: true, force: true });
      throw err;
    } finally {
      await pool.close();
    }
  } finally {
    sources.close();
  }
}
