import { test } from 'node:test';
import assert from 'node:assert/strict';
import { magnitudeCut, quickselect, rowMagnitudeRanks, topMagnitudeMask } from '../src/tensor/select.ts';
import { FastRng, bernoulliThreshold } from '../src/tensor/fastrng.ts';

test('topMagnitudeMask keeps the k largest magnitudes regardless of sign', () => {
  const d = Float32Array.from([0.1, -3, 2, -0.5, 1]);
  assert.deepEqual([...topMagnitudeMask(d, 2, new Uint8Array(5))], [0, 1, 1, 0, 0]);
  assert.deepEqual([...topMagnitudeMask(d, 0, new Uint8Array(5))], [0, 0, 0, 0, 0]);
  assert.deepEqual([...topMagnitudeMask(d, 5, new Uint8Array(5))], [1, 1, 1, 1, 1]);
});

test('ties at the cut keep the lowest indices', () => {
  const d = Float32Array.from([1, -2, 2, 2, -2, 0.5]);
  assert.deepEqual([...topMagnitudeMask(d, 2, new Uint8Array(6))], [0, 1, 1, 0, 0, 0]);
  assert.deepEqual([...topMagnitudeMask(d, 4, new Uint8Array(6))], [0, 1, 1, 1, 1, 0]);
  assert.equal(magnitudeCut(d, 3).ties, 3);
});

test('magnitude selection agrees with a full sort on random data with many ties', () => {
  const rng = new FastRng('0123456789abcdef0123456789abcdef');
  for (let trial = 0; trial < 20; trial++) {
    const n = 1 + Math.floor(rng.nextFloat() * 3000);
    const d = new Float32Array(n);
    for (let i = 0; i < n; i++) d[i] = Math.round((rng.nextFloat() - 0.5) * 40) / 8; // many equal values
    const k = Math.floor(rng.nextFloat() * (n + 1));
    const order = [...d.keys()].sort((a, b) => Math.abs(d[b]!) - Math.abs(d[a]!) || a - b);
    const expected = new Uint8Array(n);
    for (const i of order.slice(0, k)) expected[i] = 1;
    assert.deepEqual(topMagnitudeMask(d, k, new Uint8Array(n)), expected, `trial ${trial}`);
  }
});

test('quickselect returns the k-th smallest value as a sort would', () => {
  const rng = new FastRng('fedcba9876543210fedcba9876543210');
  for (let trial = 0; trial < 30; trial++) {
    const n = 1 + Math.floor(rng.nextFloat() * 500);
    const a = new Float64Array(n);
    for (let i = 0; i < n; i++) a[i] = Math.floor(rng.nextFloat() * 20);
    const sorted = Float64Array.from(a).sort();
    const k = Math.floor(rng.nextFloat() * n);
    assert.equal(quickselect(a, k), sorted[k]);
  }
});

test('row ranks order magnitudes ascending and give the higher index the lower rank on ties', () => {
  const d = Float32Array.from([3, -1, 2, 5, 5, 0]);
  const r = rowMagnitudeRanks(d, 2, 3, new Float32Array(6));
  assert.deepEqual([...r], [3, 1, 2, 3, 2, 1]);
});

test('FastRng is reproducible from its seed and uniform enough', () => {
  const a = FastRng.forTensor(7, 'x', 0);
  const b = FastRng.forTensor(7, 'x', 0);
  const c = FastRng.forTensor(7, 'x', 1);
  let same = 0;
  let sum = 0;
  for (let i = 0; i < 10000; i++) {
    const va = a.nextU32();
    assert.equal(va, b.nextU32());
    if (va === c.nextU32()) same++;
    sum += va / 2 ** 32;
  }
  assert.ok(same < 3);
  assert.ok(Math.abs(sum / 10000 - 0.5) < 0.02);
  assert.equal(bernoulliThreshold(0.5), 2 ** 31);
  assert.equal(bernoulliThreshold(1), 2 ** 32);
  assert.equal(bernoulliThreshold(0), 0);
});
