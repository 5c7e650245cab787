import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reportData, paretoFront, parameterSeries, selectCandidates, reportCharts } from '../src/report/index.ts';
import type { Recipe } from '../src/recipe/index.ts';
import { syntheticRun } from './helpers/report-store.ts';
import { tempDir } from './helpers/tmp.ts';

const dir = tempDir();

test('fitness points leave failures out and the best-so-far line steps up only on improvements', () => {
  const { store, run, ids } = syntheticRun(dir);
  const d = reportData(store, run, [{ label: 'base', path: '/m/base', fitness: 2.5, metrics: {} }, { label: 'broken', path: '/m/x', fitness: null, metrics: {}, error: 'x' }]);
  store.close();
  // fitness 1, (failed), 3, 2, 5 in evaluation order 1..5
  assert.deepEqual(d.fitness.points.map((p) => [p.n, p.fitness]), [[1, 1], [3, 3], [4, 2], [5, 5]]);
  assert.deepEqual(d.fitness.bestSoFar.map((p) => [p.n, p.fitness, p.id]), [[1, 1, ids[0]], [2, 1, ids[0]], [3, 3, ids[2]], [4, 3, ids[2]], [5, 5, ids[4]]]);
  assert.deepEqual(d.fitness.baselines, [{ label: 'base', fitness: 2.5 }], 'a source that failed to score draws no line');
});

test("each evaluator's primary metric follows the best-so-far candidate, held to the last evaluation", () => {
  const { store, run } = syntheticRun(dir);
  const d = reportData(store, run);
  store.close();
  const ev1 = d.evaluatorTrend.find((s) => s.evaluator === 'ev1')!;
  const ev2 = d.evaluatorTrend.find((s) => s.evaluator === 'ev2')!;
  assert.equal(ev1.metric, 'accuracy');
  assert.equal(ev2.metric, 'loss');
  // best changes at n = 1 (fitness 1), 3 (3) and 5 (5): accuracy = fitness / 10, loss = 1 / fitness
  assert.deepEqual(ev1.points.map((p) => [p.n, p.value]), [[1, 0.1], [3, 0.3], [5, 0.5]]);
  assert.deepEqual(ev2.points.map((p) => [p.n, p.value]), [[1, 1], [3, 1 / 3], [5, 0.2]]);
});

test('failures accumulate per evaluation and evaluation times are in seconds', () => {
  const { store, run } = syntheticRun(dir);
  const d = reportData(store, run);
  store.close();
  assert.deepEqual(d.timing.failures.map((f) => f.count), [0, 1, 1, 1, 1]);
  assert.deepEqual(d.timing.points.map((p) => [p.seconds, p.failed]), [[0.1, false], [0.2, true], [0.3, false], [0.4, false], [0.5, false]]);
});

test("the best recipe's parameters become one series per model, parameter and filter over the layer groups", () => {
  const { store, run, ids } = syntheticRun(dir);
  const best = store.candidate(ids[4]!)!;
  const p = parameterSeries(run, best.recipe as Recipe);
  const d = reportData(store, run);
  store.close();
  assert.equal(d.parameters!.candidate, ids[4]);
  assert.deepEqual(p.groups, ['layer 0', 'layer 1']);
  const byLabel = Object.fromEntries(p.series.map((s) => [s.label, s.values]));
  // candidate 4: alpha weight 0.4 (mlp) and 0.2 (others) in group 0, +0.25 in group 1; beta 1 - 0.4 and 0.75 - 0.4
  assert.deepEqual(byLabel['alpha weight [mlp]'], [0.4, 0.65]);
  assert.deepEqual(byLabel['alpha weight'], [0.2, 0.325]);
  assert.deepEqual(byLabel['beta weight [mlp]']!.map((v) => Number(v!.toFixed(12))), [0.6, 0.35]);
  assert.deepEqual(byLabel['alpha density'], [0.5, 0.5]);
  assert.deepEqual(byLabel['lambda'], [1, 1]);
});

test("the lineage chain runs from the oldest fittest ancestor to the best candidate", () => {
  const { store, run, ids } = syntheticRun(dir);
  const d = reportData(store, run);
  store.close();
  // 4 <- {2 (fitness 3), 3 (fitness 2)}; 2 <- {0 (fitness 1), 1 (failed)}: the chain takes 2, then 0
  assert.deepEqual(d.lineage!.chain.map((c) => c.id), [ids[0], ids[2], ids[4]]);
  assert.deepEqual(d.lineage!.ancestors.map((c) => c.id).sort(), [ids[1], ids[3]].sort());
});

test('a multi-objective run has a Pareto front of the non-dominated candidates, and --top exports it', () => {
  const { store, run, ids } = syntheticRun(dir, { multi: true });
  // objectives: [0.6,0.4], failed, [2,1], [0.5,1.5], [2.5,2.5]: only the last is non-dominated
  assert.deepEqual(paretoFront(store.candidates(run.id)).map((c) => c.id), [ids[4]]);
  const d = reportData(store, run);
  assert.deepEqual(d.pareto!.points.filter((x) => x.front).map((x) => x.id), [ids[4]]);
  assert.equal(d.pareto!.points.length, 4);
  assert.deepEqual(selectCandidates(store, run, { top: 3 }).map((c) => c.id), [ids[4]]);
  assert.ok(reportCharts(d).some((c) => c.id === 'pareto'));
  store.close();
});

test('the Pareto front keeps trade-offs: neither of two candidates that each win one objective is dropped', () => {
  const row = (id: number, objectives: number[], fitness: number) => ({ id, state: 'done', objectives, fitness }) as never;
  const front = paretoFront([row(1, [1, 0], 1), row(2, [0, 1], 1), row(3, [0.4, 0.4], 0.8), row(4, [0.5, 0.6], 1.1)]);
  assert.deepEqual(front.map((c: { id: number }) => c.id), [4, 1, 2]);
});

test('a single-objective run gets no Pareto chart and no layer-path chart, and --top takes the K fittest', () => {
  const { store, run, ids } = syntheticRun(dir);
  const ids2 = selectCandidates(store, run, { top: 2 }).map((c) => c.id);
  const charts = reportCharts(reportData(store, run)).map((c) => c.id);
  store.close();
  assert.deepEqual(ids2, [ids[4], ids[2]]);
  assert.deepEqual(charts, ['fitness', 'evaluators', 'parameters', 'lineage', 'timing']);
});

test("a model card says when a candidate's fitness is a multi-fidelity estimate on part of the items", async () => {
  const { modelCard } = await import('../src/report/card.ts');
  const { store, run, ids } = syntheticRun(dir);
  const card = (fidelity: number | null) => {
    const c = { ...store.candidate(ids[2]!)!, fidelity };
    return modelCard({ store, run, candidate: c, recipe: c.recipe as Recipe, dfs: null, stacked: null, scores: { validation: [], test: null }, skipped: [] });
  };
  try {
    assert.match(card(0.1), /Fitness 3 \(an estimate on 10% of each evaluator's items: multi-fidelity evaluation stopped it there\)/);
    assert.doesNotMatch(card(1), /an estimate on/);
    assert.doesNotMatch(card(null), /an estimate on/);
  } finally {
    store.close();
  }
});
