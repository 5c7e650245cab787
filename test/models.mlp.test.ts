import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useBackend, tf } from '../src/models/backend.ts';
import { ResidualMlp, composeMlpPath, parseResidualMlpConfig, residualMlpTensorShapes, type ResidualMlpConfigJson } from '../src/models/mlp.ts';
import { randomWeights, weightsFromMap } from '../src/models/weights.ts';
import { loadModel } from '../src/models/load.ts';
import { writeSafetensors } from '../src/checkpoint/index.ts';

const json: ResidualMlpConfigJson = {
  architectures: ['EvomergeResidualMLP'], input_size: 6, hidden_size: 5, num_blocks: 2, activation: 'gelu',
  input_scale: 0.5, input_offset: -1, heads: [{ name: 'digit', num_classes: 4 }, { name: 'parity', num_classes: 2 }],
};

/** Independent float64 forward of the README's format, from the tensor map. */
function reference(w: Map<string, Float32Array>, x: number[], scales = [1, 1]): Record<string, number[]> {
  const lin = (name: string, v: number[], out: number) => {
    const W = w.get(`${name}.weight`)!;
    const b = w.get(`${name}.bias`)!;
    return Array.from({ length: out }, (_, r) => v.reduce((s, vi, k) => s + W[r * v.length + k]! * vi, b[r]!));
  };
  const ln = (name: string, v: number[]) => {
    const m = v.reduce((a, b) => a + b, 0) / v.length;
    const varr = v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length;
    return v.map((t, i) => ((t - m) / Math.sqrt(varr + 1e-5)) * w.get(`${name}.weight`)![i]! + w.get(`${name}.bias`)![i]!);
  };
  const erf = (z: number) => {
    // Abramowitz and Stegun 7.1.26 is too coarse for 1e-5; integrate the series instead
    let sum = 0;
    let term = z;
    for (let n = 0; n < 60; n++) {
      sum += term / (2 * n + 1);
      term *= (-z * z) / (n + 1);
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  };
  const gelu = (v: number) => 0.5 * v * (1 + erf(v / Math.SQRT2));
  let h = lin('input', x.map((v) => v * 0.5 - 1), 5);
  for (let i = 0; i < 2; i++) {
    h = h.map((v) => v * scales[i]!);
    const inner = lin(`blocks.${i}.fc2`, lin(`blocks.${i}.fc1`, ln(`blocks.${i}.norm`, h), 5).map(gelu), 5);
    h = h.map((v, k) => v + inner[k]!);
  }
  h = ln('norm', h);
  return { digit: lin('heads.digit', h, 4), parity: lin('heads.parity', h, 2) };
}

const x = Float32Array.from([0, 1, 2, 3, 4, 5, 5, -1, 0.5, 2, 7, 1]);

test('residual MLP logits match a float64 reference of the documented format, on cpu and wasm', async () => {
  const c = parseResidualMlpConfig(json);
  const w = randomWeights(residualMlpTensorShapes(c), 4, 0.5);
  for (const backend of ['cpu', 'wasm'] as const) {
    await useBackend(backend);
    const model = ResidualMlp.load(c, weightsFromMap(w));
    const logits = await model.logits(x);
    const preds = await model.predict(x);
    for (let row = 0; row < 2; row++) {
      const ref = reference(w, Array.from(x.subarray(row * 6, row * 6 + 6)));
      for (const head of ['digit', 'parity'] as const) {
        const k = ref[head]!.length;
        const got = logits.get(head)!.subarray(row * k, row * k + k);
        ref[head]!.forEach((v, i) => assert.ok(Math.abs(v - got[i]!) < 1e-4, `${backend} ${head} row ${row}: ${v} vs ${got[i]}`));
        assert.equal(preds.get(head)![row], ref[head]!.indexOf(Math.max(...ref[head]!)));
      }
    }
    model.dispose();
  }
});

test('a block path equal to the model with scale 1 gives its exact logits; scales match the reference', async () => {
  await useBackend('wasm');
  const c = parseResidualMlpConfig(json);
  const w = randomWeights(residualMlpTensorShapes(c), 4, 0.5);
  const other = ResidualMlp.load(c, weightsFromMap(randomWeights(residualMlpTensorShapes(c), 9, 0.5)));
  const model = ResidualMlp.load(c, weightsFromMap(w));
  try {
    const same = composeMlpPath([other, model], [{ source: 1, layer: 0, scale: 1 }, { source: 1, layer: 1, scale: 1 }], { embeddings: 1 });
    assert.deepEqual(Array.from((await same.logits(x)).get('digit')!), Array.from((await model.logits(x)).get('digit')!));
    const scaled = composeMlpPath([other, model], [{ source: 1, layer: 0, scale: 0.5 }, { source: 1, layer: 1, scale: 2 }], { embeddings: 1 });
    const ref = reference(w, Array.from(x.subarray(0, 6)), [0.5, 2]);
    const got = (await scaled.logits(x)).get('digit')!;
    ref.digit!.forEach((v, i) => assert.ok(Math.abs(v - got[i]!) < 1e-4));
  } finally {
    model.dispose();
    other.dispose();
  }
});

test('loading, predicting and disposing a classifier leaves no tensor behind', async () => {
  await useBackend('wasm');
  const c = parseResidualMlpConfig(json);
  const w = randomWeights(residualMlpTensorShapes(c), 1);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) {
    const m = ResidualMlp.load(c, weightsFromMap(w));
    await m.predict(x);
    await m.logits(x);
    m.dispose();
  }
  assert.equal(tf.memory().numTensors, before);
});

test('a classifier checkpoint folder loads through loadModel, and a bad config names its field', async () => {
  await useBackend('cpu');
  const dir = mkdtempSync(join(tmpdir(), 'evomerge-mlp-'));
  try {
    const c = parseResidualMlpConfig(json);
    const w = randomWeights(residualMlpTensorShapes(c), 2);
    writeSafetensors(join(dir, 'model.safetensors'), residualMlpTensorShapes(c).map(({ name, shape }) => ({ name, dtype: 'F32' as const, shape, data: w.get(name)! })));
    writeFileSync(join(dir, 'config.json'), JSON.stringify(json));
    const { model, family } = loadModel(dir);
    assert.equal(family, 'residual-mlp');
    assert.ok(model.kind === 'classifier');
    const direct = ResidualMlp.load(c, weightsFromMap(w));
    assert.deepEqual(Array.from((await model.logits(x)).get('parity')!), Array.from((await direct.logits(x)).get('parity')!));
    model.dispose();
    direct.dispose();
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...json, heads: [{ name: 'a b', num_classes: 3 }] }));
    assert.throws(() => loadModel(dir), /heads\.0\.name/);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...json, hidden_size: 7 }));
    assert.throws(() => loadModel(dir), /input\.weight.*\[7,6\]/);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...json, architectures: ['BertModel'] }));
    assert.throws(() => loadModel(dir), { code: 'E_ARCH_UNSUPPORTED' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
