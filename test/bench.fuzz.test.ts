import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFuzzBench } from '../src/bench/fuzz.ts';
import { mutateDocument } from '../src/bench/mutate.ts';
import { Rng } from '../src/tensor/rng.ts';

test('1,000 mutated checkpoints, spaces, recipes and manifests and 3 CLI runs each end in a valid result or a typed error, fast, with no large allocation', async () => {
  const r = await runFuzzBench({ cases: 1000, cliCases: 3, seed: 1 });
  assert.deepEqual(r.failures, []);
  assert.ok(r.slowestMs < 1000 && r.maxAllocationMb < 64);
  // the mutations must reach both outcomes in every reader, or the test proves little
  for (const target of ['safetensors', 'checkpoint-config', 'search-space', 'recipe', 'mergekit', 'manifest']) {
    const counts = r.outcomes[target] ?? {};
    assert.ok(Object.keys(counts).length >= 2, `${target}: ${JSON.stringify(counts)}`);
  }
  assert.ok(Object.keys(r.outcomes.safetensors!).length >= 8);
  assert.equal(Object.values(r.cli.outcomes).reduce((a, b) => a + b, 0), 3);
});

test('a document mutation is seeded and leaves its input untouched', () => {
  const doc = { a: 1, b: [1, 2, { c: 'x' }], d: { e: true } };
  const frozen = JSON.stringify(doc);
  const one = mutateDocument(doc, Rng.seeded('m'));
  const two = mutateDocument(doc, Rng.seeded('m'));
  assert.deepEqual(one, two);
  assert.equal(JSON.stringify(doc), frozen);
  const kinds = new Set(Array.from({ length: 200 }, (_, i) => mutateDocument(doc, Rng.seeded(i)).kind.split('+')[0]!.split(':')[0]));
  assert.ok(['delete', 'type', 'number', 'unknown-key', 'array'].every((k) => kinds.has(k)), [...kinds].join(','));
});
