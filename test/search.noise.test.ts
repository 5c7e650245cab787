import { test } from 'node:test';
import assert from 'node:assert/strict';
import { choose, expectedMaxNoise, fitnessSE, noiseCheck, noiseLines, ruleValues, shrinkFactors, type PoolEntry } from '../src/search/noise.ts';
import { Rng } from '../src/tensor/rng.ts';

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) < tol, `${a} != ${b}`);

test('the standard error of a weighted sum of independent evaluators is sqrt(sum w^2 se^2), unknown when one is unknown', () => {
  close(fitnessSE([{ id: 'a', weight: 0.5, fitness: 0.9, se: 0.1 }, { id: 'b', weight: 1, fitness: 0.8, se: 0.2 }])!, Math.sqrt(0.0425));
  assert.equal(fitnessSE([{ id: 'a', weight: 1, fitness: 0.9, se: null }]), null);
});

test('the expected maximum of N noise draws stays below se sqrt(2 ln N), and the bound is that formula', () => {
  close(expectedMaxNoise(0.01, 300), 0.01 * Math.sqrt(2 * Math.log(300)));
  close(expectedMaxNoise(0.01, 300), 0.0337751, 1e-7);
  assert.equal(expectedMaxNoise(0.01, 1), 0);
  // a seeded simulation: the mean maximum of 300 standard normals is about 2.87 < 3.3775
  const rng = Rng.seeded(7);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
  let sum = 0;
  for (let t = 0; t < 400; t++) {
    let m = -Infinity;
    for (let i = 0; i < 300; i++) m = Math.max(m, normal());
    sum += m;
  }
  const mean = sum / 400;
  assert.ok(mean > 2.6 && mean < expectedMaxNoise(1, 300), `mean maximum ${mean}`);
});

test('the noise check names an evaluator whose expected maximum noise reaches the gain, with the items it would need (hand-computed)', () => {
  // digits8x8-like: 300 items at 95% (se 0.0125831), weight 1/3, 300 candidates:
  // (1/3) x 0.0125831 x 3.3775 = 0.0141666 >= 0.01: too small; factor (0.0141666 / 0.01)^2 = 2.0069
  const se = Math.sqrt(0.95 * 0.05 / 300);
  const c = noiseCheck([{ id: 'digits8x8', weight: 1 / 3, fitness: 0.95, se }, { id: 'digits', weight: 1 / 3, fitness: 0.97, se: Math.sqrt(0.97 * 0.03 / 10_000) }], 300, 0.01);
  close(c.evaluators[0]!.maxNoise, (1 / 3) * se * Math.sqrt(2 * Math.log(300)));
  assert.ok(Math.abs(c.evaluators[0]!.maxNoise - 0.0141666) < 1e-6);
  assert.equal(c.evaluators[0]!.tooSmall, true);
  assert.ok(Math.abs(c.evaluators[0]!.itemsFactor - 2.0069) < 1e-3);
  assert.equal(c.evaluators[1]!.tooSmall, false, '10,000 items at 97%: 0.0019 of noise');
  const lines = noiseLines(c);
  assert.equal(lines.length, 2);
  assert.match(lines[1]!, /^warning: evaluator digits8x8 is too small for 300 candidates/);
  assert.match(lines[1]!, /about 3x its items/);
});

const entry = (id: number, a: number, b: number, seA = 0.001, seB = 0.05): PoolEntry => ({
  id, searchFitness: a + b, parts: [{ id: 'a', weight: 1, fitness: a, se: seA }, { id: 'b', weight: 1, fitness: b, se: seB }],
});

test('James-Stein shrinkage factors follow from the pool spread and the noise (hand-computed)', () => {
  // evaluator a: 0.90, 0.92, 0.94, 0.96, 0.98: mean 0.94, var 0.001; se 0.02: B = (2 / 4) x 0.0004 / 0.001 = 0.2
  const pool = [0.9, 0.92, 0.94, 0.96, 0.98].map((a, i) => ({ id: i, searchFitness: a, parts: [{ id: 'a', weight: 1, fitness: a, se: 0.02 }] }));
  const f = shrinkFactors(pool).get('a')!;
  close(f.mean, 0.94);
  close(f.factor, 0.2);
  // shrunk value of 0.98: 0.94 + 0.8 x 0.04 = 0.972
  close(ruleValues(pool, 'shrink')[4]!, 0.972);
  // a noise larger than the spread shrinks all the way (positive part)
  assert.equal(shrinkFactors(pool.map((c) => ({ ...c, parts: [{ ...c.parts[0]!, se: 0.5 }] }))).get('a')!.factor, 1);
  // fewer than 4 candidates: no shrinkage
  assert.equal(shrinkFactors(pool.slice(0, 3)).get('a')!.factor, 0);
});

test('max picks the candidate lucky on a noisy evaluator; shrink and lcb pick the one ahead on the precise evaluator', () => {
  // a is precise (se 0.001), b noisy (se 0.05) with a spread of its own that is mostly noise
  const pool = [entry(1, 0.90, 0.99), entry(2, 0.95, 0.90), entry(3, 0.91, 0.92), entry(4, 0.92, 0.93), entry(5, 0.93, 0.91)];
  assert.equal(pool[choose(pool, 'max')]!.id, 1, 'raw sums: 1.89 against 1.85');
  const f = shrinkFactors(pool);
  // b: mean 0.93, var = (0.0036 + 0.0009 + 0.0001 + 0 + 0.0004) / 4 = 0.00125; B = 0.5 x 0.0025 / 0.00125 = 1
  close(f.get('b')!.factor, 1);
  // a: mean 0.922, var = (0.000484 + 0.000784 + 0.000144 + 0.000004 + 0.000064) / 4 = 0.00037; B = 0.5 x 0.000001 / 0.00037 = 0.00135135
  close(f.get('a')!.factor, 0.5 * 0.000001 / 0.00037, 1e-9);
  assert.equal(pool[choose(pool, 'shrink')]!.id, 2);
  // lcb: sum - z sqrt(0.001^2 + se_b^2); a candidate whose score rests on a precise evaluator only wins
  const mixed: PoolEntry[] = [
    { id: 1, searchFitness: 1, parts: [{ id: 'x', weight: 1, fitness: 1, se: 0.1 }] },
    { id: 2, searchFitness: 0.95, parts: [{ id: 'x', weight: 1, fitness: 0.95, se: 0.01 }] },
  ];
  assert.equal(mixed[choose(mixed, 'max')]!.id, 1);
  assert.equal(mixed[choose(mixed, 'lcb', 1)]!.id, 2, 'lower bounds 0.90 against 0.94');
  assert.equal(choose([], 'max'), -1);
});

test('ties are broken by the search fitness, then by the lower id', () => {
  const p: PoolEntry[] = [
    { id: 9, searchFitness: 0.5, parts: [{ id: 'x', weight: 1, fitness: 0.7, se: 0.01 }] },
    { id: 4, searchFitness: 0.6, parts: [{ id: 'x', weight: 1, fitness: 0.7, se: 0.01 }] },
    { id: 2, searchFitness: 0.6, parts: [{ id: 'x', weight: 1, fitness: 0.7, se: 0.01 }] },
  ];
  assert.equal(p[choose(p, 'max')]!.id, 2);
});
