/**
 * Scoring a built candidate: each evaluator of the stage scores the model (or its folder), and
 * the fitness is the weighted sum of their fitnesses (with `objective: multi`, each evaluator's
 * fitness is also an objective). With multi-fidelity evaluation the candidate races its
 * threshold on growing subsets of the items instead (./fidelity.ts).
 */
import { createEvaluator, loadManifest, type EvalResult, type Evaluator } from '../eval/index.ts';
import type { BackendInfo, RunnableModel } from '../models/index.ts';
import type { MetricValue } from '../store/index.ts';
import { race, type FidelityTask } from './fidelity.ts';
import type { CandidateScore, EvaluatorSpec, WorkerData } from './types.ts';

/** The metric under which a candidate's score stores an evaluator's standard error. */
export const FITNESS_SE = 'fitness_se';

/** A stage's evaluator, opened once per evaluation slot. */
export interface OpenEvaluator {
  spec: EvaluatorSpec;
  ev: Evaluator;
}

/** The stage's evaluators for a search (a test split refused unless the run allows it). */
export function openEvaluators(data: Pick<WorkerData, 'evaluators' | 'allowTestSplit'>): OpenEvaluator[] {
  return data.evaluators.map((spec) => ({ spec, ev: createEvaluator(loadManifest(spec.manifest), { purpose: 'search', allowTestSplit: data.allowTestSplit }) }));
}

/** The scores of one candidate: every evaluator's metrics, its fitness, and the items scored. */
export async function scoreCandidate(
  evaluators: readonly OpenEvaluator[],
  candidate: { model: RunnableModel | null; modelDir: () => string },
  o: { backend: BackendInfo | null; objective: WorkerData['objective']; fidelity?: FidelityTask; requestId?: string },
): Promise<CandidateScore> {
  const { model } = candidate;
  const metrics: MetricValue[] = [];
  const objectives: number[] = [];
  let fitness = 0;
  let itemEvals = 0;
  let fidelity: number | undefined;
  const ctx = { backend: o.backend, modelDir: candidate.modelDir, ...(o.requestId !== undefined ? { requestId: o.requestId } : {}) };
  let results: EvalResult[];
  if (o.fidelity) {
    const raced = await race(evaluators.map(({ spec, ev }) => ({ id: spec.id, weight: spec.weight, ev })), o.fidelity, {
      whole: (e) => e.ev.evaluate(model, ctx),
      items: (e, indices) => e.ev.scoreItems!(model, ctx, indices),
    });
    results = raced.results;
    fidelity = raced.fidelity;
    itemEvals = raced.itemEvals;
  } else {
    results = [];
    for (const { ev } of evaluators) {
      const r = await ev.evaluate(model, ctx);
      results.push(r);
      itemEvals += r.samples;
    }
  }
  results.forEach((r, i) => {
    const spec = evaluators[i]!.spec;
    for (const [metric, value] of Object.entries(r.metrics)) metrics.push({ evaluator: spec.id, metric, value });
    metrics.push({ evaluator: spec.id, metric: 'fitness', value: r.fitness });
    // the evaluator's standard error (src/eval/stderr.ts), for noise-aware choices (src/search/noise.ts)
    if (r.se !== undefined) metrics.push({ evaluator: spec.id, metric: FITNESS_SE, value: r.se });
    objectives.push(r.fitness);
    fitness += spec.weight * r.fitness;
  });
  return { fitness, metrics, backend: o.backend?.name ?? 'none', ...(o.objective === 'multi' ? { objectives } : {}), itemEvals, ...(fidelity !== undefined ? { fidelity } : {}) };
}
