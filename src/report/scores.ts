/**
 * Scores computed for export and report, apart from the store: a candidate on the zoo's test
 * split (for the card), and the run's own source models scored by the run's evaluators, the
 * baselines a chart of fitness needs (same evaluators, same weights, so the same scale).
 */
import { createEvaluator, loadManifest } from '../eval/index.ts';
import { loadModel } from '../models/load.ts';
import { useBackend, type BackendChoice } from '../models/backend.ts';
import type { Recipe } from '../recipe/index.ts';
import type { CandidateRow, RunRow } from '../store/index.ts';
import { scoreRecipeOnZoo } from '../zoo/score.ts';
import { spaceOf } from './select.ts';

/** Test-split scores of PS candidates of a run on a zoo (null for DFS candidates or runs without a zoo). */
export function testScoresOnZoo(run: RunRow, backend: BackendChoice = 'auto'): (c: CandidateRow, recipe: Recipe | null) => Promise<Record<string, number> | null> {
  const zoo = spaceOf(run).space.zoo;
  return async (_c, recipe) => (zoo && recipe ? scoreRecipeOnZoo(zoo, recipe, 'test', backend) : null);
}

export interface SourceBaseline {
  label: string;
  path: string;
  /** The run's fitness for this model: sum of weight x evaluator fitness. */
  fitness: number | null;
  /** evaluator -> metric -> value. */
  metrics: Record<string, Record<string, number>>;
  error?: string;
}

/** Each source model of the run (base first) scored by the run's evaluators, as the search scores a candidate. */
export async function scoreRunSources(run: RunRow, options: { backend?: BackendChoice; onProgress?: (done: number, total: number, what: string) => void } = {}): Promise<SourceBaseline[]> {
  const s = spaceOf(run);
  const allowTestSplit = (run.space as { allowTestSplit?: boolean }).allowTestSplit === true;
  const backend = await useBackend(options.backend ?? 'auto');
  const models = [...(s.base ? [{ name: 'base', path: s.base }] : []), ...s.models.filter((m) => m.path !== s.base)];
  const evaluators = s.evaluators.map((e) => ({ spec: e, ev: createEvaluator(loadManifest(e.manifest), { purpose: 'search', allowTestSplit }) }));
  const out: SourceBaseline[] = [];
  try {
    for (const [i, m] of models.entries()) {
      options.onProgress?.(i, models.length, m.name);
      const row: SourceBaseline = { label: m.name, path: m.path, fitness: 0, metrics: {} };
      let loaded: ReturnType<typeof loadModel> | null = null;
      try {
        loaded = loadModel(m.path);
        for (const { spec, ev } of evaluators) {
          const r = await ev.evaluate(ev.needsModel ? loaded.model : null, { backend, modelDir: () => m.path });
          row.metrics[spec.id] = { ...r.metrics, fitness: r.fitness };
          row.fitness = row.fitness! + spec.weight * r.fitness;
        }
      } catch (err) {
        row.fitness = null;
        row.error = (err as Error).message;
      } finally {
        loaded?.model.dispose();
      }
      out.push(row);
    }
    options.onProgress?.(models.length, models.length, 'done');
  } finally {
    for (const { ev } of evaluators) ev.dispose();
  }
  return out;
}

