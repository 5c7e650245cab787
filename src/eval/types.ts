/** The evaluator contract (docs: DESIGN.md, "Contracts"). */
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
}

export interface EvalResult {
  /** The primary metric with its sign set so that larger is better (the optimizer maximises). */
  fitness: number;
  metrics: Record<string, number>;
  /** Items scored (windows of text for perplexity count their tokens in `metrics.tokens`). */
  samples: number;
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
  /** Frees cached data on the backend (for example the classifier's uploaded inputs). */
  dispose(): void;
}
