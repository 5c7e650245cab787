import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useBackend, tf } from '../src/models/backend.ts';
import { ResidualMlp, composeMlpPath, parseResidualMlpConfig, residualMlpTensorShapes, type ResidualMlpConfigJson } from '../src/models/mlp.ts';
import { randomWeights, weightsFromMap } from '../src/models/weights.ts';
import { loadModel } from '../src/models/load.ts';
import { writeSafetensors } from '../src/checkpoint/index.ts';
import { mlpReferenceLogits } from './helpers/mlp-reference.ts';
import { tempDir } from './helpers/tmp.ts';

const json: ResidualMlpConfigJson = {
  architectures: ['EvomergeResidualMLP'], input_size: 6, hidden_size: 5, num_blocks: 2, activation: 'gelu',
  input_scale: 0.5, input_offset: -1, heads: [{ name: 'digit', num_classes: 4 }, { name: 'parity', num_classes: 2 }],
};

/** Independent float64 forward of the README's format, from the tensor map (test/helpers/mlp-reference.ts). */
function reference(w: Map<string, Float32Array>, x: number[], scales = [1, 1]): Record<string, number[]> {
  return mlpReferenceLogits(w, json, x, scales);
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

// A residual MLP with fc1 twice as wide as the blocks, written by Python's standard library
// (safetensors by hand: u64 little-endian header length, JSON header, raw little-endian F32),
// with the logits of two inputs computed in the same script with plain float64 loops. Weights
// follow PyTorch's nn.Linear layout [out, in]. Prints {"logits": {head: [[row0], [row1]]}}.
const WIDE = String.raw`
import json, math, os, struct, sys
out = sys.argv[1]
IN, H, I, BLOCKS, EPS = 3, 4, 8, 2, 1e-5
HEADS = [('digit', 3), ('parity', 2)]
X = [[0.0, 1.0, 2.0], [3.0, -1.0, 0.5]]
SCALE, OFFSET = 0.5, 0.25
def shapes():
    yield 'input.weight', [H, IN]
    yield 'input.bias', [H]
    for b in range(BLOCKS):
        yield f'blocks.{b}.norm.weight', [H]
        yield f'blocks.{b}.norm.bias', [H]
        yield f'blocks.{b}.fc1.weight', [I, H]
        yield f'blocks.{b}.fc1.bias', [I]
        yield f'blocks.{b}.fc2.weight', [H, I]
        yield f'blocks.{b}.fc2.bias', [H]
    yield 'norm.weight', [H]
    yield 'norm.bias', [H]
    for name, c in HEADS:
        yield f'heads.{name}.weight', [c, H]
        yield f'heads.{name}.bias', [c]
def f32(v):
    return struct.unpack('<f', struct.pack('<f', v))[0]
W, order = {}, []
for t, (name, shape) in enumerate(shapes()):
    n = 1
    for s in shape: n *= s
    base = 1.0 if name.endswith('norm.weight') else 0.0
    W[name] = [f32(base + 0.6 * math.sin(1.7 * t + 0.37 * k + 0.1)) for k in range(n)]
    order.append((name, shape))
header, blobs, off = {}, [], 0
for name, shape in order:
    data = struct.pack('<%df' % len(W[name]), *W[name])
    header[name] = {'dtype': 'F32', 'shape': shape, 'data_offsets': [off, off + len(data)]}
    blobs.append(data); off += len(data)
h = json.dumps(header).encode()
h += b' ' * ((8 - len(h) % 8) % 8)
with open(os.path.join(out, 'model.safetensors'), 'wb') as f:
    f.write(struct.pack('<Q', len(h))); f.write(h)
    for b in blobs: f.write(b)
json.dump({'architectures': ['EvomergeResidualMLP'], 'input_size': IN, 'hidden_size': H, 'intermediate_size': I,
           'num_blocks': BLOCKS, 'activation': 'gelu', 'input_scale': SCALE, 'input_offset': OFFSET,
           'heads': [{'name': n, 'num_classes': c} for n, c in HEADS]}, open(os.path.join(out, 'config.json'), 'w'))
def linear(name, v, rows):
    w, b, cols = W[name + '.weight'], W[name + '.bias'], len(v)
    return [b[r] + sum(w[r * cols + k] * v[k] for k in range(cols)) for r in range(rows)]
def layernorm(name, v):
    m = sum(v) / len(v)
    var = sum((t - m) ** 2 for t in v) / len(v)
    return [(t - m) / math.sqrt(var + EPS) * W[name + '.weight'][i] + W[name + '.bias'][i] for i, t in enumerate(v)]
def gelu(v):
    return 0.5 * v * (1 + math.erf(v / math.sqrt(2)))
logits = {name: [] for name, _ in HEADS}
for x in X:
    h = linear('input', [v * SCALE + OFFSET for v in x], H)
    for b in range(BLOCKS):
        u = [gelu(v) for v in linear(f'blocks.{b}.fc1', layernorm(f'blocks.{b}.norm', h), I)]
        h = [a + d for a, d in zip(h, linear(f'blocks.{b}.fc2', u, H))]
    h = layernorm('norm', h)
    for name, c in HEADS:
        logits[name].append(linear(f'heads.{name}', h, c))
print(json.dumps({'inputs': X, 'logits': logits}))
`;

test('a checkpoint with intermediate_size twice hidden_size, written by Python, loads and matches its plain-loop logits', async () => {
  await useBackend('cpu');
  const dir = tempDir('evomerge-mlp-wide-');
  const ref = JSON.parse(execFileSync('python3', ['-c', WIDE, dir], { encoding: 'utf8' })) as { inputs: number[][]; logits: Record<string, number[][]> };
  const { model, family } = loadModel(dir);
  try {
    assert.equal(family, 'residual-mlp');
    assert.ok(model.kind === 'classifier');
    assert.equal(model.config.intermediate, 8);
    const logits = await model.logits(Float32Array.from(ref.inputs.flat()));
    for (const [head, rows] of Object.entries(ref.logits)) {
      const k = rows[0]!.length;
      rows.forEach((row, r) => row.forEach((v, i) => {
        const got = logits.get(head)![r * k + i]!;
        assert.ok(Math.abs(v - got) < 1e-5, `${head} row ${r} class ${i}: ${got} vs reference ${v}`);
      }));
    }
  } finally {
    model.dispose();
  }
});

test('a wrong fc2 shape is refused with the tensor, the shape found and the shape the config implies', async () => {
  await useBackend('cpu');
  const dir = tempDir('evomerge-mlp-badfc2-');
  const wide = { ...json, intermediate_size: 10 };
  const shapes = residualMlpTensorShapes(parseResidualMlpConfig(wide));
  assert.deepEqual(shapes.find((s) => s.name === 'blocks.0.fc1.weight')!.shape, [10, 5]);
  assert.deepEqual(shapes.find((s) => s.name === 'blocks.0.fc2.weight')!.shape, [5, 10]);
  // fc2 written square, as a config without intermediate_size would imply
  const bad = shapes.map((s) => (s.name === 'blocks.1.fc2.weight' ? { ...s, shape: [5, 5] } : s));
  const w = randomWeights(bad, 3);
  writeSafetensors(join(dir, 'model.safetensors'), bad.map(({ name, shape }) => ({ name, dtype: 'F32' as const, shape, data: w.get(name)! })));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(wide));
  assert.throws(() => loadModel(dir), (err: Error & { code?: string }) => {
    assert.equal(err.name, 'ShapeMismatchError');
    assert.match(err.message, /tensor blocks\.1\.fc2\.weight is \[5,5\] .* implies \[5,10\]/);
    return true;
  });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...json, intermediate_size: 0 }));
  assert.throws(() => loadModel(dir), /intermediate_size/);
});

test('a config without intermediate_size has square blocks and loads as before', async () => {
  await useBackend('cpu');
  const c = parseResidualMlpConfig(json);
  assert.equal(c.intermediate, c.hidden);
  const shapes = residualMlpTensorShapes(c);
  assert.deepEqual(shapes.find((s) => s.name === 'blocks.0.fc1.weight')!.shape, [5, 5]);
  assert.deepEqual(shapes.find((s) => s.name === 'blocks.0.fc2.weight')!.shape, [5, 5]);
  assert.deepEqual(shapes, residualMlpTensorShapes(parseResidualMlpConfig({ ...json, intermediate_size: 5 })));
  const dir = tempDir('evomerge-mlp-square-');
  const w = randomWeights(shapes, 5, 0.5);
  writeSafetensors(join(dir, 'model.safetensors'), shapes.map(({ name, shape }) => ({ name, dtype: 'F32' as const, shape, data: w.get(name)! })));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(json));
  const { model } = loadModel(dir);
  try {
    assert.ok(model.kind === 'classifier');
    const got = (await model.logits(x)).get('digit')!;
    reference(w, Array.from(x.subarray(0, 6))).digit!.forEach((v, i) => assert.ok(Math.abs(v - got[i]!) < 1e-4, `${v} vs ${got[i]}`));
  } finally {
    model.dispose();
  }
});

test('a layer path may take blocks of another intermediate width, but not of another hidden width', async () => {
  await useBackend('cpu');
  const narrow = parseResidualMlpConfig(json);
  const wide = parseResidualMlpConfig({ ...json, intermediate_size: 12 });
  const otherHidden = parseResidualMlpConfig({ ...json, hidden_size: 7 });
  const models = [narrow, wide, otherHidden].map((c, i) => ResidualMlp.load(c, weightsFromMap(randomWeights(residualMlpTensorShapes(c), 20 + i, 0.5))));
  try {
    const mixed = composeMlpPath(models, [{ source: 0, layer: 0, scale: 1 }, { source: 1, layer: 1, scale: 1 }]);
    const logits = (await mixed.logits(x)).get('digit')!;
    assert.equal(logits.length, 8);
    assert.ok(logits.every(Number.isFinite));
    assert.throws(() => composeMlpPath(models, [{ source: 2, layer: 0, scale: 1 }]), /step 0 \(source 2\) has hidden_size 7 but the input's source has 5/);
  } finally {
    models.forEach((m) => m.dispose());
  }
});
