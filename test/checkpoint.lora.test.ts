import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { materializeLora, openCheckpoint, openLoraAdapter, patternKeyFor, writeSafetensors } from '../src/checkpoint/index.ts';
import { NotSupportedError } from '../src/errors.ts';
import { makeTinyLlama, makeTinyLora } from '../src/zoo/tiny.ts';
import { tempDir } from './helpers/tmp.ts';

const dir = tempDir();

function adapter(name: string, config: object, tensors: Record<string, { shape: number[]; values: number[] }>): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', ...config }));
  writeSafetensors(join(d, 'adapter_model.safetensors'), Object.entries(tensors).map(([n, t]) => ({ name: n, dtype: 'F32' as const, shape: t.shape, data: new Float32Array(t.values) })));
  return d;
}

// A = [[1,2,3],[0,1,0]] (r=2, in=3), B = [[1,0],[2,1]] (out=2, r=2): B A = [[1,2,3],[2,5,6]]
const A = { shape: [2, 3], values: [1, 2, 3, 0, 1, 0] };
const B = { shape: [2, 2], values: [1, 0, 2, 1] };

test('the update is (alpha / r) B A, computed by hand', () => {
  const d = adapter('plain', { r: 2, lora_alpha: 4 }, {
    'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': A,
    'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': B,
  });
  const lora = openLoraAdapter(d);
  assert.deepEqual(lora.targets(), ['model.layers.0.self_attn.q_proj.weight']);
  assert.deepEqual(Array.from(lora.delta('model.layers.0.self_attn.q_proj.weight')), [2, 4, 6, 4, 10, 12]);
  assert.throws(() => lora.delta('model.layers.0.self_attn.k_proj.weight'), /no update/);
});

test('rsLoRA scales by alpha / sqrt(r)', () => {
  const d = adapter('rs', { r: 2, lora_alpha: 4, use_rslora: true }, {
    'base_model.model.m.lora_A.weight': A,
    'base_model.model.m.lora_B.weight': B,
  });
  const got = openLoraAdapter(d).delta('m.weight');
  const s = 4 / Math.sqrt(2);
  [1, 2, 3, 2, 5, 6].forEach((v, i) => assert.ok(Math.abs(got[i]! - Math.fround(s * v)) < 1e-6));
});

test('rank_pattern and alpha_pattern override r and alpha per module, as PEFT matches them', () => {
  assert.equal(patternKeyFor(['q_proj'], 'model.layers.0.self_attn.q_proj'), 'q_proj');
  assert.equal(patternKeyFor(['layers\\.0\\..*v_proj'], 'model.layers.0.self_attn.v_proj'), 'layers\\.0\\..*v_proj');
  assert.equal(patternKeyFor(['q_proj'], 'model.layers.0.self_attn.kq_proj'), undefined);
  const d = adapter('pattern', { r: 8, lora_alpha: 16, rank_pattern: { q_proj: 2 }, alpha_pattern: { q_proj: 1 } }, {
    'base_model.model.x.q_proj.lora_A.weight': A,
    'base_model.model.x.q_proj.lora_B.weight': B,
  });
  assert.deepEqual(Array.from(openLoraAdapter(d).delta('x.q_proj.weight')), [0.5, 1, 1.5, 1, 2.5, 3]);
  const wrong = adapter('wrong-rank', { r: 8, lora_alpha: 16 }, {
    'base_model.model.x.lora_A.weight': A,
    'base_model.model.x.lora_B.weight': B,
  });
  assert.throws(() => openLoraAdapter(wrong).delta('x.weight'), /rank 2 but adapter_config.json gives r = 8/);
});

test('embedding adapters and fan_in_fan_out give the transposed product', () => {
  const d = adapter('embed', { r: 2, lora_alpha: 2 }, {
    'base_model.model.model.embed_tokens.lora_embedding_A': A,
    'base_model.model.model.embed_tokens.lora_embedding_B': B,
  });
  // (B A)^T = [[1,2],[2,5],[3,6]]
  assert.deepEqual(Array.from(openLoraAdapter(d).delta('model.embed_tokens.weight')), [1, 2, 2, 5, 3, 6]);
  assert.deepEqual(Array.from(materializeLora({ a: new Float32Array(A.values), b: new Float32Array(B.values), rank: 2, scale: 1, outFeatures: 2, inFeatures: 3, transposed: false })), [1, 2, 3, 2, 5, 6]);
});

test('DoRA adapters and incomplete factor pairs are refused clearly', () => {
  assert.throws(() => openLoraAdapter(adapter('dora', { r: 2, lora_alpha: 2, use_dora: true }, {})), (e: unknown) => e instanceof NotSupportedError);
  assert.throws(() => openLoraAdapter(adapter('half', { r: 2, lora_alpha: 2 }, { 'base_model.model.m.lora_A.weight': A })), /has lora_A but not lora_B/);
  assert.throws(() => openLoraAdapter(adapter('badcfg', { r: 'two', lora_alpha: 2 }, {})), /field 'r'/);
});

test('a generated adapter targets real tensors of its base with matching shapes', () => {
  const base = makeTinyLlama(join(dir, 'base'), { hidden: 16, heads: 4, kvHeads: 2 });
  const lora = openLoraAdapter(makeTinyLora(join(dir, 'tiny-lora'), base, { rank: 2, alpha: 4, targetModules: ['q_proj', 'k_proj'] }));
  const ckpt = openCheckpoint(base);
  assert.equal(lora.targets().length, 4);
  for (const t of lora.targets()) assert.equal(lora.delta(t).length, ckpt.info(t).shape.reduce((a, b) => a * b, 1));
  assert.equal(openCheckpoint(lora.path).format, 'lora-adapter');
});
