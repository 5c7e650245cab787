import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend, tf } from '../src/models/backend.ts';
import { ResidualMlp, parseResidualMlpConfig, randomWeights, residualMlpTensorShapes, weightsFromMap, type ResidualMlpConfigJson } from '../src/models/index.ts';
import { MlpTrainer } from '../src/train/mlp.ts';
import { ensureGradients } from '../src/train/gradients.ts';

test('the training forward pass equals the model family forward pass', async () => {
  await useBackend('wasm');
  await ensureGradients();
  const json: ResidualMlpConfigJson = { architectures: ['EvomergeResidualMLP'], input_size: 6, hidden_size: 5, num_blocks: 2, input_scale: 0.5, input_offset: -1, heads: [{ name: 'a', num_classes: 3 }, { name: 'b', num_classes: 2 }] };
  const shapes = residualMlpTensorShapes(parseResidualMlpConfig(json));
  const w = randomWeights(shapes, 11, 0.5);
  const x = Float32Array.from({ length: 4 * 6 }, (_, i) => (i * 37) % 11);
  const family = ResidualMlp.load(parseResidualMlpConfig(json), weightsFromMap(w));
  const expected = await family.logits(x, 4);
  family.dispose();
  const trainer = new MlpTrainer(json, w);
  for (const head of ['a', 'b']) {
    const got = tf.tidy(() => trainer.forward(tf.tensor2d(x, [4, 6]), head).dataSync());
    const want = expected.get(head)!;
    assert.equal(got.length, want.length);
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) < 1e-5, `${head}[${i}]: ${got[i]} vs ${want[i]}`);
  }
  // exporting the variables gives back the checkpoint layout unchanged
  const out = trainer.weights();
  for (const { name } of shapes) assert.deepEqual([...out.get(name)!], [...w.get(name)!], name);
  trainer.dispose();
});

test('training is a pure function of the seed, updates only trainable tensors and lowers the loss', async () => {
  await useBackend('wasm');
  await ensureGradients();
  const json: ResidualMlpConfigJson = { architectures: ['EvomergeResidualMLP'], input_size: 4, hidden_size: 8, num_blocks: 1, heads: [{ name: 'a', num_classes: 2 }, { name: 'b', num_classes: 2 }] };
  const w = randomWeights(residualMlpTensorShapes(parseResidualMlpConfig(json)), 3, 0.3);
  // a separable task: class 1 when the first feature exceeds the second
  const n = 64;
  const features = Uint8Array.from({ length: n * 4 }, (_, i) => (i * 53 + 17) % 29);
  const labels = Uint8Array.from({ length: n }, (_, i) => (features[i * 4]! > features[i * 4 + 1]! ? 1 : 0));
  const run = async (steps: number) => {
    const t = new MlpTrainer(json, w);
    const losses: number[] = [];
    await t.train({ tasks: [{ head: 'a', features, labels, n }], steps, batch: 16, learningRate: 0.05, trainable: (name) => !name.startsWith('heads.b'), seed: 'same' }, (_s, l) => { if (l !== null) losses.push(l); });
    const out = t.weights();
    t.dispose();
    return { out, losses };
  };
  const one = await run(50);
  const two = await run(50);
  for (const [name, v] of one.out) assert.deepEqual([...v], [...two.out.get(name)!], name);
  assert.deepEqual([...one.out.get('heads.b.weight')!], [...w.get('heads.b.weight')!]);
  assert.notDeepEqual([...one.out.get('heads.a.weight')!], [...w.get('heads.a.weight')!]);
  assert.ok(one.losses.at(-1)! < one.losses[0]! * 0.7, `loss ${one.losses[0]} -> ${one.losses.at(-1)}`);
});
