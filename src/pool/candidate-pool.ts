/** The pool of candidate handlers (src/candidate/handler.ts) that both local runners use. */
import { fileURLToPath } from 'node:url';
import type { BuiltFolder, CandidateScore, CandidateTask, WorkerData } from '../candidate/types.ts';
import { threadsFor, WorkerPool } from './pool.ts';

const CANDIDATE_HANDLER = fileURLToPath(new URL('../candidate/handler.ts', import.meta.url));

/**
 * A pool of `workers` threads (one for a native tfjs backend, see threadsFor) set up with `data`.
 * `timeoutMs`: the per-candidate limit (0 or absent: none, or the one given to each `run`).
 */
export function candidatePool(o: { data: WorkerData; workers: number; timeoutMs?: number }): WorkerPool<CandidateTask, CandidateScore | BuiltFolder> {
  const native = o.data.backend === 'tensorflow' || o.data.backend === 'tensorflow-gpu';
  return new WorkerPool<CandidateTask, CandidateScore | BuiltFolder>({ handler: CANDIDATE_HANDLER, data: o.data, threads: threadsFor(native ? 'native' : 'wasm', o.workers), timeoutMs: o.timeoutMs });
}

