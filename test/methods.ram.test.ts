import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getMethod, resolveScope } from '../src/methods/index.ts';

const run = (id: string, base: number[], models: number[][], g: Record<string, number> = {}) => {
  const m = getMethod(id);
  return [...m.merge({ name: 't', shape: [base.length], base: Float32Array.from(base), models: models.map((x) => Float32Array.from(x)) }, resolveScope(m, 'global', g, 't'), models.map(() => ({})), { seed: 0 })];
};
const near = (a: number[], b: number[]) => a.every((v, i) => Math.abs(v - b[i]!) < 1e-6);

test('ram keeps an entry one model moved and averages the moves of a shared one (by hand)', () => {
  // entry 0 moved by both (1, 3), entry 2 by the first only, entry 3 by the second only, entry 4 below epsilon
  const out = run('ram', [0, 0, 0, 0, 0.5], [[1, 0, 2, 0, 0.5 + 1e-6], [3, 0, 0, -1, 0.5]]);
  assert.ok(near(out, [2, 0, 2, -1, 0.5]), String(out));
});

test('ramplus_tl boosts each model\'s unique entries by 1 + r min(shared / unique, alpha) (by hand)', () => {
  // each model: 1 shared entry, 1 unique one, rho = 1
  const models = [[1, 0, 2, 0], [3, 0, 0, -1]];
  assert.ok(near(run('ramplus_tl', [0, 0, 0, 0], models), [2, 0, 2 * 1.02, -1.02]), 'alpha 0.2 caps rho: lambda 1.02');
  assert.ok(near(run('ramplus_tl', [0, 0, 0, 0], models, { r: 0.5, alpha: 2 }), [2, 0, 3, -1.5]), 'lambda = 1 + 0.5 * 1');
  // a model with no unique entry: rho = shared / epsilon, capped at alpha; its shared entries are still averaged
  assert.ok(near(run('ramplus_tl', [0, 0, 0], [[1, 0, 0], [1, 5, 0]], { r: 1, alpha: 0.5 }), [1, 7.5, 0]), 'the second model\'s unique entry: lambda 1.5');
  // r = 0 is ram
  assert.deepEqual(run('ramplus_tl', [0, 0, 0, 0], models, { r: 0 }), run('ram', [0, 0, 0, 0], models));
});

test('ram with only the base returns the base, and the base is required', () => {
  assert.deepEqual(run('ram', [1, 2], []), [1, 2]);
  assert.equal(getMethod('ram').requiresBase, 'required');
  assert.equal(getMethod('ramplus_tl').mergekitId, 'ramplus_tl');
});
