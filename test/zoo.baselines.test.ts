import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeInMemory } from '../src/zoo/baselines.ts';

const base = new Map([['w', Float32Array.from([1, 2, 3, 4])]]);
const a = new Map([['w', Float32Array.from([2, 2, 1, 4])]]);
const b = new Map([['w', Float32Array.from([1, 4, 3, 8])]]);
const shapes = new Map([['w', [4]]]);

test('uniform linear averages the specialists without the base', () => {
  const out = mergeInMemory({ label: 'l', method: 'linear', global: {}, perModel: { weight: 1 } }, base, [a, b], shapes, 0).get('w')!;
  assert.deepEqual([...out], [1.5, 3, 2, 6]);
});

test('task arithmetic adds lambda times the summed task vectors to the base', () => {
  // deltas: a - base = [1,0,-2,0], b - base = [0,2,0,4]; sum [1,2,-2,4]; base + 0.5 * sum
  const out = mergeInMemory({ label: 't', method: 'task_arithmetic', global: { lambda: 0.5 }, perModel: { weight: 1 } }, base, [a, b], shapes, 0).get('w')!;
  assert.deepEqual([...out], [1.5, 3, 2, 6]);
  const one = mergeInMemory({ label: 't', method: 'task_arithmetic', global: { lambda: 1 }, perModel: { weight: 1 } }, base, [a, b], shapes, 0).get('w')!;
  assert.deepEqual([...one], [2, 4, 1, 8]);
});

test('a specialist of another size is refused naming the tensor', () => {
  const bad = new Map([['w', Float32Array.from([1, 2])]]);
  assert.throws(() => mergeInMemory({ label: 'l', method: 'linear', global: {}, perModel: { weight: 1 } }, base, [a, bad], shapes, 0), /tensor w/);
});

test('owned tensors are copied from their model, not merged', () => {
  const two = (x: number[], y: number[]) => new Map([['body', Float32Array.from(x)], ['heads.t.weight', Float32Array.from(y)]]);
  const b0 = two([0, 0], [0, 0]);
  const m = [two([2, 4], [5, 6]), two([4, 0], [7, 8])];
  const sh = new Map([['body', [2]], ['heads.t.weight', [2]]]);
  const out = mergeInMemory({ label: 'l', method: 'linear', global: {}, perModel: { weight: 1 } }, b0, m, sh, 0, [{ prefix: 'heads.t.', index: 1 }]);
  assert.deepEqual([...out.get('body')!], [3, 2]);
  assert.deepEqual([...out.get('heads.t.weight')!], [7, 8]);
});
