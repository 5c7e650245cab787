/** The evaluator contract (src/README.md, "Contracts"). */
import type { BackendInfo } from '../models/backend.ts';
import type { RunnableModel } from '../models/load.ts';
import type { EvalKind, EvalSplit } from './manifest.ts';

export interface EvalContext {
  /** The backend the model runs on, reported with every score. */
  backend: BackendInfo | null;
  /**
   * A folder holding the model as a Hugging Face checkpoint, for `command` evaluators. The CLI
   * passes the model's own folder; the search writes the merged candidate to a temporary folder.
   */
  modelDir?: () => Promise<string> | string;
  /** Called as items are scored. */
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
  /** Names the request a command evaluator's program is sent (the candidate's id in a search). */
  requestId?: string;
}

export interface EvalResult {
  /** The primary metric with its sign set so that larger is better (the optimizer maximises). */
  fitness: number;
  metrics: Record<string, number>;
  /** Items scored (windows of text for perplexity count their tokens in `metrics.tokens`). */
  samples: number;
  /**
   * The standard error of `fitness` as an estimate of the model's score on unseen items of the
   * same kind (./stderr.ts): binomial for a mean of 0/1 item scores, from the spread of the item
   * scores otherwise, as the program reports it for `command`; absent when it cannot be known.
   */
  se?: number;
}

/**
 * Additive sums of an evaluator over some of its items (multi-fidelity evaluation,
 * src/candidate/fidelity.ts): the sums of two disjoint item sets add, so a rung scores only its
 * new items, and the sums over every item give exactly what `evaluate` returns.
 */
export interface PartialScore {
  /** Items scored. */
  count: number;
  /** Counts and sums the evaluator's metrics are computed from (for example correct answers). */
  sums: Record<string, number>;
  /** Sum and sum of squares over the items of the primary metric's per-item value (its mean is the metric), for its standard error. */
  primary: { sum: number; sumSq: number };
}

export interface Evaluator {
  readonly id: string;
  readonly version: string | number;
  readonly kind: EvalKind;
  readonly family: 'llama' | 'residual-mlp' | 'any';
  readonly split: EvalSplit;
  readonly metric: { name: string; direction: 'maximize' | 'minimize' };
  /** False for `command`, which reads the model from a folder itself. */
  readonly needsModel: boolean;
  evaluate(model: RunnableModel | null, ctx: EvalContext): Promise<EvalResult>;
  /**
   * Scoring part of the items, for multi-fidelity evaluation. `itemCount` is the number of items
   * when the primary metric is a mean over items (accuracy, acc, acc_norm), else null: such an
   * evaluator (and one without these methods: command, generate, perplexity) always scores every
   * item. `scoreItems` scores the items of those indices (into the evaluator's items, after its
   * `limit`); `resultOf` is the result the sums stand for.
   */
  itemCount?(): number | null;
  /**
   * A command evaluator whose program keeps its own item order (manifest `subset`): `range`
   * scores positions from..to-1 of it, `first` only its first N items. `scoreItems` is then given
   * contiguous positions, not indices into the seeded order of src/candidate/fidelity.ts, and a
   * `first` rung rescores the items of the rungs before it. Absent or null: indices.
   */
  readonly subset?: 'range' | 'first' | null;
  scoreItems?(model: RunnableModel | null, ctx: EvalContext, indices: readonly number[]): Promise<PartialScore>;
  resultOf?(p: PartialScore): EvalResult;
  /** Frees cached data on the backend (for example the classifier's uploaded inputs). */
  dispose(): void;
  /** Stops what the evaluator keeps running (a persistent command evaluator's program) and waits for it. */
  close?(): Promise<void>;
  /** Starts what it keeps running ahead of its first candidate (a persistent command evaluator's program). */
  prestart?(): void;
}
