import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { arithmeticQuestionSplit, buildFusionZoo, learnBpeMerges } from '../src/zoo/fusion.ts';
import { tempDir } from './helpers/tmp.ts';

test('learnBpeMerges joins the most frequent adjacent pair first and stops when no pair repeats', () => {
  assert.deepEqual(learnBpeMerges('abab c abab', 2), [['a', 'b'], ['ab', 'ab']]);
  assert.deepEqual(learnBpeMerges('abc', 5), []);
});

test('the arithmetic table of the fusion zoo is split by question: 610 questions, 100 test and 100 validation apart from the training ones', () => {
  const q = arithmeticQuestionSplit();
  // operands 0..19: 20 x 20 sums and 20 x 21 / 2 differences with a >= b
  assert.equal(q.train.length + q.validation.length + q.test.length, 400 + 210);
  assert.equal(q.test.length, 100);
  assert.equal(q.validation.length, 100);
  const key = (x: { a: number; b: number; plus: boolean }) => `${x.a}${x.plus ? '+' : '-'}${x.b}`;
  const train = new Set(q.train.map(key));
  assert.equal(train.size, 410);
  for (const x of [...q.validation, ...q.test]) assert.ok(!train.has(key(x)));
  assert.equal(new Set([...q.validation, ...q.test].map(key)).size, 200);
  assert.deepEqual(arithmeticQuestionSplit(), q, 'the same split for every build');
});

test('the small fusion zoo fuses two sources of other tokenizers and architectures into targets of the pivot\'s, and records the checks', async () => {
  const dir = join(tempDir('evomerge-fusion-zoo-'), 'zoo');
  const r = await buildFusionZoo(dir, { seed: 0, small: true });
  const cfg = (p: string) => JSON.parse(readFileSync(join(dir, p, 'config.json'), 'utf8'));
  const tok = (p: string) => readFileSync(join(dir, p, 'tokenizer.json'), 'utf8');
  const pivot = cfg('pivot');
  for (const s of ['sources/german', 'sources/arithmetic']) {
    assert.notEqual(tok(s), tok('pivot'), `${s} has its own tokenizer`);
    assert.notEqual(cfg(s).hidden_size, pivot.hidden_size, `${s} has another width`);
  }
  assert.match(tok('sources/german'), /"merges":\["/, 'the German source tokenizes into subwords');
  for (const t of ['german', 'arithmetic']) {
    assert.equal(tok(t), tok('pivot'), `${t} is a fused target with the pivot's tokenizer`);
    assert.equal(cfg(t).hidden_size, pivot.hidden_size);
    assert.equal(JSON.parse(readFileSync(join(dir, t, 'fuse.json'), 'utf8')).sources[0], join(dir, 'sources', t));
  }
  assert.deepEqual(r.manifest.models.map((m) => m.name), ['german', 'arithmetic']);
  assert.equal(r.manifest.base, 'pivot');
  assert.equal(r.manifest.checks.length, 4);
  // the German fused target is trained on German text: it beats the pivot on held-out German even at this size
  assert.ok(r.manifest.checks.filter((c) => c.task === 'german').every((c) => c.beatsBase), JSON.stringify(r.manifest.checks));
  // held out by question: no validation or test question is in the text the source and its fusion trained on
  const corpus = readFileSync(join(dir, 'sources', 'data', 'arithmetic.txt'), 'utf8');
  for (const split of ['validation', 'test']) {
    const items = readFileSync(join(dir, 'evaluators', 'data', `arithmetic.${split}.jsonl`), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { question: string });
    assert.equal(items.length, 20);
    for (const it of items) assert.ok(!corpus.includes(it.question), `${split} question '${it.question}' is in the training text`);
  }
  const again = await buildFusionZoo(dir, { seed: 0, small: true });
  assert.equal(again.cached, true);
});
