import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend, tf, type BackendName } from '../src/models/backend.ts';
import { parseLlamaConfig, ropeInverseFrequencies } from '../src/models/llama-config.ts';
import { LlamaModel, composeLlamaPath } from '../src/models/llama.ts';
import { weightsFromMap } from '../src/models/weights.ts';
import { randomLlamaWeights, referenceLogits, type RefConfig } from './helpers/llama-reference.ts';

function config(over: Partial<RefConfig> = {}): RefConfig {
  return {
    architectures: ['LlamaForCausalLM'], vocab_size: 23, hidden_size: 16, intermediate_size: 24,
    num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, rms_norm_eps: 1e-5,
    rope_theta: 10000, max_position_embeddings: 64, tie_word_embeddings: false, ...over,
  };
}

const variants: Array<[string, RefConfig]> = [
  ['Llama with grouped-query attention (4 query heads over 2 key-value heads)', config()],
  ['Llama with one key-value head per query head', config({ num_key_value_heads: 4 })],
  ['Mistral with a sliding window shorter than the sequence', config({ architectures: ['MistralForCausalLM'], sliding_window: 3 })],
  ['Qwen2 with q, k, v biases', config({ architectures: ['Qwen2ForCausalLM'], num_key_value_heads: 1 })],
  ['Qwen2 with a sliding window from layer 1 on', config({ architectures: ['Qwen2ForCausalLM'], sliding_window: 2, use_sliding_window: true, max_window_layers: 1 })],
  ['Llama with tied embeddings', config({ tie_word_embeddings: true })],
  ['Llama with linear rope scaling', config({ rope_scaling: { type: 'linear', factor: 4 } })],
  ['Llama with llama3 rope scaling across all three frequency bands', config({ hidden_size: 32, rope_theta: 10, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 2, original_max_position_embeddings: 16 } })],
  ['Llama with dynamic NTK rope scaling past max_position_embeddings', config({ max_position_embeddings: 4, rope_scaling: { type: 'dynamic', factor: 2 } })],
];

const ids = [1, 5, 7, 22, 0, 3, 3, 9, 14, 2];
const backends: BackendName[] = ['cpu', 'wasm'];

function maxAbsDiff(a: Float32Array, ref: number[][]): number {
  let m = 0;
  ref.flat().forEach((v, i) => (m = Math.max(m, Math.abs(v - a[i]!))));
  return m;
}

for (const backend of backends) {
  for (const [name, c] of variants) {
    test(`${name}: logits on ${backend} match the float64 loop reference to 1e-4`, async () => {
      await useBackend(backend);
      const weights = randomLlamaWeights(c, 7);
      const model = LlamaModel.load(parseLlamaConfig(c), weightsFromMap(weights));
      try {
        const [logits] = await model.logits([ids]);
        const ref = referenceLogits(c, weights, ids);
        assert.equal(logits!.length, ids.length * c.vocab_size);
        const spread = Math.max(...ref.flat().map(Math.abs));
        assert.ok(spread > 1, 'logits are not trivially small');
        assert.ok(maxAbsDiff(logits!, ref) < 1e-4, `max difference ${maxAbsDiff(logits!, ref)}`);
      } finally {
        model.dispose();
      }
    });
  }
}

test('llama3 rope scaling leaves high frequencies, divides low ones and blends the middle', () => {
  const c = parseLlamaConfig(variants[7]![1]);
  const inv = ropeInverseFrequencies(c.rope, 8);
  // head_dim 8, theta 10: base frequencies 10^(-k/4), k = 0..3, wavelengths 2*pi/f = 6.3, 11.2,
  // 19.9, 35.3 against the band edges 16/2 = 8 and 16/1 = 16.
  assert.ok(Math.abs(inv[0]! - 1) < 1e-12, 'wavelength 6.3 < 8: kept');
  const f1 = 10 ** -0.25;
  const smooth = (16 / (2 * Math.PI / f1) - 1) / (2 - 1);
  assert.ok(Math.abs(inv[1]! - ((1 - smooth) * f1 / 8 + smooth * f1)) < 1e-12, 'wavelength 11.2 in [8, 16]: blended');
  assert.ok(Math.abs(inv[2]! - 10 ** -0.5 / 8) < 1e-12, 'wavelength 19.9 > 16: divided by the factor');
  assert.ok(Math.abs(inv[3]! - 10 ** -0.75 / 8) < 1e-12, 'wavelength 35.3 > 16: divided by the factor');
});

test('token log-probabilities of ragged batches equal those of each sequence alone', async () => {
  await useBackend('wasm');
  const c = config();
  const weights = randomLlamaWeights(c, 3);
  const model = LlamaModel.load(parseLlamaConfig(c), weightsFromMap(weights));
  try {
    const seqs = [[1, 2, 3, 4, 5, 6], [7, 8], [9, 10, 11]];
    const batched = await model.tokenLogProbs(seqs);
    for (let i = 0; i < seqs.length; i++) {
      const ref = referenceLogits(c, weights, seqs[i]!);
      const alone = await model.tokenLogProbs([seqs[i]!]);
      assert.equal(batched[i]!.length, seqs[i]!.length - 1);
      for (let t = 0; t + 1 < seqs[i]!.length; t++) {
        const row = ref[t]!;
        const mx = Math.max(...row);
        const lse = mx + Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0));
        const expected = row[seqs[i]![t + 1]!]! - lse;
        assert.ok(Math.abs(batched[i]![t]! - expected) < 1e-4, `seq ${i} token ${t}`);
        assert.ok(Math.abs(alone[0]![t]! - batched[i]![t]!) < 1e-5);
      }
    }
  } finally {
    model.dispose();
  }
});

test('greedy generation with the KV cache picks the argmax of full forward passes, and leaks no tensors', async () => {
  await useBackend('wasm');
  const c = config({ architectures: ['MistralForCausalLM'], sliding_window: 3, eos_token_id: 999 });
  const weights = randomLlamaWeights(c, 11);
  const before = tf.memory().numTensors;
  const model = LlamaModel.load(parseLlamaConfig(c), weightsFromMap(weights));
  const prompt = [1, 4, 9];
  const out = await model.generate(prompt, { maxTokens: 6 });
  model.dispose();
  assert.equal(tf.memory().numTensors, before, 'every tensor was disposed');
  assert.equal(out.length, 6);
  const seq = [...prompt];
  for (let n = 0; n < 6; n++) {
    const ref = referenceLogits(c, weights, seq);
    const last = ref[ref.length - 1]!;
    seq.push(last.indexOf(Math.max(...last)));
  }
  assert.deepEqual(out, seq.slice(prompt.length));
});

test('generation stops when the stop callback says so', async () => {
  await useBackend('cpu');
  const c = config();
  const model = LlamaModel.load(parseLlamaConfig(c), weightsFromMap(randomLlamaWeights(c, 5)));
  try {
    const out = await model.generate([1, 2], { maxTokens: 10, stop: (g) => g.length === 2 });
    assert.equal(out.length, 2);
  } finally {
    model.dispose();
  }
});

test("a layer path equal to a model's own layers with scale 1 gives exactly its logits", async () => {
  await useBackend('wasm');
  const c = config();
  const a = LlamaModel.load(parseLlamaConfig(c), weightsFromMap(randomLlamaWeights(c, 1)));
  const b = LlamaModel.load(parseLlamaConfig(c), weightsFromMap(randomLlamaWeights(c, 2)));
  try {
    const path = composeLlamaPath([a, b], [{ source: 1, layer: 0, scale: 1 }, { source: 1, layer: 1, scale: 1 }], { embeddings: 1 });
    const [own] = await b.logits([ids]);
    const [viaPath] = await path.logits([ids]);
    assert.deepEqual(Array.from(viaPath!), Array.from(own!));
  } finally {
    a.dispose();
    b.dispose();
  }
});

test('a layer path across two models with scales matches the reference run on the spliced layers', async () => {
  await useBackend('wasm');
  const c = config({ num_hidden_layers: 2 });
  const wa = randomLlamaWeights(c, 1);
  const wb = randomLlamaWeights(c, 2);
  const a = LlamaModel.load(parseLlamaConfig(c), weightsFromMap(wa));
  const b = LlamaModel.load(parseLlamaConfig(c), weightsFromMap(wb));
  try {
    // path: a.layer1 (x0.5), b.layer0 (x1), a.layer1 (x1.5); embeddings from a, head from b
    const path = composeLlamaPath([a, b], [{ source: 0, layer: 1, scale: 0.5 }, { source: 1, layer: 0, scale: 1 }, { source: 0, layer: 1, scale: 1.5 }], { embeddings: 0, head: 1 });
    const spliced = new Map<string, Float32Array>();
    spliced.set('model.embed_tokens.weight', wa.get('model.embed_tokens.weight')!);
    spliced.set('model.norm.weight', wb.get('model.norm.weight')!);
    spliced.set('lm_head.weight', wb.get('lm_head.weight')!);
    const copy = (from: Map<string, Float32Array>, src: number, dst: number) => {
      for (const [k, v] of from) if (k.startsWith(`model.layers.${src}.`)) spliced.set(k.replace(`model.layers.${src}.`, `model.layers.${dst}.`), v);
    };
    copy(wa, 1, 0);
    copy(wb, 0, 1);
    copy(wa, 1, 2);
    const ref = referenceLogits({ ...c, num_hidden_layers: 3 }, spliced, ids, [0.5, 1, 1.5]);
    const [got] = await path.logits([ids]);
    assert.ok(maxAbsDiff(got!, ref) < 1e-4);
  } finally {
    a.dispose();
    b.dispose();
  }
});

test('a checkpoint missing a tensor is refused with the tensor named', async () => {
  await useBackend('cpu');
  const c = config();
  const w = randomLlamaWeights(c, 1);
  w.delete('model.layers.1.mlp.up_proj.weight');
  const before = tf.memory().numTensors;
  assert.throws(() => LlamaModel.load(parseLlamaConfig(c), weightsFromMap(w)), /model\.layers\.1\.mlp\.up_proj\.weight/);
  assert.equal(tf.memory().numTensors, before, 'a failed load frees what it uploaded');
});

test('a tensor of the wrong size is refused with the tensor and the expected shape named', async () => {
  await useBackend('cpu');
  const c = config();
  const w = randomLlamaWeights(c, 1);
  w.set('model.norm.weight', new Float32Array(3));
  assert.throws(() => LlamaModel.load(parseLlamaConfig(c), weightsFromMap(w)), /model\.norm\.weight.*\[16\]/);
});

test('configs that are not supported are refused naming the field', () => {
  assert.throws(() => parseLlamaConfig(config({ architectures: ['GPT2LMHeadModel'] })), { code: 'E_ARCH_UNSUPPORTED' });
  assert.throws(() => parseLlamaConfig(config({ num_key_value_heads: 3 })), /num_key_value_heads/);
  assert.throws(() => parseLlamaConfig({ ...config(), hidden_size: 'big' }), /hidden_size/);
  assert.throws(() => parseLlamaConfig(config({ rope_scaling: { rope_type: 'yarn', factor: 2 } })), { code: 'E_ROPE_UNSUPPORTED' });
  assert.throws(() => parseLlamaConfig(config({ rope_scaling: { rope_type: 'llama3', factor: 2 } })), /rope_scaling\.low_freq_factor/);
});

test('token ids outside the vocabulary are refused', async () => {
  await useBackend('cpu');
  const c = config();
  const model = LlamaModel.load(parseLlamaConfig(c), weightsFromMap(randomLlamaWeights(c, 1)));
  try {
    await assert.rejects(model.logits([[1, 23]]), { code: 'E_TOKEN_RANGE' });
  } finally {
    model.dispose();
  }
});
