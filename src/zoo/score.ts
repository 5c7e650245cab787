/**
 * Scoring a PS recipe on a zoo's tasks, apart from any search: the recipe merged in memory from
 * the sources' files (src/candidate/build.ts), every task's evaluator on the split asked for,
 * normalised as the baselines are (./baselines.ts). The demo, export's model card and the benches
 * score the evolved merge this way on the test split.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadSourceModel, mergeToMemory, type SourceModels } from '../candidate/index.ts';
import { createEvaluator, loadManifest } from '../eval/index.ts';
import { InputError } from '../errors.ts';
import { modelFromWeights, useBackend, weightsFromMap, type BackendChoice } from '../models/index.ts';
import { loadTokenizer } from '../models/tokenizer.ts';
import type { Recipe } from '../recipe/index.ts';
import { normalizeScores, referenceScores, type BaselineReport, type BaselineRow } from './baselines.ts';
import type { ZooManifest } from './build.ts';

/** Scores of a PS recipe on every task of a zoo (primary metric per task). */
export async function scoreRecipeOnZoo(zooDir: string, recipe: Recipe, split: 'validation' | 'test', backendChoice: BackendChoice = 'auto'): Promise<Record<string, number>> {
  return (await scoreRecipeOnZooItems(zooDir, recipe, split, backendChoice)).scores;
}

/**
 * Scores of a PS recipe on every task of a zoo, with the items each was measured on (for
 * standard errors). `split` names a split of the tasks' evaluators in zoo.json (validation, test,
 * or another the zoo offers, vision-plus's `large`).
 */
export async function scoreRecipeOnZooItems(zooDir: string, recipe: Recipe, split: string, backendChoice: BackendChoice = 'auto'): Promise<{ scores: Record<string, number>; samples: Record<string, number> }> {
  const zoo = JSON.parse(readFileSync(join(zooDir, 'zoo.json'), 'utf8')) as ZooManifest;
  const backend = await useBackend(backendChoice);
  const paths = [...new Set([recipe.base, ...(recipe.slices ?? []).flatMap((s) => s.sources.map((x) => x.model)), ...(recipe.sources ?? []).map((s) => s.model)].filter((p): p is string => !!p))];
  const sources: SourceModels = Object.fromEntries(paths.map((p) => [p, loadSourceModel(p)]));
  const { tensors, configFrom } = mergeToMemory(recipe, sources);
  // text evaluators read through the tokenizer of the folder the config comes from
  const tokenizer = existsSync(join(configFrom, 'tokenizer.json')) ? loadTokenizer(configFrom, sources[configFrom]!.config!) : null;
  const model = modelFromWeights(sources[configFrom]!.config!, weightsFromMap(tensors, 'evolved merge'), { tokenizer });
  const scores: Record<string, number> = {};
  const samples: Record<string, number> = {};
  try {
    for (const t of zoo.tasks) {
      const file = t.evaluators[split];
      if (!file) throw new InputError('E_ZOO_SPLIT', `${zooDir}: task '${t.name}' has no '${split}' split (it has ${Object.keys(t.evaluators).join(', ')}); a zoo built before that split was added gets it from 'evomerge zoo build' again`);
      const ev = createEvaluator(loadManifest(join(zooDir, file)), { purpose: 'eval' });
      try {
        const r = await ev.evaluate(model, { backend });
        scores[t.name] = r.metrics[ev.metric.name]!;
        samples[t.name] = r.samples;
      } finally {
        ev.dispose();
      }
    }
  } finally {
    model.dispose();
  }
  return { scores, samples };
}

/** A row for `scores`, normalised against the report's references (the specialists), as the baselines are. */
export function rowAgainst(report: BaselineReport, label: string, scores: Record<string, number>): BaselineRow {
  return { label, kind: 'merge', scores, ...normalizeScores(report.tasks, referenceScores(report.tasks, report.rows), scores) };
}
