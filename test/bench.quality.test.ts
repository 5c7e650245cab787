import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalisedAccuracySE, readPrefix } from '../src/bench/quality.ts';
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
