import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { parseRecipe, recipeFromMergekit, recipeHash, recipeToMergekit, recipeToMergekitYaml } from '../src/recipe/index.ts';

const TIES_YAML = `
models:
  - model: ./math
    parameters:
      density: [1, 0.7, 0.1]
      weight: 1.0
  - model: ./code
    parameters:
      density: 0.5
      weight: [0, 0.3, 0.7, 1]
  - model: ./base
merge_method: ties
base_model: ./base
parameters:
  normalize: true
  int8_mask: true
dtype: float16
`;

test('a mergekit TIES config imports as is and exports to an equivalent config', () => {
  const r = recipeFromMergekit(parse(TIES_YAML));
  assert.equal(r.method, 'ties');
  assert.equal(r.base, './base');
  assert.equal(r.sources!.length, 3);
  assert.equal(r.dtype, 'float16');
  const back = recipeToMergekit(r);
  assert.deepEqual(back, { ...parse(TIES_YAML) });
  assert.deepEqual(recipeFromMergekit(parse(recipeToMergekitYaml(r))), r);
});

test('slices with layer ranges import for passthrough frankenmerges', () => {
  const r = recipeFromMergekit({
    slices: [{ sources: [{ model: 'a', layer_range: [0, 2] }] }, { sources: [{ model: 'b', layer_range: [1, 3] }] }],
    merge_method: 'passthrough',
    dtype: 'bfloat16',
  });
  assert.equal(r.slices!.length, 2);
  assert.deepEqual(r.slices![1]!.sources[0]!.layer_range, [1, 3]);
});

test('unknown keys are refused by name', () => {
  assert.throws(() => recipeFromMergekit({ merge_method: 'linear', models: [{ model: 'a', parameters: { weight: 1 } }], lora_rank: 3, foo: 1 }), { code: 'E_RECIPE_UNKNOWN_KEY', message: /'lora_rank', 'foo'/ });
  assert.throws(() => recipeFromMergekit({ merge_method: 'linear', models: [{ model: 'a', weights: 1 }] }), { code: 'E_RECIPE_INVALID', message: /weights/ });
});

test('valid mergekit features evomerge lacks are refused as not supported yet', () => {
  const base = { merge_method: 'linear', models: [{ model: 'a', parameters: { weight: 1 } }] };
  assert.throws(() => recipeFromMergekit({ ...base, modules: { text: {} } }), { code: 'E_MERGEKIT_NOT_SUPPORTED' });
  assert.throws(() => recipeFromMergekit({ ...base, models: [{ model: 'a+lora', parameters: { weight: 1 } }] }), { code: 'E_MERGEKIT_NOT_SUPPORTED' });
});

test('tokenizer_source union, the tokenizer block and chat_template import and export as mergekit writes them', () => {
  const base = { merge_method: 'linear', models: [{ model: 'a', parameters: { weight: 1 } }] };
  const u = recipeFromMergekit({ ...base, tokenizer_source: 'union', chat_template: 'chatml' });
  assert.equal(u.tokenizer_source, 'union');
  assert.equal(u.chat_template, 'chatml');
  const tok = { source: 'base', tokens: { '<|im_start|>': { source: 'a', force: true }, z: { source: { kind: 'zero' } } }, pad_to_multiple_of: 16 };
  const t = recipeFromMergekit({ ...base, tokenizer: tok });
  assert.deepEqual(recipeToMergekit(t).tokenizer, { ...tok, tokens: { ...tok.tokens, z: { source: { kind: 'zero' }, force: false } } });
  assert.deepEqual(recipeFromMergekit(parse(recipeToMergekitYaml(t))), t);
  assert.throws(() => recipeFromMergekit({ ...base, tokenizer_source: 'base', tokenizer: tok }), { code: 'E_RECIPE_INVALID', message: /not both/ });
  assert.throws(() => recipeFromMergekit({ ...base, tokenizer: { tokens: { x: { force: true } } } }), { code: 'E_RECIPE_INVALID', message: /source/ });
});

test('parameters the method does not read are dropped with one warning line; a name no method has is refused with the closest', () => {
  assert.throws(() => parseRecipe({ method: 'soup', sources: [{ model: 'a' }] }), { code: 'E_UNKNOWN_METHOD' });
  assert.throws(() => parseRecipe({ method: 'ties', base: 'b', sources: [{ model: 'a', parameters: { weight: 1, densty: 0.5 } }] }), { code: 'E_PARAM_UNKNOWN', message: /'densty' \(did you mean 'density'\?\)/ });
  assert.throws(() => parseRecipe({ method: 'linear', sources: [{ model: 'a', parameters: { wieght: 1 } }] }), { code: 'E_PARAM_UNKNOWN', message: /did you mean 'weight'/ });
  const warnings: string[] = [];
  const r = recipeFromMergekit({ merge_method: 'slerp', base_model: 'a', models: [{ model: 'a', parameters: { weight: 0.6 } }, { model: 'b', parameters: { weight: 0.4, t: 0.3 } }], parameters: { t: 0.35 } }, 'x.yml', warnings);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /^x\.yml: slerp does not read 'weight' in sources\[0\] \(a\), sources\[1\] \(b\).*'t' \(a global parameter, set per model\)/);
  assert.equal(r.sources![0]!.parameters, undefined);
  assert.equal(r.sources![1]!.parameters, undefined);
  assert.deepEqual(r.parameters, { t: 0.35 });
  const none: string[] = [];
  parseRecipe({ method: 'linear', sources: [{ model: 'a', parameters: { weight: 1 } }] }, 'r', none);
  assert.deepEqual(none, []);
});

test('export refuses methods and options mergekit lacks', () => {
  assert.throws(() => recipeToMergekit(parseRecipe({ method: 'varm', base: 'b', sources: [{ model: 'a' }] })), { code: 'E_EXPORT_MERGEKIT' });
  assert.throws(() => recipeToMergekit(parseRecipe({ method: 'dare_ties', base: 'b', sources: [{ model: 'a', parameters: { weight: 1 } }], parameters: { rescale_mode: 'inverse' } })), { code: 'E_EXPORT_MERGEKIT' });
});

test('the hash ignores key order and absent fields but not values', () => {
  const a = parseRecipe({ method: 'linear', sources: [{ model: 'x', parameters: { weight: 1 } }], seed: 3 });
  const b = parseRecipe({ seed: 3, sources: [{ parameters: { weight: 1 }, model: 'x' }], method: 'linear', base: null });
  assert.equal(recipeHash(a), recipeHash(b));
  assert.match(recipeHash(a), /^[0-9a-f]{64}$/);
  assert.notEqual(recipeHash(a), recipeHash(parseRecipe({ method: 'linear', sources: [{ model: 'x', parameters: { weight: 1 } }], seed: 4 })));
});
