import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCheckpoint } from '../src/checkpoint/index.ts';
import { makeTinyLlama, makeTinyLora } from '../src/zoo/index.ts';
import { loadRecipeFile, parseRecipe } from '../src/recipe/index.ts';
import { computeTensor, memoryReader, planRecipe, SourceSet } from '../src/merge/index.ts';
import { mergeToDisk } from '../src/report/merge-folder.ts';
import { getMethod, resolveScope } from '../src/methods/index.ts';
import { readTensor } from './helpers/checkpoint.ts';

let root: string;
let base: string;
let m1: string;
let m2: string;
let wide: string;

before(() => {
  root = mkdtempSync(join(tmpdir(), 'evomerge-merge-'));
  base = makeTinyLlama(join(root, 'base'), { seed: 1, layers: 3, hidden: 16, vocab: 32, tokenizer: { version: '1.0', model: { type: 'WordLevel' } } });
  m1 = makeTinyLlama(join(root, 'm1'), { seed: 2, layers: 3, hidden: 16, vocab: 32, perturb: { from: base, scale: 0.05 } });
  m2 = makeTinyLlama(join(root, 'm2'), { seed: 3, layers: 3, hidden: 16, vocab: 32, perturb: { from: base, scale: 0.05 } });
  wide = makeTinyLlama(join(root, 'wide'), { seed: 4, layers: 3, hidden: 24, heads: 4, vocab: 32 });
});
after(() => rmSync(root, { recursive: true, force: true }));

const read = readTensor;

test('a mergekit linear YAML merges into a Hugging Face folder with card, recipe and tokenizer', () => {
  const cfg = join(root, 'linear.yaml');
  // without a tokenizer setting the first model's tokenizer files are copied (mergekit's donor)
  writeFileSync(join(m1, 'tokenizer.json'), readFileSync(join(base, 'tokenizer.json')));
  writeFileSync(cfg, `merge_method: linear\nmodels:\n  - model: ${m1}\n    parameters:\n      weight: 1\n  - model: ${m2}\n    parameters:\n      weight: 3\ndtype: float32\n`);
  const out = join(root, 'out-linear');
  const r = mergeToDisk(loadRecipeFile(cfg), out);
  assert.ok(r.tensors > 10);
  for (const name of ['model.layers.1.mlp.up_proj.weight', 'model.embed_tokens.weight', 'model.norm.weight']) {
    const a = read(m1, name);
    const b = read(m2, name);
    const got = read(out, name);
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(got[i]! - (a[i]! + 3 * b[i]!) / 4) < 1e-6, name);
  }
  for (const f of ['config.json', 'README.md', 'recipe.json', 'mergekit_config.yml', 'tokenizer.json']) assert.ok(existsSync(join(out, f)), f);
  const card = readFileSync(join(out, 'README.md'), 'utf8');
  assert.match(card, /linear/);
  assert.match(card, /m2/);
});

test('ties on disk equals the method run on the same tensors in memory, with layer gradients', () => {
  const recipe = parseRecipe({
    method: 'ties', base,
    sources: [{ model: m1, parameters: { weight: 1, density: [0.2, 0.8] } }, { model: m2, parameters: { weight: 0.5, density: 0.5 } }],
    parameters: { normalize: true },
  });
  const out = join(root, 'out-ties');
  mergeToDisk(recipe, out);
  const ties = getMethod('ties');
  const g = resolveScope(ties, 'global', { normalize: true }, 't');
  for (const [layer, density] of [[0, 0.2], [1, 0.5], [2, 0.8]] as const) {
    const name = `model.layers.${layer}.self_attn.q_proj.weight`;
    const expected = ties.merge({ name, shape: [16, 16], base: read(base, name), models: [read(m1, name), read(m2, name)] }, g,
      [resolveScope(ties, 'per-model', { weight: 1, density }, 't'), resolveScope(ties, 'per-model', { weight: 0.5, density: 0.5 }, 't')], { seed: 0 });
    assert.deepEqual(read(out, name), expected, name);
  }
});

test('dare_ties merges are identical across runs and in any tensor order, and bf16 output rounds the same values', () => {
  const recipe = parseRecipe({ method: 'dare_ties', base, sources: [{ model: m1, parameters: { weight: 1, density: 0.5 } }, { model: m2, parameters: { weight: 1, density: 0.5 } }], seed: 7 });
  mergeToDisk(recipe, join(root, 'dare-a'));
  mergeToDisk(recipe, join(root, 'dare-b'));
  const ca = openCheckpoint(join(root, 'dare-a'));
  const cb = openCheckpoint(join(root, 'dare-b'));
  for (const n of ca.names()) assert.deepEqual(ca.readRaw(n), cb.readRaw(n), n);
  // recompute in reverse order from memory
  const sources = new SourceSet();
  const plan = planRecipe(recipe, sources);
  const mem = new Map<string, Map<string, Float32Array>>();
  for (const m of [base, m1, m2]) mem.set(m, new Map(sources.checkpoint(m).names().map((n) => [n, sources.checkpoint(m).readFloat32(n)])));
  for (const task of [...plan.tasks].reverse()) assert.deepEqual(computeTensor(task, plan.method, memoryReader(mem), 7), ca.readFloat32(task.name), task.name);
  sources.close();
  ca.close();
  cb.close();
  mergeToDisk(recipe, join(root, 'dare-bf16'), { outDtype: 'BF16' });
  const c16 = openCheckpoint(join(root, 'dare-bf16'));
  assert.equal(c16.info('model.layers.0.mlp.up_proj.weight').dtype, 'BF16');
  c16.close();
});

test('passthrough slices stack layers and the config counts them', () => {
  const recipe = parseRecipe({
    method: 'passthrough',
    slices: [{ sources: [{ model: m1, layer_range: [0, 2] }] }, { sources: [{ model: m2, layer_range: [1, 3] }] }],
  });
  const out = join(root, 'out-frank');
  mergeToDisk(recipe, out);
  const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.equal(cfg.num_hidden_layers, 4);
  assert.deepEqual(read(out, 'model.layers.1.mlp.down_proj.weight'), read(m1, 'model.layers.1.mlp.down_proj.weight'));
  assert.deepEqual(read(out, 'model.layers.2.mlp.down_proj.weight'), read(m2, 'model.layers.1.mlp.down_proj.weight'));
  assert.deepEqual(read(out, 'model.layers.3.input_layernorm.weight'), read(m2, 'model.layers.2.input_layernorm.weight'));
  assert.deepEqual(read(out, 'model.embed_tokens.weight'), read(m1, 'model.embed_tokens.weight'));
  assert.deepEqual(read(out, 'lm_head.weight'), read(m2, 'lm_head.weight'));
});

test('bad inputs fail with typed errors before any output is written', () => {
  const cases: Array<[object, string]> = [
    [{ method: 'linear', sources: [{ model: m1, parameters: { weight: 1 } }, { model: wide, parameters: { weight: 1 } }] }, 'E_SHAPE_MISMATCH'],
    [{ method: 'ties', base, sources: [{ model: m1, parameters: { weight: 1, density: 1.5 } }] }, 'E_PARAM_RANGE'],
    [{ method: 'ties', base, sources: [{ model: m1 }] }, 'E_PARAM_MISSING'],
    [{ method: 'slerp', base, sources: [{ model: m1 }, { model: m2 }], parameters: { t: 0.5 } }, 'E_RECIPE_MODEL_COUNT'],
    [{ method: 'passthrough', slices: [{ sources: [{ model: m1, layer_range: [0, 2] }, { model: m2, layer_range: [0, 3] }] }] }, 'E_SLICE_LENGTH'],
    [{ method: 'passthrough', slices: [{ sources: [{ model: m1, layer_range: [2, 5] }] }] }, 'E_LAYER_RANGE'],
  ];
  for (const [i, [r, code]] of cases.entries()) {
    const out = join(root, `bad-${i}`);
    assert.throws(() => mergeToDisk(parseRecipe(r), out), { code }, code);
    assert.ok(!existsSync(out), `${code}: nothing written`);
  }
});

test('lora_linear adds the weighted adapter deltas to the base', () => {
  const lora = makeTinyLora(join(root, 'lora'), base, { seed: 5, rank: 2, alpha: 4 });
  const out = join(root, 'out-lora');
  mergeToDisk(parseRecipe({ method: 'lora_linear', base, sources: [{ model: lora, parameters: { weight: 0.5 } }] }), out);
  const name = 'model.layers.0.self_attn.q_proj.weight';
  const b = read(base, name);
  const got = read(out, name);
  const sources = new SourceSet();
  const delta = sources.adapter(lora).delta(name);
  sources.close();
  for (let i = 0; i < b.length; i++) assert.ok(Math.abs(got[i]! - (b[i]! + 0.5 * delta[i]!)) < 1e-6);
  assert.deepEqual(read(out, 'model.layers.0.mlp.up_proj.weight'), read(base, 'model.layers.0.mlp.up_proj.weight'));
});
