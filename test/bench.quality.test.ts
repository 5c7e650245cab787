import { test } from 'node:test';
import assert from 'node:assert/strict';
import { armMeans, chooseInPrefix, formatQuality, normalisedAccuracySE, readPrefix, type QualityCell, type QualityReport } from '../src/bench/quality.ts';
import type { ScorePart } from '../src/search/noise.ts';
import type { CandidateRow } from '../src/store/index.ts';

const row = (id: number, fitness: number | null, over: Partial<CandidateRow> = {}): CandidateRow => ({
  id, runId: 1, stage: 0, generation: 0, proposalId: `p${id}`, operator: 'sample', genome: [], recipe: {}, recipeHash: `h${id}`,
  state: fitness === null ? 'failed' : 'done', fitness, objectives: null, error: null, worker: null, backend: null, reusedFrom: null,
  told: true, createdAt: '', startedAt: null, finishedAt: null, evalMs: null, threshold: null, fidelity: null, itemEvals: null, ...over,
});

test('the standard error of a mean normalised accuracy follows from the split sizes (checked by hand)', () => {
  // two tasks: p = 0.9 on 100 items, reference 0.95; p = 0.5 on 400 items, reference 0.5
  // var = 0.09 / (100 * 0.9025) + 0.25 / (400 * 0.25) = 0.000997230 + 0.0025 = 0.003497230; SE = sqrt(var) / 2
  const se = normalisedAccuracySE({ a: 0.9, b: 0.5 }, { a: 100, b: 400 }, { a: 0.95, b: 0.5 });
  assert.ok(Math.abs(se - Math.sqrt(0.09 / 90.25 + 0.0025) / 2) < 1e-15);
  assert.ok(Math.abs(se - 0.0295687) < 1e-6);
});

test('a budget reads the prefix of candidates in proposal order: the best full-fidelity success, its cost, and when it first met the bar', () => {
  const rows = [row(3, 0.7), row(1, 0.5), row(2, null), row(4, 0.9, { reusedFrom: 3 }), row(5, 0.95), row(6, 0.99)];
  const cost = (c: CandidateRow) => (c.reusedFrom !== null ? 0 : 1);
  const p = readPrefix(rows, 3, cost, () => true, 0.6);
  assert.equal(p.best?.id, 4, 'ids 1-4 fit in 3 (the reused score costs nothing); 4 scored 0.9');
  assert.equal(p.cost, 3);
  assert.equal(p.reachedAt, 3, 'candidate 3 (0.7) met the bar 0.6 at a running cost of 3');
  assert.equal(readPrefix(rows, 5, cost, () => true, 0.98).reachedAt, 5);
  assert.equal(readPrefix(rows, 4, cost, () => true, 0.98).reachedAt, null);
  // partial-fidelity scores are estimates: they are never chosen, and a cheaper candidate lets more in
  const partial = (c: CandidateRow) => c.id !== 6;
  const q = readPrefix(rows, 4.5, (c) => (c.id === 6 ? 0.3 : cost(c)), partial, 2);
  assert.equal(q.best?.id, 5);
  assert.equal(q.used.length, 6);
  assert.ok(Math.abs(q.cost - 4.3) < 1e-12);
});

test('an arm\'s selection chooses among the top K of each stage by its rule over the parts it is given', async () => {
  // stage 0: 1 (0.9), 2 (0.8), 3 (0.7); stage 1: 4 (0.95); 5 is a partial-fidelity estimate, never in a pool
  const rows = [row(1, 0.9), row(2, 0.8), row(3, 0.7), row(4, 0.95, { stage: 1 }), row(5, 0.99, { fidelity: 0.3 })];
  // the second split: candidate 2 best (0.85), then 4 (0.84), 1 (0.80), 3 (0.99 but outside the top 2 of its stage)
  const second: Record<number, number> = { 1: 0.8, 2: 0.85, 3: 0.99, 4: 0.84 };
  const parts = async (c: CandidateRow): Promise<ScorePart[]> => [{ id: 't', weight: 1, fitness: second[c.id]!, se: c.id === 2 ? 0.05 : 0.001 }];
  const max = await chooseInPrefix(rows, { top: 2, rule: 'max' }, parts);
  assert.deepEqual(max!.pool.map((c) => c.id), [1, 2, 4]);
  assert.equal(max!.chosen.id, 2);
  // lcb, z 1: 1: 0.799, 2: 0.80, 4: 0.839
  assert.equal((await chooseInPrefix(rows, { top: 2, rule: 'lcb', z: 1 }, parts))!.chosen.id, 4);
  assert.equal(await chooseInPrefix([], { top: 2, rule: 'max' }, parts), null);
});

test('the report puts validation and test gains over the best fixed recipe side by side for every arm, with the optimism and the goal', () => {
  const cell = (arm: string, seed: number, validation: number, test: number): QualityCell => ({
    arm, budget: 300, seed, candidate: 1, validation, test, testSE: 0.005, validationGain: validation - 0.90, testGain: test - 0.92,
    optimism: (validation - 0.90) - (test - 0.92), searchBest: null, cost: 300, itemEvaluations: 1000, reachedFixedAt: null,
  });
  const r: QualityReport = {
    zoo: 'z', zooDir: '/z', space: '/s.yaml', budgets: [300], seeds: [0, 1],
    fixed: { label: 'ta', validation: 0.90, test: 0.92, testSE: 0.006 },
    arms: [{ id: 'a', label: 'a' }, { id: 'b', label: 'b' }],
    // a: validation +5 and +7 (mean +6), test +2 and +4 (mean +3): optimism 3; b: validation +4.5, test +4: optimism 0.5
    cells: [cell('a', 0, 0.95, 0.94), cell('a', 1, 0.97, 0.96), cell('b', 0, 0.945, 0.96), cell('b', 1, 0.945, 0.96)],
    seconds: 1,
  };
  const a = armMeans(r, 'a', 300)!;
  assert.ok(Math.abs(a.validationGain - 0.06) < 1e-12 && Math.abs(a.testGain - 0.03) < 1e-12 && Math.abs(a.optimism - 0.03) < 1e-12);
  const text = formatQuality(r);
  assert.match(text, /^a +300 +0\.9600 +0\.9500 +0\.0050 +\+6\.00 +\+3\.00 +\+3\.00 /m);
  assert.match(text, /^b +300 +0\.9450 +0\.9600 +0\.0050 +\+4\.50 +\+4\.00 +\+0\.50 /m);
  // b gains the most on test: +4.00 >= 3.5, and 4.00 / 4.50 = 89% >= 70%
  assert.match(text, /goal, the best arm at 300 .*: b, test \+4\.00 points, validation \+4\.50 \(test\/validation 89%\): met/);
  r.cells = r.cells.filter((c) => c.arm === 'a');
  assert.match(formatQuality(r), /: a, test \+3\.00 points, validation \+6\.00 \(test\/validation 50%\): not met/);
});
