import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend, tf } from '../src/models/backend.ts';
import { LlamaTrainer, initialLlamaWeights } from '../src/train/llama.ts';
import { softmaxCrossEntropy } from '../src/train/ops.ts';
import { ensureGradients } from '../src/train/gradients.ts';
import { denseFromTopK, epochOrder, trainFused } from '../src/fuse/train.ts';
import { Rng } from '../src/tensor/rng.ts';
import { tempDir } from './helpers/tmp.ts';

const V = 9;
const config = {
  architectures: ['LlamaForCausalLM'], vocab_size: V, hidden_size: 8, intermediate_size: 12, num_hidden_layers: 2,
  num_attention_heads: 2, num_key_value_heads: 2, max_position_embeddings: 16, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false,
};
const T = 6;
const K = 3;

/** Windows of T + 1 tokens and a made-up top-k distribution per position (rows sum to 1). */
function data(n: number, seed: string) {
  const rng = Rng.seeded(seed);
  const windows = Array.from({ length: n }, () => Int32Array.from({ length: T + 1 }, () => 3 + rng.int(V - 3)));
  const targets = windows.map(() => {
    const ids = new Int32Array(T * K);
    const probs = new Float32Array(T * K);
    for (let t = 0; t < T; t++) {
      const raw = [rng.next() + 0.1, rng.next() + 0.1, rng.next() + 0.1];
      const s = raw[0]! + raw[1]! + raw[2]!;
      for (let j = 0; j < K; j++) {
        ids[t * K + j] = (t + 2 * j) % V;
        probs[t * K + j] = raw[j]! / s;
      }
    }
    return { length: T, k: K, ids, probs };
  });
  return { windows, targets };
}

test('the dense target built from top-k rows equals a hand-computed one', () => {
  const d = { length: 2, k: 3, ids: Int32Array.from([4, 1, -1, 0, 0, 2]), probs: Float32Array.from([0.5, 0.25, 0.25, 0.5, 0.25, 0.25]) };
  const got = denseFromTopK(d, 5, new Float32Array(2 * 5));
  // position 0: id 4 gets 0.5, id 1 gets 0.25, the -1 entry (no pivot token) nothing
  // position 1: id 0 appears twice (two source tokens mapped to one pivot token): 0.5 + 0.25
  assert.deepEqual([...got], [0, 0.25, 0, 0, 0.5, 0.75, 0, 0.25, 0, 0]);
  assert.throws(() => denseFromTopK({ ...d, ids: Int32Array.from([7, 1, 0, 0, 0, 2]) }, 5, new Float32Array(10)), /outside the pivot's vocabulary/);
});

test('the soft-target loss is lambda CE(gold) + (1 - lambda) CE(soft), and at lambda = 1 the plain trainer step bit for bit', async () => {
  await useBackend('wasm');
  await ensureGradients();
  const w = initialLlamaWeights(config, 'soft', 0.3);
  const { windows, targets } = data(4, 'soft');
  const dense = new Float32Array(4 * T * V);
  targets.forEach((d, b) => denseFromTopK(d, V, dense, b * T * V));
  // the two terms computed apart, with the model's logits, against the mixed target
  const probe = new LlamaTrainer(config, w);
  const [ce, cs] = tf.tidy(() => {
    const ids = tf.tensor2d(Int32Array.from(windows.flatMap((s) => [...s.subarray(0, T)])), [4, T], 'int32');
    const logits = probe.forward(ids, 4, T);
    const gold = tf.cast(tf.oneHot(tf.tensor1d(Int32Array.from(windows.flatMap((s) => [...s.subarray(1)])), 'int32'), V), 'float32') as tf.Tensor2D;
    return [softmaxCrossEntropy(logits, gold).dataSync()[0]!, softmaxCrossEntropy(logits, tf.tensor2d(dense, [4 * T, V])).dataSync()[0]!];
  });
  probe.dispose();
  const lossAt = (lambda: number) => {
    const t = new LlamaTrainer(config, w);
    const opt = tf.train.adam(0.01);
    const l = t.step(opt, windows, t.trainableVariables(), { lambda, dense });
    const v = l.dataSync()[0]!;
    l.dispose();
    opt.dispose();
    t.dispose();
    return v;
  };
  assert.ok(Math.abs(lossAt(0.9) - (0.9 * ce + 0.1 * cs)) < 1e-5, `${lossAt(0.9)} vs ${0.9 * ce + 0.1 * cs}`);
  assert.ok(Math.abs(lossAt(0) - cs) < 1e-5);
  assert.ok(Math.abs(cs - ce) > 1e-3, 'the soft target differs from the gold one, so the check above means something');

  // lambda = 1: the same loss and the same weights after steps as the existing trainer's train()
  const seqs = [...windows, ...windows];
  let i = 0;
  const a = new LlamaTrainer(config, w);
  await a.train({ sample: () => seqs[i++ % seqs.length]!, steps: 3, batch: 4, learningRate: 0.01, seed: 'x' });
  const b = new LlamaTrainer(config, w);
  const opt = tf.train.adam(0.01);
  const vars = b.trainableVariables();
  for (let s = 0; s < 3; s++) {
    const batch = [0, 1, 2, 3].map((j) => seqs[(s * 4 + j) % seqs.length]!);
    const bd = new Float32Array(4 * T * V);
    batch.forEach((_, j) => denseFromTopK(targets[(s * 4 + j) % 4]!, V, bd, j * T * V));
    b.step(opt, batch, vars, { lambda: 1, dense: bd }).dispose();
  }
  opt.dispose();
  const wa = a.weights();
  const wb = b.weights();
  for (const [name, v] of wa) assert.deepEqual([...wb.get(name)!], [...v], name);
  a.dispose();
  b.dispose();
});

test('the epoch order is a seeded permutation that changes from epoch to epoch', () => {
  const a = epochOrder(20, 's', 0);
  assert.deepEqual([...a].sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i));
  assert.deepEqual([...epochOrder(20, 's', 0)], [...a]);
  assert.notDeepEqual([...epochOrder(20, 's', 1)], [...a]);
});

test('fused training stopped after epoch 1 and resumed ends with the weights of an uninterrupted run, bit for bit', async () => {
  await useBackend('wasm');
  await ensureGradients();
  const w = initialLlamaWeights(config, 'resume', 0.1);
  const { windows, targets } = data(10, 'resume');
  const common = { config, initial: w, windows, targets, lambda: 0.9, epochs: 3, batch: 4, learningRate: 0.01, seed: 7, key: 'k' };
  const whole = await trainFused({ ...common, workDir: tempDir() });
  assert.equal(whole.complete, true);
  assert.equal(whole.losses.length, 3);
  assert.ok(whole.losses[2]! < whole.losses[0]!, `loss ${whole.losses.join(' -> ')}`);

  const dir = tempDir();
  const first = await trainFused({ ...common, workDir: dir, stopAfter: 1 });
  assert.equal(first.complete, false);
  assert.equal(first.losses.length, 1);
  const rest = await trainFused({ ...common, workDir: dir });
  assert.equal(rest.resumedFrom, 1);
  assert.deepEqual(rest.losses, whole.losses);
  for (const [name, v] of whole.weights) assert.deepEqual([...rest.weights.get(name)!], [...v], name);

  // a checkpoint made for other inputs is not resumed
  const other = await trainFused({ ...common, key: 'other', workDir: dir, stopAfter: 1 });
  assert.equal(other.resumedFrom, 0);
});
