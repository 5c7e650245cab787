import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rowAgainst } from '../src/zoo/score.ts';
import type { BaselineReport } from '../src/zoo/baselines.ts';

test('the evolved row is normalised as the baselines are, a task nobody solves left out of the mean', () => {
  const tasks = [
    { name: 'a', metric: 'accuracy', direction: 'maximize' as const, reference: 'specialist a' },
    { name: 'ppl', metric: 'perplexity', direction: 'minimize' as const, reference: 'best of base and specialists' },
    { name: 'cross', metric: 'exact_match', direction: 'maximize' as const, reference: 'best of base and specialists' },
  ];
  const rows = [
    { label: 'base', kind: 'base' as const, scores: { a: 0.5, ppl: 8, cross: 0 }, normalized: {}, meanNormalized: 0 },
    { label: 'specialist a', kind: 'specialist' as const, scores: { a: 0.8, ppl: 4, cross: 0 }, normalized: {}, meanNormalized: 0 },
  ];
  const report = { tasks, rows } as unknown as BaselineReport;
  const row = rowAgainst(report, 'evolved', { a: 0.6, ppl: 5, cross: 0.1 });
  // a: 0.6 / 0.8; ppl: best (lowest) 4 / 5; cross: reference 0 normalises nothing
  assert.deepEqual(row.normalized, { a: 0.6 / 0.8, ppl: 4 / 5, cross: null });
  assert.equal(row.meanNormalized, (0.6 / 0.8 + 4 / 5) / 2);
});
