/**
 * The evaluation pool: piscina worker threads that each turn a task (a candidate) into a
 * result. What the pool guarantees, whatever the handler does:
 * - every `run` settles with an outcome: a value, or a failure with its kind and message
 *   (`error` when the handler throws, `timeout` past the per-task limit, `worker-exit` when the
 *   thread dies); the pool replaces a dead or terminated thread and goes on;
 * - data given as `data` (for example source tensors in SharedArrayBuffers) reaches every
 *   thread by reference, without copying;
 * - a native tfjs backend (tfjs-node, tfjs-node-gpu) cannot be loaded in more than one thread
 *   of a process (tensorflow/tfjs issue 8388), so `threadsFor` caps such pools at one thread.
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { InputError } from '../errors.ts';
import type { TaskOutcome } from '../candidate/types.ts';

export type { FailureKind, TaskOutcome } from '../candidate/types.ts';

export interface PoolOptions {
  /** Absolute path of the handler module: it exports `createHandler(data)` returning `(task) => result`. */
  handler: string;
  /** Passed to `createHandler` in every thread (structured clone; SharedArrayBuffers are shared). */
  data?: unknown;
  threads: number;
  /** Default per-task limit in milliseconds (0 or absent: none). */
  timeoutMs?: number;
  /** Heap limit per thread in MB, so a runaway task kills its thread rather than the process. */
  maxOldGenerationSizeMb?: number;
}

export type BackendKind = 'native' | 'wasm' | 'cpu';

/** Threads a pool may use for a backend: native backends get exactly one per process. */
export function threadsFor(backend: BackendKind, requested: number): number {
  if (!Number.isInteger(requested) || requested < 1) throw new InputError('E_BAD_WORKERS', `workers must be a positive integer, got ${requested}`);
  return backend === 'native' ? 1 : Math.min(requested, Math.max(1, availableParallelism() * 2));
}

const THREAD_ENTRY = fileURLToPath(new URL('./thread.mjs', import.meta.url));

export class WorkerPool<T, R> {
  private readonly piscina: Piscina;
  private readonly timeoutMs: number;
  private busyMs = 0;
  private readonly startedAt = performance.now();
  readonly threads: number;

  constructor(options: PoolOptions) {
    this.threads = options.threads;
    this.timeoutMs = options.timeoutMs ?? 0;
    this.piscina = new Piscina({
      filename: THREAD_ENTRY,
      minThreads: options.threads,
      maxThreads: options.threads,
      // one task per thread at a time: an evaluation owns its thread (and its backend)
      concurrentTasksPerWorker: 1,
      idleTimeout: 60_000,
      workerData: { handler: options.handler, data: options.data },
      resourceLimits: options.maxOldGenerationSizeMb ? { maxOldGenerationSizeMb: options.maxOldGenerationSizeMb } : undefined,
    });
    // a thread that dies between tasks is replaced by piscina; its error must not crash the owner
    this.piscina.on('error', () => {});
  }

  /** Run one task; never rejects (failures are outcomes). */
  async run(task: T, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<TaskOutcome<R>> {
    const limit = options.timeoutMs ?? this.timeoutMs;
    const controller = new AbortController();
    let timedOut = false;
    const timer = limit > 0 ? setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, limit) : null;
    const onAbort = () => controller.abort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const t0 = performance.now();
    try {
      const r = (await this.piscina.run(task, { signal: controller.signal })) as { value: R; worker: number; ms: number };
      this.busyMs += r.ms;
      return { ok: true, value: r.value, ms: r.ms, worker: r.worker };
    } catch (err) {
      const ms = performance.now() - t0;
      this.busyMs += ms;
      const e = err as Error;
      if (timedOut) return { ok: false, kind: 'timeout', error: `timed out after ${limit} ms; the worker thread was terminated`, ms, worker: null };
      if (options.signal?.aborted) return { ok: false, kind: 'aborted', error: 'cancelled', ms, worker: null };
      const exited = /worker (thread )?exited|terminated|exited with code/i.test(e.message ?? '');
      return { ok: false, kind: exited ? 'worker-exit' : 'error', error: e.message || String(err), ms, worker: null };
    } finally {
      if (timer) clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Fraction of thread time spent on tasks since the pool started. */
  utilisation(): number {
    const elapsed = performance.now() - this.startedAt;
    return elapsed > 0 ? Math.min(1, this.busyMs / (elapsed * this.threads)) : 0;
  }

  get queued(): number {
    return this.piscina.queueSize;
  }

  async close(): Promise<void> {
    await this.piscina.destroy();
  }
}
