import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointFormatError, InputError } from '../src/errors.ts';
import { CheckpointWriter, detectLayers, layerOf, openCheckpoint, writeSafetensors } from '../src/checkpoint/index.ts';
import { makeTinyLlama } from '../src/zoo/tiny.ts';
import { tempDir } from './helpers/tmp.ts';

const dir = tempDir();

test('a sharded folder round-trips: shards under the size cap, index with weight_map and total_size', () => {
  const src = makeTinyLlama(join(dir, 'single'), { seed: 3, layers: 3, hidden: 16 });
  const sharded = makeTinyLlama(join(dir, 'sharded'), { seed: 3, layers: 3, hidden: 16, maxShardBytes: 4096 });
  const files = readdirSync(sharded).filter((f) => f.endsWith('.safetensors'));
  assert.ok(files.length > 3, `expected several shards, got ${files.length}`);
  assert.ok(files.every((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)));
  const index = JSON.parse(readFileSync(join(sharded, 'model.safetensors.index.json'), 'utf8'));
  const a = openCheckpoint(src);
  const b = openCheckpoint(sharded);
  assert.deepEqual(b.names(), a.names());
  let total = 0;
  for (const name of a.names()) {
    assert.deepEqual(b.readRaw(name), a.readRaw(name), name);
    assert.ok(files.includes(index.weight_map[name]));
    total += a.info(name).byteLength;
  }
  assert.equal(index.metadata.total_size, total);
  assert.deepEqual(b.layers, { count: 3, prefix: 'model.layers.', indices: [0, 1, 2] });
  assert.equal(b.config?.num_hidden_layers, 3);
  assert.deepEqual(b.warnings, []);
  a.close();
  b.close();
});

test('the same seed gives the same bytes, another seed different ones', () => {
  const x = openCheckpoint(makeTinyLlama(join(dir, 's1'), { seed: 7 }));
  const y = openCheckpoint(makeTinyLlama(join(dir, 's2'), { seed: 7 }));
  const z = openCheckpoint(makeTinyLlama(join(dir, 's3'), { seed: 8 }));
  const name = 'model.layers.1.mlp.up_proj.weight';
  assert.deepEqual(x.readRaw(name), y.readRaw(name));
  assert.notDeepEqual(x.readRaw(name), z.readRaw(name));
});

test('tiny models cover the Llama, Mistral and Qwen2 layouts', () => {
  const q = openCheckpoint(makeTinyLlama(join(dir, 'qwen'), { architecture: 'Qwen2ForCausalLM', heads: 4, kvHeads: 2, tieWordEmbeddings: true }));
  assert.ok(q.has('model.layers.0.self_attn.q_proj.bias'));
  assert.deepEqual(q.info('model.layers.0.self_attn.k_proj.weight').shape, [8, 16]);
  assert.ok(!q.has('lm_head.weight'));
  const m = openCheckpoint(makeTinyLlama(join(dir, 'mistral'), { architecture: 'MistralForCausalLM', dtype: 'BF16', config: { sliding_window: 8 } }));
  assert.equal(m.config?.sliding_window, 8);
  assert.equal(m.info('model.norm.weight').dtype, 'BF16');
});

test('a stale index is rejected with the tensor and shard named', () => {
  const sharded = makeTinyLlama(join(dir, 'stale'), { seed: 1, maxShardBytes: 4096 });
  const indexPath = join(sharded, 'model.safetensors.index.json');
  const index = JSON.parse(readFileSync(indexPath, 'utf8'));
  const [first, second] = Object.keys(index.weight_map).filter((n) => index.weight_map[n] !== index.weight_map['model.norm.weight']);
  const moved = { ...index, weight_map: { ...index.weight_map, [first!]: index.weight_map['model.norm.weight'] } };
  writeFileSync(indexPath, JSON.stringify(moved));
  assert.throws(() => openCheckpoint(sharded), (e: unknown) => e instanceof CheckpointFormatError && e.code === 'E_INDEX' && e.message.includes(first!));
  const missing = { ...index, weight_map: Object.fromEntries(Object.entries(index.weight_map).filter(([n]) => n !== second)) };
  writeFileSync(indexPath, JSON.stringify(missing));
  assert.throws(() => openCheckpoint(sharded), /not in weight_map/);
  writeFileSync(indexPath, JSON.stringify({ ...index, weight_map: { ...index.weight_map, [second!]: '../elsewhere.safetensors' } }));
  assert.throws(() => openCheckpoint(sharded), /file name in the same folder/);
  writeFileSync(indexPath, JSON.stringify({ ...index, metadata: { total_size: 1 } }));
  assert.match(openCheckpoint(sharded).warnings.join('\n'), /total_size 1/);
});

test('tokenizer files are copied through to an output folder', () => {
  const src = makeTinyLlama(join(dir, 'tok'), { tokenizer: { version: '1.0', model: { type: 'WordLevel' } } });
  writeFileSync(join(src, 'tokenizer_config.json'), '{"model_max_length": 64}');
  const ckpt = openCheckpoint(src);
  assert.deepEqual(ckpt.tokenizerFiles().map((p) => p.split('/').pop()).sort(), ['tokenizer.json', 'tokenizer_config.json']);
  const out = join(dir, 'tok-out');
  const w = new CheckpointWriter(out, { tensors: [{ name: 'x', dtype: 'F32', shape: [1] }] });
  w.write('x', new Float32Array([1]));
  w.finish({ config: ckpt.config!, tokenizerFrom: ckpt, files: { 'README.md': '# out\n' } });
  assert.equal(readFileSync(join(out, 'tokenizer_config.json'), 'utf8'), '{"model_max_length": 64}');
  assert.ok(existsSync(join(out, 'tokenizer.json')) && existsSync(join(out, 'README.md')) && existsSync(join(out, 'config.json')));
  assert.ok(!existsSync(join(out, 'model.safetensors.index.json')), 'one shard needs no index');
  assert.deepEqual(readdirSync(out).filter((f) => f.startsWith('.')), [], 'no temporary files left');
});

test('a folder without safetensors weights gets a clear error, with a hint for pickle files', () => {
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  assert.throws(() => openCheckpoint(empty), (e: unknown) => e instanceof InputError && e.code === 'E_NO_WEIGHTS');
  writeFileSync(join(empty, 'pytorch_model.bin'), 'x');
  assert.throws(() => openCheckpoint(empty), /convert them to safetensors/);
  assert.throws(() => openCheckpoint(join(dir, 'nowhere')), (e: unknown) => e instanceof InputError && e.code === 'E_NOT_FOUND');
});

test('a bare safetensors file opens with its layers detected', () => {
  const src = makeTinyLlama(join(dir, 'bare'), { layers: 2 });
  const file = join(dir, 'bare.safetensors');
  copyFileSync(join(src, 'model.safetensors'), file);
  const c = openCheckpoint(file);
  assert.equal(c.format, 'safetensors');
  assert.equal(c.config, null);
  assert.equal(c.layers.count, 2);
});

test('layers are detected from common naming schemes, and disagreement with the config is reported', () => {
  assert.deepEqual(layerOf('model.layers.12.mlp.up_proj.weight'), { prefix: 'model.layers.', index: 12 });
  assert.deepEqual(layerOf('transformer.h.3.attn.c_attn.weight'), { prefix: 'transformer.h.', index: 3 });
  assert.deepEqual(layerOf('blocks.0.fc.weight'), { prefix: 'blocks.', index: 0 });
  assert.equal(layerOf('model.embed_tokens.weight'), null);
  const warnings: string[] = [];
  const info = detectLayers(['model.layers.0.a', 'model.layers.2.a'], { num_hidden_layers: 4 }, warnings);
  assert.equal(info.count, 4);
  assert.equal(warnings.length, 2);
});

test('a malformed config.json is rejected naming the file', () => {
  const src = makeTinyLlama(join(dir, 'badcfg'));
  writeFileSync(join(src, 'config.json'), '{"hidden_size": ');
  assert.throws(() => openCheckpoint(src), (e: unknown) => e instanceof CheckpointFormatError && e.code === 'E_CONFIG_JSON' && e.message.includes('config.json'));
});

test('the writer refuses undeclared tensors and aborts without leaving shards', () => {
  const out = join(dir, 'aborted');
  const w = new CheckpointWriter(out, { tensors: [{ name: 'a', dtype: 'F32', shape: [4] }, { name: 'b', dtype: 'F32', shape: [4] }], maxShardBytes: 16 });
  assert.equal(w.shardCount, 2);
  assert.throws(() => w.write('c', new Float32Array(4)), /not declared/);
  w.write('a', new Float32Array(4));
  assert.throws(() => w.finish(), /never written/);
  assert.deepEqual(readdirSync(out), []);
  writeSafetensors(join(out, 'ok.safetensors'), []);
  assert.deepEqual(openCheckpoint(join(out, 'ok.safetensors')).names(), []);
});
