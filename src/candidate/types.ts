/**
 * What passes between a search and whatever evaluates its candidates (a thread of the local pool,
 * src/pool/, or a queue worker on another machine, src/queue/): the task, the data an evaluation
 * slot is set up with once, and the score or the failure that comes back.
 */
import type { BackendChoice } from '../models/index.ts';
import type { Recipe } from '../recipe/index.ts';
import type { DfsStep } from '../space/dfs.ts';
import type { MetricValue } from '../store/index.ts';
import type { FidelityTask } from './fidelity.ts';
import type { SourceModels } from './sources.ts';

/** An evaluator of a search: its id in the run, its manifest file and its weight in the fitness. */
export interface EvaluatorSpec {
  id: string;
  manifest: string;
  weight: number;
}

/** What every evaluation slot of a stage is set up with (createHandler's argument, src/candidate/handler.ts). */
export interface WorkerData {
  sources: SourceModels;
  evaluators: EvaluatorSpec[];
  backend: BackendChoice;
  objective: 'weighted-sum' | 'multi';
  allowTestSplit: boolean;
  /**
   * A checkpoint of the candidates' architecture (the space's base model, else its first model),
   * given to command evaluators as `{base}`: a persistent program builds its model from it before
   * the first candidate (src/eval/protocol.ts).
   */
  baseCheckpoint?: string;
  /** Largest shard of a candidate folder written for command evaluators (default: the writer's, 5 GB). */
  shardBytes?: number;
  /** Where candidate folders for command evaluators are written (default: the system's temporary folder). */
  candidateDir?: string;
}

/**
 * How a stage whose evaluators are all commands is evaluated (src/pool/pipeline.ts): worker
 * threads merge candidates into folders, evaluation slots owned by the process score them, one
 * slot per GPU, so candidate k+1 is merged while candidate k is scored.
 */
export interface EvaluationPlan {
  /** One entry per evaluation slot: its name and GPU (null: a slot without one). */
  slots: SlotSpec[];
  /** Candidates merged (or being merged) beyond those the slots are scoring, at most. */
  ahead: number;
  /** Where candidate folders are written (a tmpfs such as /dev/shm when the plan allows). */
  candidateDir: string;
  /** Folder of the evaluators' stderr logs (the run folder's `evaluators/`); null: not kept. */
  logDir: string | null;
}

/** An evaluation slot: `gpu0`, `gpu1` with their GPU ids, or `slot0`, ... without. */
export interface SlotSpec {
  name: string;
  gpu: string | null;
}

/**
 * When each phase of a candidate ran, in milliseconds since the epoch (comparable across
 * threads): merging into its folder (writing included, `writeMs` of it) and scoring on a slot.
 */
export interface CandidatePhases {
  mergeStart?: number;
  mergeEnd?: number;
  writeMs?: number;
  scoreStart?: number;
  scoreEnd?: number;
  /** The evaluation slot that scored it. */
  slot?: string;
}

/** What a thread returns for a task with `build`: the candidate's folder, kept for an evaluation slot. */
export interface BuiltFolder {
  folder: string;
  /** The folder to remove once the candidate is scored (the folder's parent, of this candidate alone). */
  root: string;
  phases: CandidatePhases;
}

/** One candidate to evaluate: a PS recipe, or a DFS layer path over the stage's sources. */
export type CandidateTask = (
  | { kind: 'ps'; recipe: Recipe }
  | { kind: 'dfs'; sources: string[]; steps: DfsStep[]; embeddings: number; head: number }
) & {
  /** The candidate's id in the run database (names it in injected faults). */
  candidateId?: number;
  /** Multi-fidelity evaluation (space `fidelity`): rungs, confidence and the score to beat; absent: every item. */
  fidelity?: FidelityTask;
  /** Merge into a folder under `dir` and return it (BuiltFolder) instead of scoring: the pipelined runner's first half. */
  build?: { dir: string };
};

/** What a worker returns for one candidate. */
export interface CandidateScore {
  fitness: number | null;
  objectives?: number[];
  metrics: MetricValue[];
  backend?: string;
  error?: string;
  /** Multi-fidelity evaluation: the fraction of each evaluator's items the score rests on (absent: all, fidelity off). */
  fidelity?: number;
  /** Items the evaluators scored. */
  itemEvals?: number;
  /** When its merge and its scoring ran (the pipelined runner). */
  phases?: CandidatePhases;
}

export type FailureKind = 'error' | 'timeout' | 'worker-exit' | 'aborted';

/**
 * How a task ended: its value, or a failure with its kind and message. `W` names the worker: a
 * thread id in the local pool; a remote runner (src/queue/) names host, process and thread.
 */
export type TaskOutcome<R, W extends number | string = number> =
  | { ok: true; value: R; ms: number; worker: W }
  | { ok: false; kind: FailureKind; error: string; ms: number; worker: W | null; phases?: CandidatePhases };

export type CandidateOutcome = TaskOutcome<CandidateScore, number | string>;

/**
 * Evaluates a stage's candidate tasks, `threads` at a time: the local pool (src/pool/candidates.ts)
 * or the run's queue (src/queue/owner.ts). `run` never rejects (a failure is an outcome); the
 * candidate's ids name its job on a queue.
 */
export interface CandidateRunner {
  readonly threads: number;
  run(task: CandidateTask, candidate: { id: number; proposalId: string }): Promise<CandidateOutcome>;
  /** Fraction of the slots' time spent evaluating since the runner opened. */
  utilisation(): number;
  close(): Promise<void>;
}
