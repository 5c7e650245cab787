/**
 * What a search runs with, given by whoever starts it (the CLI, the demo, the benches, tests):
 * where its candidates are evaluated, and the gradient stage. The pool, the queue and the
 * gradient stage are implemented outside src/search/ (the queue and refine sit above it, and
 * search depends only on the candidate contract: src/README.md, the layers), so this file names
 * their contracts and the caller passes the implementations:
 *
 *   { local: localRunner (src/pool/), queue: queueRuntime (src/queue/), gradient: gradientStage (src/refine/) }
 *
 * A run that needs a part its caller left out (a queue, a space with `refine`) is refused
 * before anything is written.
 */
import type { CandidateRunner, WorkerData } from '../candidate/index.ts';
import type { RunRow, RunStore } from '../store/index.ts';

/** A queue's address as the search handles it: parsed by the queue runtime, shown without its password. */
export interface QueueTarget {
  readonly display: string;
}

/** Candidates on workers of other machines, through the run's queue (src/queue/'s queueRuntime). */
export interface QueueRuntime {
  /** Parses a stored queue URL (a resumed run goes back to its queue). */
  parse(url: string): QueueTarget;
  /** Refuses an unreachable queue within seconds, before a run is created or resumed. */
  checkReachable(url: QueueTarget): Promise<void>;
  /** The runner of one stage: each task a job on the run's queue, `slots` outstanding at once. */
  open(o: { url: QueueTarget; store: RunStore; run: RunRow; stage: number; data: WorkerData; timeoutMs: number; slots: number; onLog?: (line: string) => void }): Promise<CandidateRunner>;
}

export interface SearchRuntime {
  /** Candidates evaluated by `workers` threads of this process (src/pool/'s localRunner). */
  local(o: { data: WorkerData; workers: number; timeoutMs: number }): CandidateRunner;
  /** Absent: a run given a queue, or resumed from one, is refused (pass `queue: null` to evaluate locally). */
  queue?: QueueRuntime;
}
