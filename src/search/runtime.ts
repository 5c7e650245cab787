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
import type { CandidateRunner, EvaluationPlan, EvaluatorSpec, SourceModels, WorkerData } from '../candidate/index.ts';
import type { MergePlan } from '../merge/index.ts';
import type { MultiMethodCodec, PsCodec, SearchSpace } from '../space/index.ts';
import type { CandidateRow, RunRow, RunStore } from '../store/index.ts';
import type { StageOptimizer } from './loop.ts';

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

/** What the gradient stage is given when it opens: the run, and the PS stage it refines. */
export interface GradientStageInput {
  store: RunStore;
  run: RunRow;
  stage: number;
  space: SearchSpace;
  evaluators: EvaluatorSpec[];
  sources: SourceModels;
  /** The model whose config and tokenizer the merged candidates take (the base, or the first model). */
  configFrom: string;
  codec: PsCodec | MultiMethodCodec;
  onLog: (line: string) => void;
  /** The candidate to start from (with `select`, the PS stage's chosen one); absent: the PS stage's best. */
  start?: CandidateRow;
}

/** The gradient stage (space `refine`, src/refine/'s gradientStage), run by the search's stage loop. */
export interface GradientStage {
  /** Refuses a set-up the stage cannot run, before the run database exists. */
  check(r: { space: SearchSpace; evaluators: readonly EvaluatorSpec[] }, sources: SourceModels, firstPlan: MergePlan): void;
  /** The stage's optimizer, and the search log's line on each of its results. */
  open(o: GradientStageInput): Promise<StageOptimizer & { resultLine(c: CandidateRow): string; close?(): Promise<void> }>;
}

export interface SearchRuntime {
  /**
   * Candidates evaluated by `workers` threads of this process (src/pool/'s localRunner); with
   * `evaluation` (every evaluator a command), merged on the threads and scored on this
   * process's evaluation slots, pipelined.
   */
  local(o: { data: WorkerData; workers: number; timeoutMs: number; evaluation?: EvaluationPlan }): CandidateRunner;
  /** Absent: a run given a queue, or resumed from one, is refused (pass `queue: null` to evaluate locally). */
  queue?: QueueRuntime;
  /** Absent: a space with `refine` is refused. */
  gradient?: GradientStage;
}
