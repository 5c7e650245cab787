import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTinyLlama } from '../src/zoo/tiny.ts';
import { charTokenizerJson, tokenizerFromJson, type TextTokenizer } from '../src/models/tokenizer.ts';
import { useBackend, tf } from '../src/models/backend.ts';
import { loadModel } from '../src/models/load.ts';
import type { CausalLM } from '../src/models/llama.ts';
import { parseManifest } from '../src/eval/manifest.ts';
import { createEvaluator } from '../src/eval/evaluator.ts';
import { answersMatch, extractAnswer, scorePerplexity } from '../src/eval/text.ts';

const CHARS = '0123456789+-=\n abc';
let dir = '';
let lm: CausalLM;

before(async () => {
  await useBackend('wasm');
  dir = makeTinyLlama(join(mkdtempSync(join(tmpdir(), 'evomerge-text-')), 'tiny'), { seed: 5, vocab: 32, hidden: 16, heads: 4, kvHeads: 2, layers: 2, intermediate: 24, tokenizer: charTokenizerJson(CHARS) });
  const loaded = loadModel(dir);
  assert.equal(loaded.family, 'llama');
  lm = loaded.model as CausalLM;
});

after(() => {
  lm?.dispose();
  rmSync(join(dir, '..'), { recursive: true, force: true });
});

/** log-softmax of a logits row, float64 */
function logSoftmax(row: Float32Array): number[] {
  const mx = Math.max(...row);
  const lse = mx + Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0));
  return Array.from(row, (v) => v - lse);
}

test('the character tokenizer.json loads through @huggingface/tokenizers, adds BOS and round-trips', () => {
  const tok = lm.tokenizer!;
  const ids = tok.encode('12+3=\n');
  assert.equal(ids[0], 1);
  assert.equal(ids.length, 7);
  assert.equal(tok.decode(ids), '12+3=\n');
  assert.equal(tok.decode([]), '', 'an empty generation (EOS first) decodes to the empty string');
  assert.equal(tok.eosId, 2);
  assert.equal(tok.size, 3 + CHARS.length);
});

test('perplexity loss is the mean NLL of every token after the first, and windows predict each token once', async () => {
  const text = '12+30=42\nabc 7-5=2\n';
  const ids = lm.tokenizer!.encode(text);
  const [logits] = await lm.logits([ids]);
  const V = lm.config.vocabSize;
  let nll = 0;
  for (let t = 0; t + 1 < ids.length; t++) nll -= logSoftmax(logits!.subarray(t * V, (t + 1) * V))[ids[t + 1]!]!;
  const whole = await scorePerplexity(lm, lm.tokenizer!, [text], { context: 64 });
  assert.equal(whole.tokens, ids.length - 1);
  assert.ok(Math.abs(whole.loss - nll / (ids.length - 1)) < 1e-5);
  assert.ok(Math.abs(whole.perplexity - Math.exp(whole.loss)) < 1e-9);
  assert.ok(Math.abs(whole.bits_per_char - nll / Math.LN2 / text.length) < 1e-4);
  const windowed = await scorePerplexity(lm, lm.tokenizer!, [text], { context: 5 });
  assert.equal(windowed.tokens, ids.length - 1);
  assert.notEqual(windowed.loss, whole.loss, 'shorter windows see less context');
});

test('choice acc and acc_norm equal the arg-max of hand-summed option log-likelihoods', async () => {
  const m = parseManifest({
    version: 1, kind: 'choice', family: 'llama', split: 'validation', limit: 6, prompt: '{question}', target_delimiter: '',
    data: { generator: { name: 'arithmetic', seed: 9, count: 6 } }, metric: { name: 'acc', direction: 'maximize' },
  }, 'choice.yaml');
  const ev = createEvaluator(m, { purpose: 'search' });
  const r = await ev.evaluate(lm, { backend: null });
  const { arithmeticItems } = await import('../src/eval/data.ts');
  const items = arithmeticItems({ seed: 9, count: 6, digits: 2, operations: ['+', '-'] }, 'validation');
  const tok = lm.tokenizer!;
  const V = lm.config.vocabSize;
  let acc = 0;
  let accNorm = 0;
  for (const it of items) {
    const ctx = tok.encode(String(it.question));
    const lls: number[] = [];
    for (const c of it.choices as string[]) {
      const whole = tok.encode(String(it.question) + c);
      const [logits] = await lm.logits([whole]);
      let s = 0;
      for (let t = ctx.length; t < whole.length; t++) s += logSoftmax(logits!.subarray((t - 1) * V, t * V))[whole[t]!]!;
      lls.push(s);
    }
    const choices = it.choices as string[];
    const best = lls.indexOf(Math.max(...lls));
    const norm = lls.map((v, i) => v / choices[i]!.length);
    if (best === it.gold) acc++;
    if (norm.indexOf(Math.max(...norm)) === it.gold) accNorm++;
  }
  assert.equal(r.samples, 6);
  assert.equal(r.metrics.acc, acc / 6);
  assert.equal(r.metrics.acc_norm, accNorm / 6);
  assert.equal(r.fitness, acc / 6);
  // multi-fidelity: sums over disjoint item subsets (the rungs of a seeded order) add up to the full result
  const { addPartial, itemOrder } = await import('../src/candidate/fidelity.ts');
  assert.equal(ev.itemCount!(), 6);
  const order = itemOrder('choice', 6);
  const parts = [order.slice(0, 2), order.slice(2, 4), order.slice(4)];
  let sum = null;
  for (const ix of parts) sum = addPartial(sum, await ev.scoreItems!(lm, { backend: null }, ix));
  assert.deepEqual(ev.resultOf!(sum!), r);
});

test('the last-number rule extracts the last number, dropping thousands separators', () => {
  assert.equal(extractAnswer('so 3 apples and 1,250 pears: total 1,253.', 'last-number'), '1253');
  assert.equal(extractAnswer('it is -7', 'last-number'), '-7');
  assert.equal(extractAnswer('no digits', 'last-number'), null);
  assert.equal(extractAnswer('The answer is (B).', '\\(([A-D])\\)'), 'B');
  assert.ok(answersMatch('42.0', '42'));
  assert.ok(!answersMatch('41', '42'));
  assert.ok(!answersMatch(null, '42'));
});

/** A scripted causal LM: answers correctly on even items, wrongly on odd ones, and records prompts. */
function scripted(tok: TextTokenizer, answers: Map<string, string>): CausalLM & { prompts: string[] } {
  const prompts: string[] = [];
  return {
    kind: 'causal-lm', config: lm.config, tokenizer: tok, prompts,
    logits: async () => [], tokenLogProbs: async () => [],
    async generate(prompt, options) {
      const text = tok.decode([...prompt]);
      prompts.push(text);
      const q = text.split('\n').pop()!;
      const out = tok.encode(`${answers.get(q)}\n9999`, { special: false });
      const got: number[] = [];
      for (const id of out) {
        got.push(id);
        if (got.length >= options.maxTokens || options.stop?.(got)) break;
      }
      return got;
    },
    dispose() {},
  };
}

test('generate scores exact match of the extracted answer, stops at stop strings, and builds seeded few-shot prompts', async () => {
  const m = parseManifest({
    version: 1, kind: 'generate', family: 'llama', split: 'validation', limit: 8, prompt: '{question}', target: '{answer}', max_tokens: 12, stop: ['\n'],
    fewshot: { k: 2, split: 'train', seed: 1, separator: '\n' },
    data: { generator: { name: 'arithmetic', seed: 4, count: 20 } }, metric: { name: 'exact_match', direction: 'maximize' },
  }, 'gen.yaml');
  const { arithmeticItems } = await import('../src/eval/data.ts');
  const val = arithmeticItems({ seed: 4, count: 20, digits: 2, operations: ['+', '-'] }, 'validation').slice(0, 8);
  const train = arithmeticItems({ seed: 4, count: 20, digits: 2, operations: ['+', '-'] }, 'train');
  const answers = new Map(val.map((r, i) => [String(r.question), i % 2 === 0 ? `x ${r.answer}` : String(Number(r.answer) + 1)]));
  const tok = tokenizerFromJson(charTokenizerJson(CHARS + 'x'), {}, { bos_token_id: 1 });
  const model = scripted(tok, answers);
  const ev = createEvaluator(m, { purpose: 'search' });
  const r = await ev.evaluate(model, { backend: null });
  assert.equal(r.metrics.exact_match, 0.5, 'the 9999 after the stop string never counts');
  assert.equal(r.metrics.answered, 1);
  const trainLines = new Set(train.map((t) => `${t.question}${t.answer}`));
  for (const p of model.prompts) {
    const lines = p.split('\n');
    assert.equal(lines.length, 3);
    assert.ok(trainLines.has(lines[0]!) && trainLines.has(lines[1]!), 'examples come from the train split with their answers');
  }
  const again = scripted(tok, answers);
  await createEvaluator(m, { purpose: 'search' }).evaluate(again, { backend: null });
  assert.deepEqual(again.prompts, model.prompts, 'few-shot prompts are the same for every candidate');
});

test('a tokenizer larger than the model vocabulary is refused naming both sizes', async () => {
  const big = tokenizerFromJson(charTokenizerJson(Array.from({ length: 40 }, (_, i) => String.fromCharCode(65 + i)).join('')));
  const m = parseManifest({ version: 1, kind: 'perplexity', family: 'llama', split: 'validation', data: { generator: { name: 'arithmetic' } }, text_field: 'question', metric: { name: 'loss', direction: 'minimize' } }, 'p.yaml');
  const fake = { ...lm, kind: 'causal-lm' as const, config: lm.config, tokenizer: big, logits: lm.logits, tokenLogProbs: lm.tokenLogProbs, generate: lm.generate, dispose() {} };
  await assert.rejects(createEvaluator(m, { purpose: 'eval' }).evaluate(fake, { backend: null }), /ids up to 42 but the model's vocab_size is 32/);
});

test('a perplexity evaluator on a real tiny model leaves no tensor behind and reports a minimised fitness', async () => {
  const m = parseManifest({ version: 1, kind: 'perplexity', family: 'llama', split: 'validation', limit: 5, data: { generator: { name: 'arithmetic' } }, text_field: 'question', metric: { name: 'loss', direction: 'minimize' } }, 'p.yaml');
  const before = tf.memory().numTensors;
  const r = await createEvaluator(m, { purpose: 'search' }).evaluate(lm, { backend: null });
  assert.equal(tf.memory().numTensors, before);
  assert.ok(r.metrics.loss! > 0);
  assert.equal(r.fitness, -r.metrics.loss!);
});

test("a word-level tokenizer.json maps words outside its vocabulary to its model's unk_token, as the Rust library does", () => {
  // the layout `tokenizers` writes for WordLevel; the unknown token is declared in the model only
  const json = (unk?: string) => ({
    version: '1.0', added_tokens: [], normalizer: { type: 'Lowercase' }, pre_tokenizer: { type: 'Whitespace' }, post_processor: null, decoder: null,
    model: { type: 'WordLevel', vocab: { '[UNK]': 0, die: 1, zahl: 2, '.': 3 }, ...(unk ? { unk_token: unk } : {}) },
  });
  const tok = tokenizerFromJson(json('[UNK]'));
  assert.deepEqual(tok.encode('Die Zahl drei.', { special: false }), [1, 2, 0, 3]);
  // without an unknown token there is nothing to stand for 'drei': a named error, not an undefined id
  assert.throws(() => tokenizerFromJson(json()).encode('Die Zahl drei.', { special: false }), (e: Error & { code?: string }) => e.code === 'E_TOKENIZER_UNKNOWN' && /declares no unknown token/.test(e.message));
});
