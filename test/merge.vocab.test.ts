/**
 * Output vocabularies (src/merge/vocab.ts) on tiny folders, checked by hand: rows laid out by
 * token when the vocabularies order their tokens differently, a model without a tokenizer,
 * chat templates, stripping a padded base, and the written files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { openCheckpoint } from '../src/checkpoint/index.ts';
import { makeTinyLlama } from '../src/zoo/index.ts';
import { parseRecipe, recipeFromMergekit, recipeHash } from '../src/recipe/index.ts';
import { mergeToDisk } from '../src/report/merge-folder.ts';
import { writeTestTokenizer } from './helpers/tokenizers.ts';
import { tempDir } from './helpers/tmp.ts';
import { readTensor } from './helpers/checkpoint.ts';

const root = tempDir('evomerge-vocab-');
const base = makeTinyLlama(join(root, 'base'), { seed: 1, layers: 2, hidden: 8, heads: 2, vocab: 64 });
writeTestTokenizer(base, 64, [], { chat_template: '{% for m in messages %}{{ m.content }}{% endfor %}' });
// the same tokens, _tok_3 ... _tok_63 in reverse id order
const shuffled = makeTinyLlama(join(root, 'shuffled'), { seed: 2, layers: 2, hidden: 8, heads: 2, vocab: 64 });
writeTestTokenizer(shuffled, 64, [], { chat_template: '{% for m in messages %}{{ m.content }}{% endfor %}' });
{
  const f = join(shuffled, 'tokenizer.json');
  const j = JSON.parse(readFileSync(f, 'utf8'));
  for (let i = 3; i < 64; i++) j.model.vocab[`_tok_${i}`] = 66 - i;
  writeFileSync(f, JSON.stringify(j));
}
const bare = makeTinyLlama(join(root, 'bare'), { seed: 3, layers: 2, hidden: 8, heads: 2, vocab: 64 });
const cols = 8;

const read = readTensor;

const linear = (models: string[], extra: Record<string, unknown> = {}) => parseRecipe({ method: 'linear', base, sources: models.map((model) => ({ model, parameters: { weight: 1 } })), ...extra });

test('with a tokenizer setting each model\'s rows are laid out by token; without one rows merge by index, as mergekit', () => {
  const byToken = join(root, 'by-token');
  mergeToDisk(linear([base, shuffled], { tokenizer_source: 'base' }), byToken);
  const byIndex = join(root, 'by-index');
  mergeToDisk(linear([base, shuffled]), byIndex);
  for (const name of ['model.embed_tokens.weight', 'lm_head.weight']) {
    const a = read(base, name);
    const b = read(shuffled, name);
    const t = read(byToken, name);
    const ix = read(byIndex, name);
    for (let r = 0; r < 64; r++) {
      const rs = r < 3 ? r : 66 - r; // the row of the same token in the shuffled model
      for (let c = 0; c < cols; c++) {
        assert.ok(Math.abs(t[r * cols + c]! - (a[r * cols + c]! + b[rs * cols + c]!) / 2) < 1e-6, `${name} row ${r} by token`);
        assert.ok(Math.abs(ix[r * cols + c]! - (a[r * cols + c]! + b[r * cols + c]!) / 2) < 1e-6, `${name} row ${r} by index`);
      }
    }
  }
  // an unchanged vocabulary: the base's tokenizer files are copied as they are
  assert.equal(readFileSync(join(byToken, 'tokenizer.json'), 'utf8'), readFileSync(join(base, 'tokenizer.json'), 'utf8'));
});

test('a model without tokenizer.json is taken to have the base\'s vocabulary, with a warning', () => {
  const r = mergeToDisk(linear([base, bare], { tokenizer_source: 'union' }), join(root, 'bare-union'));
  assert.ok(r.warnings?.some((w) => w.includes('bare') && w.includes("the base's")), String(r.warnings));
  const a = read(base, 'model.embed_tokens.weight');
  const b = read(bare, 'model.embed_tokens.weight');
  const o = read(join(root, 'bare-union'), 'model.embed_tokens.weight');
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(o[i]! - (a[i]! + b[i]!) / 2) < 1e-6);
  assert.throws(() => mergeToDisk(parseRecipe({ method: 'linear', base: bare, sources: [{ model: bare, parameters: { weight: 1 } }, { model: base, parameters: { weight: 1 } }], tokenizer_source: 'base' }), join(root, 'no-base-tok')), { code: 'E_TOKENIZER_MISSING' });
});

test('chat_template: a built-in name, auto (the template most models share), a template of its own; nonsense is refused', () => {
  const out = join(root, 'chatml');
  mergeToDisk(linear([base, shuffled], { chat_template: 'chatml' }), out);
  const cfg = JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8')) as { chat_template: string; bos_token: string };
  assert.match(cfg.chat_template, /<\|im_start\|>/);
  assert.equal(cfg.bos_token, '<s>', 'the rest of the donor\'s tokenizer config is kept');
  const auto = join(root, 'auto');
  mergeToDisk(linear([base, shuffled, bare], { chat_template: 'auto', tokenizer_source: 'base' }), auto);
  assert.equal(JSON.parse(readFileSync(join(auto, 'tokenizer_config.json'), 'utf8')).chat_template, '{% for m in messages %}{{ m.content }}{% endfor %}');
  const own = '{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}';
  const mine = join(root, 'own');
  mergeToDisk(linear([base, shuffled], { chat_template: own }), mine);
  assert.equal(JSON.parse(readFileSync(join(mine, 'tokenizer_config.json'), 'utf8')).chat_template, own);
  assert.throws(() => mergeToDisk(linear([base, shuffled], { chat_template: 'no-such-format' }), join(root, 'bad-template')), { code: 'E_CHAT_TEMPLATE' });
});

test('a padded base\'s unused tokens are stripped (BPE), and refused for other tokenizer models', () => {
  const padded = makeTinyLlama(join(root, 'padded'), { seed: 4, layers: 2, hidden: 8, heads: 2, vocab: 64 });
  writeTestTokenizer(padded, 64, ['<UNUSED_0>', '<UNUSED_1>']);
  const out = join(root, 'stripped');
  mergeToDisk(parseRecipe({ method: 'linear', base: padded, sources: [{ model: padded, parameters: { weight: 1 } }, { model: base, parameters: { weight: 1 } }], tokenizer_source: 'base' }), out);
  const tok = JSON.parse(readFileSync(join(out, 'tokenizer.json'), 'utf8')) as { added_tokens: Array<{ content: string }> };
  assert.deepEqual(tok.added_tokens.map((t) => t.content), ['<unk>', '<s>', '</s>']);
  assert.equal(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).vocab_size, 64);
  const f = join(padded, 'tokenizer.json');
  const j = JSON.parse(readFileSync(f, 'utf8'));
  j.model.type = 'WordLevel';
  writeFileSync(f, JSON.stringify(j));
  rmSync(join(root, 'stripped-wl'), { recursive: true, force: true });
  assert.throws(() => mergeToDisk(parseRecipe({ method: 'linear', base: padded, sources: [{ model: padded, parameters: { weight: 1 } }], tokenizer_source: 'base' }), join(root, 'stripped-wl')), { code: 'E_TOKENIZER_STRIP' });
});

test('the written mergekit_config.yml keeps the tokenizer block and reads back to the same recipe', () => {
  const recipe = linear([base, shuffled], { tokenizer: { source: 'union', tokens: { '<|new|>': { source: { kind: 'zero' } } }, pad_to_multiple_of: 8 } });
  const out = join(root, 'exported');
  mergeToDisk(recipe, out);
  const yml = parse(readFileSync(join(out, 'mergekit_config.yml'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(yml.tokenizer, { source: 'union', tokens: { '<|new|>': { source: { kind: 'zero' }, force: false } }, pad_to_multiple_of: 8 });
  assert.equal(recipeHash(recipeFromMergekit(yml)), recipeHash(recipe));
  // 64 tokens + 1 new: 65, padded to 72 rows; the new token's row is zeros
  const e = read(out, 'model.embed_tokens.weight');
  assert.equal(e.length, 72 * cols);
  assert.ok(e.subarray(64 * cols, 65 * cols).every((v) => v === 0));
});
