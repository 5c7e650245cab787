import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useBackend, tf } from '../src/models/backend.ts';
import { ResidualMlp, parseResidualMlpConfig, residualMlpTensorShapes } from '../src/models/mlp.ts';
import { randomWeights, weightsFromMap } from '../src/models/weights.ts';
import { parseManifest } from '../src/eval/manifest.ts';
import { createEvaluator } from '../src/eval/evaluator.ts';
import { idx } from './helpers/idx.ts';


test('classification accuracy over IDX files equals the hand-counted agreement with the model, per class too', async () => {
  await useBackend('wasm');
  const dir = mkdtempSync(join(tmpdir(), 'evomerge-clf-'));
  try {
    const n = 50;
    const pixels = Array.from({ length: n * 4 }, (_, i) => (i * 37) % 256);
    const c = parseResidualMlpConfig({ architectures: ['EvomergeResidualMLP'], input_size: 4, hidden_size: 8, num_blocks: 2, input_scale: 1 / 255, heads: [{ name: 'cls', num_classes: 3 }] });
    const model = ResidualMlp.load(c, weightsFromMap(randomWeights(residualMlpTensorShapes(c), 3, 1)));
    const preds = (await model.predict(Float32Array.from(pixels))).get('cls')!;
    const labels = Array.from({ length: n }, (_, i) => (i % 3 === 0 ? preds[i]! : (preds[i]! + 1) % 3));
    writeFileSync(join(dir, 'x.idx'), idx(8, [n, 2, 2], pixels));
    writeFileSync(join(dir, 'y.idx'), idx(8, [n], labels));
    const raw = {
      version: 1, kind: 'classification', family: 'residual-mlp', split: 'validation', per_class: true, batch_size: 16,
      data: { splits: { validation: { images: 'x.idx', labels: 'y.idx' } } }, metric: { name: 'accuracy', direction: 'maximize' },
    };
    const m = parseManifest(raw, join(dir, 'digits.yaml'));
    const ev = createEvaluator(m, { purpose: 'search' });
    const before = tf.memory().numTensors;
    const r = await ev.evaluate(model, { backend: null });
    const right = labels.filter((y, i) => y === preds[i]).length;
    assert.equal(r.metrics.accuracy, right / n);
    assert.equal(r.samples, n);
    for (let k = 0; k < 3; k++) {
      const ofK = labels.map((y, i) => [y, i] as const).filter(([y]) => y === k);
      if (ofK.length) assert.equal(r.metrics[`accuracy_class_${k}`], ofK.filter(([y, i]) => preds[i] === y).length / ofK.length);
    }
    // a second candidate reuses the uploaded inputs: no new tensors stay behind
    const again = await ev.evaluate(model, { backend: null });
    assert.equal(again.metrics.accuracy, r.metrics.accuracy);
    ev.dispose();
    assert.equal(tf.memory().numTensors, before);

    writeFileSync(join(dir, 'y.idx'), idx(8, [n], labels.map((y, i) => (i === 7 ? 5 : y))));
    await assert.rejects(createEvaluator(m, { purpose: 'eval' }).evaluate(model, { backend: null }), /label 5 does not exist in head 'cls', which has 3 classes/);
    const wrongHead = parseManifest({ ...raw, head: 'digit' }, join(dir, 'digits.yaml'));
    await assert.rejects(createEvaluator(wrongHead, { purpose: 'eval' }).evaluate(model, { backend: null }), /field 'head' names 'digit'/);
    model.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
