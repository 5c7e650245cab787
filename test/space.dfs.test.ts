import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DfsCodec } from '../src/space/dfs.ts';

const layout = { sources: [{ name: 'a', layers: 2 }, { name: 'b', layers: 3 }], repetitions: 2, scaleRange: [0, 2] as const, initSource: 1 };

test('the genome has T = M r indicators and an M x M scaling matrix', () => {
  const c = new DfsCodec(layout);
  assert.equal(c.totalLayers, 5);
  assert.equal(c.slots, 10);
  assert.equal(c.dimension, 10 + 25);
  assert.equal(c.genes()[12]!.name, 'W(a[0] -> b[0])');
});

test('the initial genome is one source\'s own layers at scale 1', () => {
  const c = new DfsCodec(layout);
  assert.deepEqual(c.decode(c.initialGenome()), [
    { source: 1, layer: 0, scale: 1 },
    { source: 1, layer: 1, scale: 1 },
    { source: 1, layer: 2, scale: 1 },
  ]);
});

test('a hand-built genome decodes to its path, with W[i][j] scaling the step from layer i to layer j', () => {
  const c = new DfsCodec(layout);
  const g = new Array(c.dimension).fill(0.5); // 0.5 is not > 0.5: every slot off, every scale 1
  g[0] = 1; // slot 0: a[0]
  g[3] = 0.9; // slot 3: b[1]
  g[5] = 0.6; // slot 5 (second repetition): a[0]
  const W = (i: number, j: number, v: number) => { g[10 + i * 5 + j] = v; };
  W(0, 3, 0.25); // a[0] -> b[1]: scale 0.5
  W(3, 0, 1); // b[1] -> a[0]: scale 2
  assert.deepEqual(c.decode(g), [
    { source: 0, layer: 0, scale: 1 },
    { source: 1, layer: 1, scale: 0.5 },
    { source: 0, layer: 0, scale: 2 },
  ]);
  const capped = new DfsCodec({ ...layout, maxPathLength: 2 });
  assert.equal(capped.decode(g).length, 2);
});

test('bad layouts and genomes are refused with the field named', () => {
  assert.throws(() => new DfsCodec({ ...layout, repetitions: 0 }), /repetitions/);
  assert.throws(() => new DfsCodec({ ...layout, initSource: 2 }), /initial source 2/);
  assert.throws(() => new DfsCodec({ ...layout, sources: [] }), /at least one source/);
  assert.throws(() => new DfsCodec(layout).decode([0.1]), /35 genes, got 1/);
});
