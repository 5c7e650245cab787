/**
 * A plan's tensor tasks merged on several threads into one folder (`evomerge merge` on every
 * core). The calling thread plans the recipe (every input error is raised there), declares the
 * output's shards and hands each tensor task, largest first, to the next free thread together
 * with its placement: the shard's file descriptor and the tensor's byte offset
 * (checkpoint/safetensors.ts `placement`). Each thread holds its own SourceSet and plan of the same
 * recipe (planning is deterministic), merges the task as `writeMergedFolder` does and writes the
 * bytes at their offset, so the folder is byte for byte the one the single-thread writer makes
 * whatever the order in which tasks finish. Random masks depend on (seed, tensor, model) only
 * (tensor/fastrng.ts), not on the thread.
 *
 * Memory: one thread holds one task's inputs and output at a time, so the peak is the threads
 * times the largest task's bytes (`taskPeakBytes`); `mergeThreads` picks the threads a memory
 * budget allows. The threads are the pool's (src/pool/pool.ts, one task per thread); this module
 * is its handler (`createHandler`) and the scheduler (`writeMergedFolderThreaded`), which is
 * given the pool's `run` by its caller (src/report/merge-folder.ts), as merge/ sits below pool/.
 */
import { CheckpointWriter, writeTensorAt, type TensorPlacement } from '../checkpoint/index.ts';
import { DTYPE_SIZE } from '../tensor/dtype.ts';
import type { Recipe } from '../recipe/index.ts';
import { computeTensor } from './execute.ts';
import type { MergePlan, TensorTask } from './plan.ts';
import { SourceSet } from './reader.ts';
import { planRecipe, type WriteFolderOptions } from './write.ts';

/** What every merge thread is created with. */
export interface MergeThreadData {
  /** The recipe as the calling thread planned it (seed and out_dtype already applied). */
  recipe: Recipe;
  /** One Int32 counter: threads that have closed their sources (see the 'close' job). */
  closed: SharedArrayBuffer;
}

export type MergeThreadJob =
  | { kind: 'tensor'; index: number; name: string; place: TensorPlacement; seed: string | number }
  /** Close this thread's sources, then wait until `threads` threads have: so each thread gets exactly one. */
  | { kind: 'close'; threads: number };

/** Runs one job on a free thread; rejects with the thread's error. */
export type MergeJobRunner = (job: MergeThreadJob) => Promise<number>;

/** The handler of a merge thread (loaded by src/pool/thread.mjs): returns bytes written. */
export function createHandler(data: MergeThreadData): (job: MergeThreadJob) => number {
  let state: { sources: SourceSet; plan: MergePlan; reader: ReturnType<SourceSet['reader']> } | null = null;
  let out: Float32Array | null = null;
  const closed = new Int32Array(data.closed);
  return (job) => {
    if (job.kind === 'close') {
      state?.sources.close();
      state = null;
      out = null;
      Atomics.add(closed, 0, 1);
      Atomics.notify(closed, 0);
      const deadline = Date.now() + 30_000;
      for (let seen = Atomics.load(closed, 0); seen < job.threads && Date.now() < deadline; seen = Atomics.load(closed, 0)) {
        Atomics.wait(closed, 0, seen, 100);
      }
      return 0;
    }
    if (!state) {
      const sources = new SourceSet();
      state = { sources, plan: planRecipe(data.recipe, sources), reader: sources.reader() };
    }
    const task = state.plan.tasks[job.index];
    if (!task || task.name !== job.name) throw new Error(`merge thread: task ${job.index} is '${task?.name}' here, '${job.name}' in the calling thread (the plans differ)`);
    if (task.kind === 'copy') {
      const raw = state.sources.readRaw(task.models[0]!.model, task.models[0]!.tensor);
      writeTensorAt(job.place, raw);
      return raw.byteLength;
    }
    const n = elements(task);
    if (!out || out.length < n) out = new Float32Array(n);
    writeTensorAt(job.place, computeTensor(task, state.plan.method, state.reader, job.seed, out.length === n ? out : out.subarray(0, n)));
    return n * DTYPE_SIZE[task.dtype];
  };
}

const elements = (t: TensorTask): number => t.shape.reduce((a, b) => a * b, 1);

/** A thread's fixed cost beside its tasks: its V8 heap, tsx, the WebAssembly kernels' fixed areas. */
export const THREAD_OVERHEAD_BYTES = 160 * 2 ** 20;

/**
 * The most memory one thread holds for one task of `plan`: its float32 output, plus the inputs
 * it reads. A task of a method that reads half bits (DARE, linear, task arithmetic), whose sources
 * are all BF16 or F16, reads them block by block and keeps at most DARE's masks, one byte per
 * element and group of four models (tensor/wasm-half.ts; counted for all three); any
 * other reads each input as float32 (merge/reader.ts pools them) and may hold as many float32
 * task vectors in the WebAssembly memory (tensor/wasm-ties.ts `wasmDeltaScratch`).
 */
export function taskPeakBytes(plan: MergePlan, sources: SourceSet): number {
  let peak = 0;
  for (const t of plan.tasks) {
    const n = elements(t);
    if (t.kind === 'copy') {
      peak = Math.max(peak, n * DTYPE_SIZE[t.dtype]);
      continue;
    }
    const refs = [...(t.base ? [t.base] : []), ...t.models];
    const half = plan.method.readsHalf && !t.rows && !t.lora && refs.length > 0 && refs.every((r) => {
      try {
        const dt = sources.checkpoint(r.model).info(r.tensor).dtype;
        return dt === 'BF16' || dt === 'F16';
      } catch {
        return false; // an adapter or an in-memory source: counted as float32
      }
    });
    const inputs = half ? Math.ceil(t.models.length / 4) * n : (refs.length + t.models.length) * 4 * n;
    peak = Math.max(peak, 4 * n + inputs);
  }
  return peak;
}

/**
 * Output elements below which a merge stays on one thread unless more are asked for: starting a
 * pool thread (tsx, the plan) costs about a second, more than merging 100M elements saves.
 */
export const THREADED_MIN_ELEMENTS = 2 ** 27;

/** Output elements of a plan. */
export function planElements(plan: MergePlan): number {
  return plan.tasks.reduce((a, t) => a + elements(t), 0);
}

/**
 * Threads for a merge: `requested`, at most the memory budget over one thread's peak (at least
 * one: a single thread's peak is what the single-thread writer holds anyway).
 */
export function mergeThreads(requested: number, budgetBytes: number, perThreadBytes: number): number {
  return Math.max(1, Math.min(requested, Math.floor(budgetBytes / (perThreadBytes + THREAD_OVERHEAD_BYTES))));
}

/**
 * `writeMergedFolder` on `threads` threads: the same folder, byte for byte. `run` hands a job to a
 * free thread of a pool whose handler is this module's `createHandler` with `data`.
 */
export async function writeMergedFolderThreaded(plan: MergePlan, dir: string, o: WriteFolderOptions & { threads: number; run: MergeJobRunner }): Promise<number> {
  const writer = new CheckpointWriter(dir, {
    tensors: plan.tasks.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })),
    maxShardBytes: o.maxShardBytes,
    metadata: o.metadata ?? { format: 'pt' },
    durable: o.durable,
  });
  const order = plan.tasks.map((_, i) => i).sort((a, b) => elements(plan.tasks[b]!) - elements(plan.tasks[a]!) || a - b);
  let next = 0;
  let done = 0;
  let bytes = 0;
  let failure: unknown = null;
  const lane = async (): Promise<void> => {
    while (failure === null && next < order.length) {
      const index = order[next++]!;
      const task = plan.tasks[index]!;
      try {
        const written = await o.run({ kind: 'tensor', index, name: task.name, place: writer.placement(task.name), seed: o.seed });
        bytes += written; // after the await: `bytes += await ...` would add to a stale total
        writer.markWritten(task.name);
        o.onProgress?.(++done, plan.tasks.length, task.name);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, o.threads) }, lane));
    // every thread closes its sources before the writer's files are closed or removed
    await Promise.all(Array.from({ length: o.threads }, () => o.run({ kind: 'close', threads: o.threads }).catch(() => 0)));
    if (failure !== null) throw failure;
    writer.finish({ config: o.config, ...(o.tokenizerFrom ? { tokenizerFrom: o.tokenizerFrom, tokenizerSkip: o.tokenizerSkip } : {}), files: o.files });
  } catch (err) {
    writer.abort();
    throw err;
  }
  return bytes;
}
