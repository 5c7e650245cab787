import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { useBackend } from '../src/models/backend.ts';
import { ResidualMlp, parseResidualMlpConfig, residualMlpTensorShapes } from '../src/models/mlp.ts';
import { randomWeights, weightsFromMap } from '../src/models/weights.ts';
import { parseManifest } from '../src/eval/manifest.ts';
import { createEvaluator } from '../src/eval/evaluator.ts';
import { binomialSE, commandSE, ratioSE } from '../src/eval/index.ts';
import { tempDir } from './helpers/tmp.ts';
import { idx } from './helpers/idx.ts';

const dir = tempDir();
const close = (a: number | undefined, b: number, tol = 1e-12) => assert.ok(a !== undefined && Math.abs(a - b) < tol, `${a} != ${b}`);

test('the binomial standard error of an accuracy is sqrt(p (1 - p) / n) (hand-computed)', () => {
  close(binomialSE(0.9, 100), 0.03);
  // 300 items at 95%: sqrt(0.0475 / 300) = 0.0125831
  close(binomialSE(0.95, 300), 0.0125831, 1e-7);
  assert.equal(binomialSE(1, 50), 0);
  assert.equal(binomialSE(0.5, 0), undefined);
});

test('the standard error of a ratio of sums over items is the linearised ratio estimator (hand-computed)', () => {
  // y = [2, 4, 9], x = [1, 2, 3]: R = 15 / 6 = 2.5; residuals -0.5, -1, 1.5 (sum of squares 3.5);
  // xbar = 2; var = 3.5 / (3 x 2 x 4) = 0.1458333; se = 0.3818813
  close(ratioSE([2, 4, 9], [1, 2, 3]), Math.sqrt(3.5 / 24));
  close(ratioSE([2, 4, 9], [1, 2, 3]), 0.3818813, 1e-7);
  assert.equal(ratioSE([1], [1]), undefined, 'one item has no spread');
});

test('a command evaluator takes its standard error from <metric>_stderr, stderr or se, or from the spread of item_scores', () => {
  close(commandSE({ acc: 0.5, acc_stderr: 0.02 }, 'acc'), 0.02);
  close(commandSE({ results: { acc: 0.5, acc_stderr: 0.03 } }, 'results.acc'), 0.03);
  close(commandSE({ score: 0.5, se: 0.04 }, 'score'), 0.04);
  // item scores 1, 0, 1, 1: mean 0.75, s^2 = (3 x 0.0625 + 0.5625) / 3 = 0.25, se = sqrt(0.25 / 4) = 0.25
  close(commandSE({ score: 0.75, item_scores: [1, 0, 1, 1] }, 'score'), 0.25);
  assert.equal(commandSE({ score: 0.75, samples: 4 }, 'score'), undefined, 'a count alone does not say the items are 0/1');
});

test('a classification evaluator reports the binomial standard error of its accuracy, and of a per-class primary metric on that class\'s items', async () => {
  await useBackend('wasm');
  const n = 40;
  const pixels = Array.from({ length: n * 4 }, (_, i) => (i * 37) % 256);
  const c = parseResidualMlpConfig({ architectures: ['EvomergeResidualMLP'], input_size: 4, hidden_size: 8, num_blocks: 1, input_scale: 1 / 255, heads: [{ name: 'cls', num_classes: 3 }] });
  const model = ResidualMlp.load(c, weightsFromMap(randomWeights(residualMlpTensorShapes(c), 3, 1)));
  try {
    const preds = (await model.predict(Float32Array.from(pixels))).get('cls')!;
    // three of every four items labelled as predicted: accuracy 0.75
    const labels = Array.from({ length: n }, (_, i) => (i % 4 !== 0 ? preds[i]! : (preds[i]! + 1) % 3));
    writeFileSync(join(dir, 'x.idx'), idx(8, [n, 2, 2], pixels));
    writeFileSync(join(dir, 'y.idx'), idx(8, [n], labels));
    const base = { version: 1, kind: 'classification', family: 'residual-mlp', split: 'validation', data: { splits: { validation: { images: 'x.idx', labels: 'y.idx' } } } };
    const r = await createEvaluator(parseManifest({ ...base, metric: { name: 'accuracy', direction: 'maximize' } }, join(dir, 'a.yaml')), { purpose: 'eval' }).evaluate(model, { backend: null });
    assert.equal(r.metrics.accuracy, 0.75);
    close(r.se, Math.sqrt((0.75 * 0.25) / 40));
    const k = labels[1]!;
    const perClass = await createEvaluator(parseManifest({ ...base, per_class: true, metric: { name: `accuracy_class_${k}`, direction: 'maximize' } }, join(dir, 'b.yaml')), { purpose: 'eval' }).evaluate(model, { backend: null });
    const nk = labels.filter((y) => y === k).length;
    const pk = perClass.metrics[`accuracy_class_${k}`]!;
    close(perClass.se, Math.sqrt((pk * (1 - pk)) / nk));
  } finally {
    model.dispose();
  }
});
