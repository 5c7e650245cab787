import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend, tf } from '../src/models/backend.ts';
import { parseLlamaConfig } from '../src/models/llama-config.ts';
import { LlamaModel } from '../src/models/llama.ts';
import { weightsFromMap } from '../src/models/weights.ts';
import { LlamaTrainer, initialLlamaWeights } from '../src/train/llama.ts';
import { ensureGradients } from '../src/train/gradients.ts';

const config = {
  architectures: ['LlamaForCausalLM'], vocab_size: 11, hidden_size: 8, intermediate_size: 12, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 16, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false,
};

test('the Llama training forward pass equals the model family logits', async () => {
  await useBackend('wasm');
  await ensureGradients();
  const w = initialLlamaWeights(config, 'fwd', 0.4);
  const seqs = [[1, 4, 7, 2, 9, 3], [5, 5, 0, 10, 8, 1]];
  const model = LlamaModel.load(parseLlamaConfig(config), weightsFromMap(w));
  const want = await model.logits(seqs);
  model.dispose();
  const trainer = new LlamaTrainer(config, w);
  const got = tf.tidy(() => trainer.forward(tf.tensor2d(seqs.flat(), [2, 6], 'int32'), 2, 6).dataSync());
  const flat = new Float32Array([...want[0]!, ...want[1]!]);
  assert.equal(got.length, flat.length);
  for (let i = 0; i < flat.length; i++) assert.ok(Math.abs(got[i]! - flat[i]!) < 1e-4, `logit ${i}: ${got[i]} vs ${flat[i]}`);
  const back = trainer.weights();
  for (const [name, v] of w) assert.deepEqual([...back.get(name)!], [...v], name);
  trainer.dispose();
});

test('training the Llama on a repeating sequence lowers its loss and is reproducible', async () => {
  await useBackend('wasm');
  await ensureGradients();
  const w = initialLlamaWeights(config, 'train');
  const run = async () => {
    const t = new LlamaTrainer(config, w);
    const losses: number[] = [];
    await t.train({ sample: (rng) => { const o = rng.int(3); return Int32Array.from({ length: 9 }, (_, i) => 3 + ((i + o) % 3)); }, steps: 40, batch: 4, learningRate: 0.02, seed: 's' }, (_s, l) => { if (l !== null) losses.push(l); });
    const out = t.weights();
    t.dispose();
    return { out, losses };
  };
  const a = await run();
  const b = await run();
  assert.ok(a.losses.at(-1)! < a.losses[0]! / 2, `loss ${a.losses[0]} -> ${a.losses.at(-1)}`);
  for (const [name, v] of a.out) assert.deepEqual([...v], [...b.out.get(name)!], name);
});
