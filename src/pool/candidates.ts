/**
 * Pools that evaluate a search's candidates: threads running the one candidate handler
 * (src/candidate/handler.ts), for the search's local runner and for each stage a queue worker
 * serves (src/queue/consumer.ts).
 */
import { fileURLToPath } from 'node:url';
import type { CandidateRunner, CandidateScore, CandidateTask, WorkerData } from '../candidate/types.ts';
import { threadsFor, WorkerPool } from './pool.ts';

const CANDIDATE_HANDLER = fileURLToPath(new URL('../candidate/handler.ts', import.meta.url));

/**
 * A pool of `workers` threads (one for a native tfjs backend, see threadsFor) set up with `data`.
 * `timeoutMs`: the per-candidate limit (0 or absent: none, or the one given to each `run`).
 */
export function candidatePool(o: { data: WorkerData; workers: number; timeoutMs?: number }): WorkerPool<CandidateTask, CandidateScore> {
  const native = o.data.backend === 'tensorflow' || o.data.backend === 'tensorflow-gpu';
  return new WorkerPool<CandidateTask, CandidateScore>({ handler: CANDIDATE_HANDLER, data: o.data, threads: threadsFor(native ? 'native' : 'wasm', o.workers), timeoutMs: o.timeoutMs });
}

/** A search's local runner: the candidates of a stage evaluated by a pool in this process. */
export function localRunner(o: { data: WorkerData; workers: number; timeoutMs: number }): CandidateRunner {
  const pool = candidatePool(o);
  return {
    threads: pool.threads,
    run: (task) => pool.run(task),
    utilisation: () => pool.utilisation(),
    close: () => pool.close(),
  };
}
