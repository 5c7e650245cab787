/** `evomerge eval`: load a model folder, run one evaluator (or a plain-text perplexity), report. */
import { readFileSync } from 'node:fs';
import { InputError } from '../errors.ts';
import { useBackend, type BackendChoice, type BackendInfo } from '../models/backend.ts';
import { loadModel, type RunnableModel } from '../models/load.ts';
import { loadEvaluator } from './evaluator.ts';
import { scorePerplexity } from './text.ts';

export interface EvalReport {
  evaluator: { id: string; version: string | number; kind: string; split: string; metric: string; direction: string } | null;
  metrics: Record<string, number>;
  fitness: number | null;
  backend: string;
  samples: number;
  /** The standard error of the primary metric (./stderr.ts), null when the evaluator cannot know it. */
  se: number | null;
  seconds: number;
}

export interface RunEvalOptions {
  evaluator?: string;
  perplexity?: string;
  backend?: BackendChoice;
  onProgress?: (done: number, total: number) => void;
}

export async function runEval(modelDir: string, options: RunEvalOptions): Promise<EvalReport> {
  if ((options.evaluator === undefined) === (options.perplexity === undefined)) {
    throw new InputError('E_EVAL_ARGS', 'give exactly one of --evaluator <manifest> or --perplexity <text-file>');
  }
  const started = performance.now();
  const evaluator = options.evaluator ? loadEvaluator(options.evaluator, { purpose: 'eval' }) : null;
  let backend: BackendInfo | null = null;
  let model: RunnableModel | null = null;
  try {
    if (!evaluator || evaluator.needsModel) {
      backend = await useBackend(options.backend ?? 'auto');
      model = loadModel(modelDir).model;
    }
    if (evaluator) {
      const r = await evaluator.evaluate(model, { backend, modelDir: () => modelDir, onProgress: options.onProgress });
      return {
        evaluator: { id: evaluator.id, version: evaluator.version, kind: evaluator.kind, split: evaluator.split, metric: evaluator.metric.name, direction: evaluator.metric.direction },
        metrics: r.metrics,
        fitness: r.fitness,
        backend: backend?.name ?? 'none',
        samples: r.samples,
        se: r.se ?? null,
        seconds: (performance.now() - started) / 1000,
      };
    }
    if (!model || model.kind !== 'causal-lm') throw new InputError('E_EVAL_FAMILY', `--perplexity scores causal language models; ${modelDir} holds a classifier`);
    if (!model.tokenizer) throw new InputError('E_TOKENIZER_MISSING', `${modelDir} has no tokenizer.json; --perplexity needs it`);
    let text: string;
    try {
      text = readFileSync(options.perplexity!, 'utf8');
    } catch (err) {
      throw new InputError('E_EVAL_DATA', `cannot read ${options.perplexity}: ${(err as Error).message}`);
    }
    // one text: no spread over texts to take a standard error from
    const { perText: _, ...r } = await scorePerplexity(model, model.tokenizer, [text], { onProgress: options.onProgress });
    return { evaluator: null, metrics: { ...r }, fitness: -r.loss, backend: backend!.name, samples: 1, se: null, seconds: (performance.now() - started) / 1000 };
  } finally {
    model?.dispose();
    evaluator?.dispose();
  }
}
