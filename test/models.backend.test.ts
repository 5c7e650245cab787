import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { parseBackendChoice, useBackend, tf } from '../src/models/backend.ts';
import { openCheckpoint } from '../src/checkpoint/index.ts';
import { makeTinyLlama } from '../src/zoo/tiny.ts';
import { loadModel } from '../src/models/load.ts';
import type { CausalLM } from '../src/models/llama.ts';
import { referenceLogits, type RefConfig } from './helpers/llama-reference.ts';

const installed = (pkg: string) => {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
};

test('auto falls back past missing optional native packages and says why, in order', async () => {
  const info = await useBackend('auto');
  const names = [...info.attempts.map((a) => a.name), info.name];
  const order = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];
  assert.deepEqual(names, order.slice(0, names.length), 'candidates are tried in the documented order');
  if (!installed('@tensorflow/tfjs-node-gpu')) assert.match(info.attempts[0]!.reason, /tfjs-node-gpu is not installed/);
  if (!installed('@tensorflow/tfjs-node-gpu') && !installed('@tensorflow/tfjs-node')) assert.equal(info.name, 'wasm');
  assert.equal(tf.getBackend(), info.tfName);
});

test('an explicitly requested backend that is missing is refused, and an unknown name is refused', async () => {
  if (!installed('@tensorflow/tfjs-node')) await assert.rejects(useBackend('tensorflow'), { code: 'E_BACKEND_UNAVAILABLE' });
  assert.throws(() => parseBackendChoice('webgl'), { code: 'E_BACKEND_UNKNOWN' });
  assert.equal((await useBackend('cpu')).name, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
});

test('a sharded BF16 Qwen2 folder loads from disk and matches the reference on its decoded weights', async () => {
  await useBackend('wasm');
  const root = mkdtempSync(join(tmpdir(), 'evomerge-backend-'));
  try {
    const dir = makeTinyLlama(join(root, 'q'), { seed: 3, architecture: 'Qwen2ForCausalLM', vocab: 20, hidden: 16, heads: 4, kvHeads: 2, layers: 2, intermediate: 20, dtype: 'BF16', maxShardBytes: 4000, tieWordEmbeddings: true });
    assert.ok(readdirSync(dir).includes('model.safetensors.index.json'), 'the folder is sharded');
    const ckpt = openCheckpoint(dir);
    const weights = new Map(ckpt.names().map((n) => [n, ckpt.readFloat32(n)]));
    const config = ckpt.config as unknown as RefConfig;
    ckpt.close();
    const { model } = loadModel(dir);
    const ids = [1, 4, 19, 0, 7, 7, 3];
    const [logits] = await (model as CausalLM).logits([ids]);
    model.dispose();
    const ref = referenceLogits({ ...config, num_key_value_heads: 2 }, weights, ids);
    let worst = 0;
    ref.flat().forEach((v, i) => (worst = Math.max(worst, Math.abs(v - logits![i]!))));
    assert.ok(worst < 1e-4, `max difference ${worst}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
