import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Recipe } from '../src/recipe/index.ts';
import { SELECTION, stagePool } from '../src/search/select.ts';
import { RunStore } from '../src/store/index.ts';
import { buildVisionPlusZoo } from '../src/zoo/vision-plus.ts';
import type { ZooManifest } from '../src/zoo/build.ts';
import { scoreRecipeOnZooItems } from '../src/zoo/score.ts';
import { startSearch } from './helpers/search.ts';
import { tempDir } from './helpers/tmp.ts';

const dir = tempDir('evomerge-large-recipe-');
const space = new URL('../search-spaces/vision-plus-large.yaml', import.meta.url).pathname;
const debianRoot = process.env.EVOMERGE_DEBIAN_ROOT ?? '/';
const haveDebian = existsSync(join(debianRoot, 'usr/share/datasets/fashion-mnist')) && existsSync(join(debianRoot, 'usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz'));

test('the more-data recipe races on the large split and exports the best of its top 10 on validation', { skip: haveDebian || process.env.CI ? false : 'needs Debian dataset-fashion-mnist and python3-sklearn data (set EVOMERGE_DEBIAN_ROOT to a dpkg -x folder; .ci/run does)' }, async () => {
  const zooDir = join(dir, 'vp');
  await buildVisionPlusZoo(zooDir, { seed: 0, small: true, dataRoot: debianRoot });
  const zoo = JSON.parse(readFileSync(join(zooDir, 'zoo.json'), 'utf8')) as ZooManifest;
  const db = join(dir, 'run.sqlite');
  const r = await startSearch(space, { dbPath: db, zooOverride: zooDir, budget: { evaluations: 32 }, backend: 'wasm' });
  const store = RunStore.open(db, { readonly: true });
  try {
    const run = store.run('vision-plus-large')!;
    const rows = store.candidates(run.id, { state: 'done' });
    // the items of each split, from the base scored apart
    const base: Recipe = { version: 1, method: 'passthrough', sources: [{ model: join(zooDir, zoo.base) }], seed: 0 };
    const large = (await scoreRecipeOnZooItems(zooDir, base, 'large', 'wasm')).samples;
    const validation = (await scoreRecipeOnZooItems(zooDir, base, 'validation', 'wasm')).samples;
    const largeItems = Object.values(large).reduce((a, b) => a + b, 0);
    assert.ok(largeItems > Object.values(validation).reduce((a, b) => a + b, 0), 'the large split has more items than validation');
    // the search scores the large split: its evaluators are the tasks' large manifests, and a
    // candidate stops at the quarter rung or goes on to every item
    for (const c of rows) {
      assert.deepEqual(store.metrics(c.id).filter((m) => m.metric === 'fitness' && !m.evaluator.startsWith(SELECTION)).map((m) => m.evaluator).sort(), ['digits.large', 'digits8x8.large', 'fashion.large']);
      if (c.reusedFrom === null) assert.ok(c.itemEvals === largeItems || (c.fidelity !== null && c.fidelity < 1 && c.itemEvals! < largeItems / 2), `candidate ${c.id}: ${c.itemEvals} items`);
    }
    // the first generation is scored in full (it has no threshold); later ones race
    assert.ok(rows.some((c) => c.fidelity !== null && c.fidelity < 1), 'some candidate was stopped at the first rung');
    assert.deepEqual((run.space as { space: { fidelity: { rungs: number[] } } }).space.fidelity.rungs, [0.25, 1]);
    // the top 10 on the large split carry their validation scores, as scored apart, and the chosen one is the best there
    const pool = stagePool(rows, 0, 10);
    assert.equal(pool.length, 10);
    const sel: Array<{ id: number; v: number; f: number }> = [];
    for (const c of pool) {
      const apart = await scoreRecipeOnZooItems(zooDir, c.recipe as Recipe, 'validation', 'wasm');
      const stored = store.metrics(c.id).find((m) => m.evaluator === SELECTION && m.metric === 'fitness')!.value!;
      const want = zoo.tasks.reduce((a, t) => a + apart.scores[t.name]!, 0);
      assert.ok(Math.abs(stored - want) < 1e-9, `candidate ${c.id}: stored ${stored}, apart ${want}`);
      sel.push({ id: c.id, v: stored, f: c.fitness! });
    }
    const best = sel.sort((a, b) => b.v - a.v || b.f - a.f || a.id - b.id)[0]!; // ties as select.ts: search fitness, then id
    assert.equal(r.best!.id, best.id);
    assert.equal(r.chosen!.candidate.id, best.id);
    assert.ok(r.chosen!.optimism !== null);
  } finally {
    store.close();
  }
});
