import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { fitnessChart, PALETTE, reportCharts, reportData, seriesColours, writeReport, type ChartSpec, type ReportData } from '../src/report/index.ts';
import { resumeSearch, startSearch } from './helpers/search.ts';
import { RunStore } from '../src/store/index.ts';
import { syntheticRun, WARM_START } from './helpers/report-store.ts';
import { mlpFamily, randomItems } from './helpers/refine.ts';
import { tempDir } from './helpers/tmp.ts';

const dir = tempDir('evomerge-report-charts-');

type Dataset = { label: string; data: unknown[]; borderColor?: unknown; backgroundColor?: unknown };
const datasets = (c: ChartSpec) => (c.config as { data: { datasets: Dataset[] } }).data.datasets;

/** A colour as its red, green and blue (transparency aside, since a faded colour reads as the same colour). */
function rgb(colour: unknown, where: string): string {
  assert.equal(typeof colour, 'string', `${where}: one colour per series, not one per point (${JSON.stringify(colour)})`);
  const c = colour as string;
  const hex = /^#([0-9a-f]{6})$/i.exec(c);
  if (hex) {
    const v = Number.parseInt(hex[1]!, 16);
    return `${(v >> 16) & 255},${(v >> 8) & 255},${v & 255}`;
  }
  const fn = /^rgba?\((\d+),\s*(\d+),\s*(\d+)/.exec(c);
  assert.ok(fn, `${where}: colour ${c} is neither #rrggbb nor rgb(a)`);
  return `${fn[1]},${fn[2]},${fn[3]}`;
}

/** Every series of every chart has one colour (line and points alike), and no two series of a chart share it. */
function assertDistinctColours(charts: readonly ChartSpec[]): number {
  let series = 0;
  for (const chart of charts) {
    const seen = new Map<string, string>();
    for (const ds of datasets(chart)) {
      const where = `${chart.id} / ${ds.label}`;
      const colours = new Set([ds.borderColor, ds.backgroundColor].filter((c) => c !== undefined).map((c) => rgb(c, where)));
      assert.equal(colours.size, 1, `${where}: its line and its points have one colour, got ${[...colours].join(' and ')}`);
      const [c] = colours;
      assert.ok(!seen.has(c!), `${chart.id}: '${ds.label}' has the colour of '${seen.get(c!)}' (${c})`);
      seen.set(c!, ds.label);
      series++;
    }
  }
  return series;
}

test('series colours never repeat within a chart: a preferred colour once, then the palette, then generated hues', () => {
  const colours = seriesColours();
  assert.equal(colours.next('#d62728'), '#d62728', 'a free preferred colour is given');
  assert.equal(colours.next('#d62728'), PALETTE[0], 'a taken one gives the first free palette colour');
  const all = ['#d62728', PALETTE[0], ...Array.from({ length: 300 }, () => colours.next())];
  assert.equal(new Set(all.map((c) => c.toLowerCase())).size, all.length, 'no colour is given twice');
  assert.ok(all.every((c) => /^#[0-9a-f]{6}$/.test(c)), 'all #rrggbb');
  assert.deepEqual(new Set(all.slice(0, PALETTE.length)), new Set(PALETTE), 'the palette comes first');
});

test('the fitness chart draws the best fixed recipe the run was warm-started from as a line over the whole run', () => {
  const { store, run, ids } = syntheticRun(dir, { warmStart: true });
  const d = reportData(store, run, [{ label: 'base', path: '/m/base', fitness: 2.5, metrics: {} }]);
  store.close();
  // warm-start candidates 0 (fitness 1), 1 (failed: no line) and 2 (fitness 3), best first
  assert.deepEqual(d.fitness.fixedRecipes, [
    { label: WARM_START[2].label, stage: 0, id: ids[2], fitness: 3 },
    { label: WARM_START[0].label, stage: 0, id: ids[0], fitness: 1 },
  ]);
  const lines = datasets(fitnessChart(d)).filter((s) => s.label.startsWith('best fixed recipe'));
  assert.equal(lines.length, 1, 'one line: the best of them');
  assert.equal(lines[0]!.label, `best fixed recipe: ties density=0.5 (candidate ${ids[2]})`);
  assert.deepEqual(lines[0]!.data, [{ x: 1, y: 3 }, { x: 5, y: 3 }], 'at its fitness from the first to the last evaluation');
  assert.ok(datasets(fitnessChart(d)).some((s) => s.label === 'base (source)'), 'the source lines stay');
});

test('a run without a warm start draws no fixed-recipe line', () => {
  const { store, run } = syntheticRun(dir);
  const d = reportData(store, run);
  store.close();
  assert.deepEqual(d.fitness.fixedRecipes, []);
  assert.ok(!datasets(fitnessChart(d)).some((s) => s.label.startsWith('best fixed recipe')));
});

test('every series of every chart has a colour of its own, also past the palette', () => {
  const { store, run } = syntheticRun(dir, { multi: true, dfs: true, warmStart: true });
  // twelve sources: with candidates, best so far and the fixed recipe, more lines than the palette has colours
  const sources = Array.from({ length: 12 }, (_, i) => ({ label: `source ${i}`, path: `/m/${i}`, fitness: 1 + i / 10, metrics: {} }));
  const d = reportData(store, run, sources);
  store.close();
  const charts = reportCharts(d);
  assert.deepEqual(charts.map((c) => c.id), ['fitness', 'evaluators', 'parameters', 'dfs-path', 'lineage', 'pareto', 'timing']);
  assert.ok(datasets(charts[0]!).length > PALETTE.length);
  // many parameter series and a reused candidate's bar, on the same data otherwise
  const wide: ReportData = {
    ...d,
    parameters: { candidate: 1, groups: ['layer 0', 'layer 1'], series: Array.from({ length: 25 }, (_, i) => ({ label: `model ${i} weight`, values: [i, i / 2] })) },
    timing: { ...d.timing, points: d.timing.points.map((p, i) => ({ ...p, reused: i === 3 })) },
  };
  const n = assertDistinctColours([...charts, ...reportCharts(wide)]);
  assert.ok(n > 60, `${n} series checked`);
  assert.deepEqual(datasets(reportCharts(wide).find((c) => c.id === 'timing')!).map((s) => s.label), ['evaluation time (s)', "reused an identical recipe's score (s)", 'failed candidate (s)', 'failures so far']);
});

test('a search warm-started from fixed recipes records them, and its report draws the best as the bar to beat', async () => {
  const fam = mlpFamily(join(dir, 'family'), 3, 0.2);
  const data = randomItems(64, 6, 3, 5);
  const rows = Array.from({ length: 64 }, (_, i) => JSON.stringify({ input: Array.from(data.x.subarray(i * 6, i * 6 + 6)), label: data.y[i] }));
  writeFileSync(join(dir, 'val.jsonl'), `${rows.join('\n')}\n`);
  const manifest = join(dir, 'cls.yaml');
  writeFileSync(manifest, stringify({ version: 1, kind: 'classification', family: 'residual-mlp', split: 'validation', data: { format: 'jsonl', splits: { validation: 'val.jsonl' } }, metric: { name: 'accuracy', direction: 'maximize' } }));
  const spacePath = join(dir, 'warm.yaml');
  writeFileSync(spacePath, stringify({
    name: 'warm', base: fam.base, models: fam.models.map((p, i) => ({ name: `m${i}`, path: p })), evaluators: [{ manifest }], mode: 'ps', init: 'baselines',
    ps: { method: 'task_arithmetic', layers_per_group: 1, evolve: { weight: [0, 1.5], lambda: [0.1, 1.5] } },
    budget: { evaluations: 8 }, seed: 1, workers: 1, timeout_seconds: 60, backend: 'cpu',
  }));
  const db = join(dir, 'warm', 'run.sqlite');
  const lines: string[] = [];
  await startSearch(spacePath, { dbPath: db, onLog: (l) => lines.push(l) });
  await resumeSearch('warm', { dbPath: db });
  const store = RunStore.open(db, { readonly: true });
  const run = store.run('warm')!;
  const events = store.events(run.id, 1000).filter((e) => e.kind === 'warm-start');
  assert.equal(events.length, 1, 'recorded once, not again on resume');
  const labels = ['task_arithmetic lambda=0.3', 'task_arithmetic lambda=0.5', 'task_arithmetic lambda=1'];
  assert.ok(lines.some((l) => l.includes(`fixed recipes ${labels.join(', ')}`)), lines.join('\n'));
  const d = reportData(store, run);
  const all = store.candidates(run.id);
  store.close();
  assert.deepEqual(d.fitness.fixedRecipes.map((f) => f.label).sort(), labels);
  for (const f of d.fitness.fixedRecipes) {
    const c = all.find((x) => x.id === f.id)!;
    assert.equal(c.operator, 'init');
    assert.equal(c.fitness, f.fitness);
    // the recipe is the fixed one: every model at weight 1, lambda as labelled
    const lambda = Number(f.label.split('=')[1]);
    const json = JSON.stringify(c.recipe);
    assert.ok(json.includes(`"lambda":[{"value":${lambda}}]`) || json.includes(`"lambda":${lambda}`), `${f.label}: ${json.slice(0, 300)}`);
  }
  const best = d.fitness.fixedRecipes[0]!;
  assert.ok(d.fitness.fixedRecipes.every((f) => f.fitness <= best.fitness));
  const line = datasets(fitnessChart(d)).find((s) => s.label.startsWith('best fixed recipe'))!;
  assert.equal(line.label, `best fixed recipe: ${best.label} (candidate ${best.id})`);
  const dbStore = RunStore.open(db, { readonly: true });
  const r = writeReport(dbStore, dbStore.run('warm')!, join(dir, 'warm', 'report'));
  dbStore.close();
  assert.match(readFileSync(r.html!, 'utf8'), /Fixed recipes the search started from[\s\S]*task_arithmetic lambda=[\d.]+ \(best\)/);
  assert.ok(JSON.parse(readFileSync(join(r.dir, 'report.json'), 'utf8')).fitness.fixedRecipes.length === 3);
});
