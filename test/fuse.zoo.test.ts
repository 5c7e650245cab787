import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildFusionZoo, learnBpeMerges } from '../src/zoo/fusion.ts';
import { tempDir } from './helpers/tmp.ts';

test('learnBpeMerges joins the most frequent adjacent pair first and stops when no pair repeats', () => {
  assert.deepEqual(learnBpeMerges('abab c abab', 2), [['a', 'b'], ['ab', 'ab']]);
  assert.deepEqual(learnBpeMerges('abc', 5), []);
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
  const again = await buildFusionZoo(dir, { seed: 0, small: true });
  assert.equal(again.cached, true);
});
