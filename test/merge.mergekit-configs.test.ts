/**
 * mergekit's own configs, as a mergekit user would run them: those of its `examples/` folder,
 * those its tests build (tests/test_basic_merges.py, tests/test_tokenizer.py) and the example of
 * docs/multimerge.md, rewritten here from their fields with each model name replaced by a local
 * seeded Llama folder (the same name, the same folder). Each must merge as written, and in
 * float32 match the numpy reference (test/helpers/mergekit_ref.py, written from a reading of
 * mergekit's code) to float32 rounding; random methods (DARE, DELLA) are only merged.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { openCheckpoint } from '../src/checkpoint/index.ts';
import { makeTinyLlama } from '../src/zoo/index.ts';
import { loadMergeStages } from '../src/recipe/index.ts';
import { mergeStages, mergeToDisk } from '../src/report/index.ts';
import { mergekitReference, requireNumpy, type ReferenceJob } from './helpers/numpy.ts';
import { writeTestTokenizer } from './helpers/tokenizers.ts';
import { tempDir } from './helpers/tmp.ts';

const root = tempDir('evomerge-mkcfg-');
const M: Record<string, string> = {};

interface Config {
  id: string;
  from: 'examples' | 'tests/test_basic_merges.py' | 'tests/test_tokenizer.py' | 'docs/multimerge.md';
  doc: unknown | unknown[];
}

/** A 40-layer stand-in for the examples' 13B and 7B models (their layer ranges go to 40). */
function bigStandIn(name: string, seed: number): string {
  return (M[name] ??= makeTinyLlama(join(root, name.replace(/[^A-Za-z0-9_.-]/g, '_')), { seed, layers: 40, hidden: 16, heads: 2, intermediate: 32, vocab: 32 }));
}

let CONFIGS: Config[] = [];

before(() => {
  requireNumpy();
  // tests/common.py make_picollama: hidden 32, intermediate 48, 4 heads, 2 layers, vocab 64
  const pico = (name: string, seed: number, vocab = 64) => (M[name] = makeTinyLlama(join(root, name), { seed, layers: 2, hidden: 32, heads: 4, intermediate: 48, vocab }));
  pico('model_a', 11);
  pico('model_b', 12);
  pico('model_c', 13);
  // make_gpt2size stands in as a 12-layer Llama (GPT-2 small's layer count)
  M.gpt2 = makeTinyLlama(join(root, 'gpt2'), { seed: 14, layers: 12, hidden: 16, heads: 4, vocab: 64 });
  // tests/test_tokenizer.py: base (64), chatml (64 + 2 added tokens), padded (64 rows, 4 unused added tokens)
  writeTestTokenizer(pico('model_base', 21, 64), 64);
  writeTestTokenizer(pico('model_chatml', 22, 66), 64, ['<|im_start|>', '<|im_end|>']);
  writeTestTokenizer(pico('model_padded', 23, 64), 64, ['<UNUSED_0>', '<UNUSED_1>', '<UNUSED_2>', '<UNUSED_3>']);
  const names = ['psmathur/orca_mini_v3_13b', 'garage-bAInd/Platypus2-13B', 'WizardLM/WizardLM-13B-V1.2', 'WizardLM/WizardMath-13B-V1.0', 'TheBloke/Llama-2-13B-fp16',
    'mistralai/Mistral-7B-Instruct-v0.2', 'BioMistral/BioMistral-7B', 'mistralai/Mistral-7B-v0.1', 'NousResearch/Hermes-2-Pro-Mistral-7B', 'teknium/OpenHermes-2.5-Mistral-7B', 'ex_model_a', 'ex_model_b'];
  names.forEach((n, i) => bigStandIn(n, 100 + i));
  const P = (n: string) => M[n]!;
  const two = (a: string, b: string, method: string, base?: string, params?: Record<string, unknown>) => ({
    merge_method: method, ...(base ? { base_model: P(base) } : {}),
    models: [{ model: P(a), parameters: { weight: 0.6 } }, { model: P(b), parameters: { weight: 0.4 } }],
    dtype: 'bfloat16', ...(params ? { parameters: params } : {}),
  });
  const tok = (models: string[], o: { method?: string; source?: string; t?: number; tokenizer?: unknown } = {}) => ({
    merge_method: o.method ?? 'linear', base_model: P('model_base'),
    models: models.map((m) => ({ model: P(m), parameters: { weight: 1.0 } })),
    dtype: 'float32', ...(o.source ? { tokenizer_source: o.source === 'base' || o.source === 'union' ? o.source : P(o.source) } : {}),
    ...(o.t !== undefined ? { parameters: { t: o.t } } : { parameters: {} }), ...(o.tokenizer ? { tokenizer: o.tokenizer } : {}),
  });
  const nuslerps: Config[] = [];
  for (const base of [undefined, 'model_c']) for (const row of [false, true]) for (const flat of [false, true]) {
    nuslerps.push({ id: `nuslerp-${base ? 'base' : 'nobase'}-row${row}-flat${flat}`, from: 'tests/test_basic_merges.py', doc: two('model_a', 'model_b', 'nuslerp', base, { nuslerp_row_wise: row, nuslerp_flatten: flat }) });
  }
  const zeroSum = two('model_a', 'model_b', 'nuslerp', 'model_c', { nuslerp_row_wise: false, nuslerp_flatten: false }) as { models: Array<{ parameters: { weight: number } }> };
  zeroSum.models[0]!.parameters.weight = -0.5;
  zeroSum.models[1]!.parameters.weight = 0.5;
  const tiesModels = [
    { model: P('psmathur/orca_mini_v3_13b'), parameters: { density: [1, 0.7, 0.1], weight: 1.0 } },
    { model: P('garage-bAInd/Platypus2-13B'), parameters: { density: 0.5, weight: [0, 0.3, 0.7, 1] } },
    { model: P('WizardLM/WizardMath-13B-V1.0'), parameters: { density: 0.33, weight: [{ filter: 'mlp', value: 0.5 }, { value: 0 }] } },
  ];
  const slerpT = { t: [{ filter: 'self_attn', value: [0, 0.5, 0.3, 0.7, 1] }, { filter: 'mlp', value: [1, 0.5, 0.7, 0.3, 0] }, { value: 0.5 }] };
  CONFIGS = [
    // examples/
    { id: 'ex-arcee_fusion', from: 'examples', doc: { models: [{ model: P('ex_model_a') }, { model: P('ex_model_b') }], merge_method: 'arcee_fusion', base_model: P('ex_model_a'), dtype: 'bfloat16' } },
    { id: 'ex-bio-merge', from: 'examples', doc: { models: [{ model: P('mistralai/Mistral-7B-Instruct-v0.2'), parameters: { density: 0.5, weight: 0.5 } }, { model: P('BioMistral/BioMistral-7B'), parameters: { density: 0.5, weight: 0.5 } }], merge_method: 'ties', base_model: P('mistralai/Mistral-7B-v0.1'), parameters: { normalize: false, int8_mask: true }, dtype: 'float16' } },
    { id: 'ex-gradient-slerp', from: 'examples', doc: { slices: [{ sources: [{ model: P('psmathur/orca_mini_v3_13b'), layer_range: [0, 40] }, { model: P('garage-bAInd/Platypus2-13B'), layer_range: [0, 40] }] }], merge_method: 'slerp', base_model: P('psmathur/orca_mini_v3_13b'), parameters: slerpT, dtype: 'float16' } },
    { id: 'ex-linear', from: 'examples', doc: { models: [{ model: P('psmathur/orca_mini_v3_13b'), parameters: { weight: 1.0 } }, { model: P('WizardLM/WizardLM-13B-V1.2'), parameters: { weight: 0.3 } }, { model: P('garage-bAInd/Platypus2-13B'), parameters: { weight: 0.5 } }], merge_method: 'linear', dtype: 'float16' } },
    { id: 'ex-orcamini-platy-44layer', from: 'examples', doc: { slices: [{ sources: [{ model: P('psmathur/orca_mini_v3_13b'), layer_range: [0, 24] }] }, { sources: [{ model: P('garage-bAInd/Platypus2-13B'), layer_range: [20, 40] }] }], merge_method: 'passthrough', dtype: 'float16' } },
    { id: 'ex-ties', from: 'examples', doc: { models: tiesModels, merge_method: 'ties', base_model: P('TheBloke/Llama-2-13B-fp16'), parameters: { normalize: true, int8_mask: true }, dtype: 'float16' } },
    {
      id: 'ex-mega', from: 'examples', doc: [
        { slices: [{ sources: [{ model: P('psmathur/orca_mini_v3_13b'), layer_range: [0, 40] }, { model: P('garage-bAInd/Platypus2-13B'), layer_range: [0, 40] }] }], merge_method: 'slerp', base_model: P('psmathur/orca_mini_v3_13b'), parameters: slerpT, dtype: 'float16', name: 'gradient-slerp' },
        { models: [{ model: 'gradient-slerp', parameters: { density: [1, 0.7, 0.1], weight: 1.0 } }, { model: P('WizardLM/WizardMath-13B-V1.0'), parameters: { density: 0.33, weight: [{ filter: 'mlp', value: 0.5 }, { value: 0 }] } }], merge_method: 'ties', base_model: P('TheBloke/Llama-2-13B-fp16'), parameters: { normalize: true, int8_mask: true }, dtype: 'float16', name: 'gradient-slerp-ties' },
      ],
    },
    // docs/multimerge.md
    {
      id: 'docs-multimerge', from: 'docs/multimerge.md', doc: [
        { name: 'first-merge', merge_method: 'linear', models: [{ model: P('mistralai/Mistral-7B-v0.1') }, { model: P('BioMistral/BioMistral-7B') }], parameters: { weight: 0.5 } },
        { name: 'second-merge', merge_method: 'slerp', base_model: 'first-merge', models: [{ model: P('NousResearch/Hermes-2-Pro-Mistral-7B') }], parameters: { t: 0.5 } },
        { merge_method: 'dare_ties', base_model: P('mistralai/Mistral-7B-v0.1'), models: [{ model: 'second-merge', parameters: { density: 0.6, weight: 0.5 } }, { model: P('teknium/OpenHermes-2.5-Mistral-7B'), parameters: { density: 0.8, weight: 0.5 } }] },
      ],
    },
    // tests/test_basic_merges.py
    { id: 'gpt2_copy', from: 'tests/test_basic_merges.py', doc: { merge_method: 'passthrough', models: [{ model: P('gpt2') }], dtype: 'bfloat16' } },
    { id: 'gpt2_stack', from: 'tests/test_basic_merges.py', doc: { merge_method: 'passthrough', slices: [{ sources: [{ model: P('gpt2'), layer_range: [0, 12] }] }, { sources: [{ model: P('gpt2'), layer_range: [0, 12] }] }], dtype: 'bfloat16' } },
    { id: 'passthrough_scale', from: 'tests/test_basic_merges.py', doc: { merge_method: 'passthrough', models: [{ model: P('model_a'), parameters: { scale: [{ filter: 'o_proj', value: 0 }, { value: 1 }] } }] } },
    { id: 'linear', from: 'tests/test_basic_merges.py', doc: two('model_a', 'model_b', 'linear') },
    { id: 'slerp', from: 'tests/test_basic_merges.py', doc: { ...two('model_a', 'model_b', 'slerp', 'model_a'), parameters: { t: 0.35 } } },
    ...nuslerps,
    { id: 'nuslerp-zero-sum', from: 'tests/test_basic_merges.py', doc: zeroSum },
    { id: 'task_arithmetic', from: 'tests/test_basic_merges.py', doc: two('model_a', 'model_b', 'task_arithmetic', 'model_c') },
    { id: 'breadcrumbs', from: 'tests/test_basic_merges.py', doc: two('model_a', 'model_b', 'breadcrumbs', 'model_c') },
    { id: 'ties', from: 'tests/test_basic_merges.py', doc: two('model_a', 'model_b', 'ties', 'model_c', { density: 0.3 }) },
    { id: 'sce', from: 'tests/test_basic_merges.py', doc: two('model_a', 'model_b', 'sce', 'model_c', { select_topk: 0.5 }) },
    { id: 'ram', from: 'tests/test_basic_merges.py', doc: two('model_a', 'model_b', 'ram', 'model_c') },
    { id: 'ramplus_tl', from: 'tests/test_basic_merges.py', doc: two('model_a', 'model_b', 'ramplus_tl', 'model_c') },
    { id: 'multislerp', from: 'tests/test_basic_merges.py', doc: two('model_a', 'model_b', 'multislerp', 'model_c') },
    { id: 'dare_ties', from: 'tests/test_basic_merges.py', doc: two('model_a', 'model_b', 'dare_ties', 'model_c', { density: 0.66 }) },
    { id: 'model_stock', from: 'tests/test_basic_merges.py', doc: two('model_b', 'model_c', 'model_stock', 'model_a') },
    { id: 'model_stock_filterwise', from: 'tests/test_basic_merges.py', doc: two('model_b', 'model_c', 'model_stock', 'model_a', { filter_wise: true }) },
    { id: 'arcee_fusion', from: 'tests/test_basic_merges.py', doc: two('model_a', 'model_b', 'arcee_fusion', 'model_a') },
    { id: 'nearswap', from: 'tests/test_basic_merges.py', doc: two('model_a', 'model_b', 'nearswap', 'model_a', { t: 0.0001 }) },
    { id: 'della', from: 'tests/test_basic_merges.py', doc: two('model_a', 'model_b', 'della', 'model_c', { density: 0.66, epsilon: 0.05, lambda: 0.5 }) },
    { id: 'karcher', from: 'tests/test_basic_merges.py', doc: two('model_a', 'model_b', 'karcher', 'model_c', { max_iter: 5, tol: 1e-5 }) },
    // tests/test_tokenizer.py
    { id: 'tok-legacy', from: 'tests/test_tokenizer.py', doc: tok(['model_base', 'model_padded', 'model_chatml']) },
    { id: 'tok-source-base', from: 'tests/test_tokenizer.py', doc: tok(['model_base', 'model_padded', 'model_chatml'], { source: 'base' }) },
    { id: 'tok-source-union', from: 'tests/test_tokenizer.py', doc: tok(['model_base', 'model_padded', 'model_chatml'], { source: 'union' }) },
    { id: 'tok-source-model', from: 'tests/test_tokenizer.py', doc: tok(['model_base', 'model_padded', 'model_chatml'], { source: 'model_chatml' }) },
    { id: 'tok-slerp-union', from: 'tests/test_tokenizer.py', doc: tok(['model_base', 'model_chatml'], { method: 'slerp', source: 'union', t: 0.5 }) },
    { id: 'tok-force-token', from: 'tests/test_tokenizer.py', doc: tok(['model_base', 'model_chatml'], { tokenizer: { source: 'union', tokens: { _tok_10: { source: P('model_chatml'), force: true }, _tok_11: { source: P('model_base'), force: true } } } }) },
    { id: 'tok-model-token-id', from: 'tests/test_tokenizer.py', doc: tok(['model_base', 'model_chatml'], { tokenizer: { source: 'base', tokens: { _tok_20: { source: { kind: 'model_token', model: P('model_chatml'), token_id: 64 }, force: true }, _tok_21: { source: { kind: 'model_token', model: P('model_base'), token: '<s>' }, force: true } } } }) },
    { id: 'tok-pad-to-multiple', from: 'tests/test_tokenizer.py', doc: { ...tok(['model_chatml'], { tokenizer: { source: 'base', pad_to_multiple_of: 16 } }), base_model: P('model_chatml') } },
  ];
});

interface Merged {
  config: Config;
  outs: Array<{ name: string | null; dir: string; f32: string; recipe: unknown }>;
  warnings: string[];
}
const merged = new Map<string, Merged>();

function writeConfig(c: Config): string {
  const file = join(root, `${c.id}.yml`);
  const docs = Array.isArray(c.doc) ? c.doc : [c.doc];
  writeFileSync(file, docs.map((d) => stringify(d)).join('---\n'));
  return file;
}

test('every config of mergekit\'s examples, tests and docs merges as written', () => {
  const failures: string[] = [];
  for (const c of CONFIGS) {
    const warnings: string[] = [];
    try {
      const stages = loadMergeStages(writeConfig(c), warnings);
      if (stages.length === 1 && stages[0]!.name === null) {
        const dir = join(root, 'out', c.id);
        const r = mergeToDisk(stages[0]!.recipe, dir);
        warnings.push(...(r.warnings ?? []));
        const f32 = join(root, 'out32', c.id);
        mergeToDisk(stages[0]!.recipe, f32, { outDtype: 'F32' });
        merged.set(c.id, { config: c, outs: [{ name: null, dir, f32, recipe: c.doc }], warnings });
      } else {
        const results = mergeStages(stages, join(root, 'out', c.id));
        const f32s = mergeStages(stages, join(root, 'out32', c.id), { outDtype: 'F32' });
        const docs = c.doc as Array<Record<string, unknown>>;
        merged.set(c.id, {
          config: c,
          warnings,
          outs: results.map((r, i) => {
            // the stage's config with earlier stages' names as their float32 folders
            const doc = structuredClone(docs.find((d) => (d.name ?? null) === r.name)!);
            delete doc.name;
            const text = JSON.stringify(doc).replace(/"model":"([^"]+)"|"base_model":"([^"]+)"/g, (m, a: string | undefined, b: string | undefined) => {
              const ref = a ?? b!;
              const stage = f32s.find((s) => s.name === ref);
              return stage ? m.replace(ref, stage.dir) : m;
            });
            return { name: r.name, dir: r.dir, f32: f32s[i]!.dir, recipe: JSON.parse(text) };
          }),
        });
      }
    } catch (err) {
      failures.push(`${c.id} (${c.from}): ${(err as Error).message}`);
    }
  }
  assert.deepEqual(failures, [], failures.join('\n'));
  assert.equal(merged.size, CONFIGS.length);
  // the written dtype is the config's
  const ties = openCheckpoint(merged.get('ex-ties')!.outs[0]!.dir);
  assert.equal(ties.info('model.layers.3.mlp.up_proj.weight').dtype, 'F16');
  ties.close();
});

test('in float32 every merge matches the numpy reference of mergekit\'s code to float32 rounding', (t) => {
  const jobs: ReferenceJob[] = [];
  for (const m of merged.values()) for (const o of m.outs) jobs.push({ id: `${m.config.id}${o.name ? `/${o.name}` : ''}`, config: o.recipe, out: o.f32 });
  assert.ok(jobs.length > 0, 'the merges ran');
  const results = mergekitReference(jobs);
  const rows: string[] = [];
  let worst = 0;
  for (const r of results) {
    if (r.skipped) {
      rows.push(`${r.id}: merged; no reference (${r.skipped})`);
      continue;
    }
    assert.deepEqual([r.missing, r.extra, r.mismatched], [[], [], []], `${r.id}: tensor names and shapes agree`);
    assert.ok(r.max < 2e-6, `${r.id}: max |evomerge - reference| = ${r.max} at ${r.worst}`);
    worst = Math.max(worst, r.max);
    rows.push(`${r.id}: ${r.tensors} tensors, max |diff| ${r.max.toExponential(2)} (${r.worst})`);
  }
  t.diagnostic(`max |evomerge - reference| over ${results.filter((r) => !r.skipped).length} compared merges: ${worst.toExponential(2)}`);
  for (const row of rows) t.diagnostic(row);
});

test('parameters the methods do not read are dropped with one warning per config, as the tests\' per-model weight', () => {
  for (const id of ['slerp', 'karcher', 'model_stock', 'model_stock_filterwise', 'nearswap', 'sce', 'arcee_fusion', 'ram', 'ramplus_tl']) {
    const w = merged.get(id)!.warnings.filter((x) => x.includes('does not read'));
    assert.equal(w.length, 1, `${id}: ${w.join(' | ')}`);
    assert.match(w[0]!, /'weight'/);
  }
  assert.deepEqual(merged.get('linear')!.warnings, []);
});

test('the tokenizer configs give the vocabularies mergekit\'s tokenizer tests expect', () => {
  const vocabOf = (dir: string) => {
    const j = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> }; added_tokens: Array<{ id: number; content: string }> };
    const v = new Map(Object.entries(j.model.vocab));
    for (const a of j.added_tokens) v.set(a.content, a.id);
    return { v, added: j.added_tokens.length };
  };
  const dir = (id: string) => merged.get(id)!.outs[0]!.dir;
  const rows = (id: string) => {
    const c = openCheckpoint(dir(id));
    try {
      return [c.info('model.embed_tokens.weight').shape[0], c.info('lm_head.weight').shape[0], (c.config as { vocab_size: number }).vocab_size];
    } finally {
      c.close();
    }
  };
  // legacy and base: the base's 64 tokens, 3 of them added
  for (const id of ['tok-legacy', 'tok-source-base']) {
    const { v, added } = vocabOf(dir(id));
    assert.equal(v.size, 64, id);
    assert.equal(added, 3, id);
    assert.deepEqual(rows(id), [64, 64, 64], id);
  }
  // union: every used token, the padded model's unused ones left out
  const u = vocabOf(dir('tok-source-union'));
  assert.equal(u.v.size, 66);
  assert.equal(u.added, 5);
  assert.equal(u.v.get('<|im_start|>'), 64);
  assert.equal(u.v.get('<|im_end|>'), 65);
  for (let i = 0; i < 4; i++) assert.ok(!u.v.has(`<UNUSED_${i}>`));
  assert.deepEqual(rows('tok-source-union'), [66, 66, 66]);
  for (const id of ['tok-source-model', 'tok-slerp-union', 'tok-force-token']) {
    const { v } = vocabOf(dir(id));
    assert.equal(v.size, 66, id);
    assert.ok(v.has('<|im_start|>') && v.has('<|im_end|>'), id);
  }
  assert.equal(vocabOf(dir('tok-model-token-id')).v.size, 64);
  // pad_to_multiple_of 16: 66 tokens, 80 rows, config.json vocab_size 80
  assert.equal(vocabOf(dir('tok-pad-to-multiple')).v.size, 66);
  assert.deepEqual(rows('tok-pad-to-multiple'), [80, 80, 80]);
  // the tokenizer config lists the added tokens as tokenizer.json does
  const cfg = JSON.parse(readFileSync(join(dir('tok-source-union'), 'tokenizer_config.json'), 'utf8')) as { added_tokens_decoder: Record<string, { content: string }> };
  assert.equal(cfg.added_tokens_decoder['65']!.content, '<|im_end|>');
});

test('union rows of added tokens come from the one model that has them; forced and model_token rows from their source', () => {
  const emb = (dir: string) => {
    const c = openCheckpoint(dir);
    try {
      return { e: c.readFloat32('model.embed_tokens.weight'), cols: c.info('model.embed_tokens.weight').shape[1]! };
    } finally {
      c.close();
    }
  };
  const row = (x: { e: Float32Array; cols: number }, r: number) => [...x.e.subarray(r * x.cols, (r + 1) * x.cols)];
  const close = (a: number[], b: number[], tol: number) => a.every((v, i) => Math.abs(v - b[i]!) <= tol);
  const chatml = emb(M.model_chatml!);
  const base = emb(M.model_base!);
  const union = emb(merged.get('tok-source-union')!.outs[0]!.f32);
  assert.ok(close(row(union, 64), row(chatml, 64), 1e-6), '<|im_start|> from model_chatml');
  assert.ok(close(row(union, 65), row(chatml, 65), 1e-6), '<|im_end|> from model_chatml');
  const forced = emb(merged.get('tok-force-token')!.outs[0]!.f32);
  assert.ok(close(row(forced, 10), row(chatml, 10), 1e-6), '_tok_10 from model_chatml');
  assert.ok(close(row(forced, 11), row(base, 11), 1e-6), '_tok_11 from model_base');
  const byId = emb(merged.get('tok-model-token-id')!.outs[0]!.f32);
  assert.ok(close(row(byId, 20), row(chatml, 64), 1e-6), '_tok_20 is model_chatml row 64');
  assert.ok(close(row(byId, 21), row(base, 1), 1e-6), '_tok_21 is model_base <s>');
  // padding rows: the mean of the token rows
  const padded = emb(merged.get('tok-pad-to-multiple')!.outs[0]!.f32);
  const mean = Array.from({ length: padded.cols }, (_, c) => chatml.e.filter((_, i) => i % padded.cols === c).reduce((s, v) => s + v, 0) / 66);
  assert.ok(close(row(padded, 79), mean, 1e-6));
});

test('post-layer tensors read gradients at t = 0, as mergekit\'s plan_module does since 0.1.2', () => {
  // examples/ties.yml: Platypus2's weight gradient [0, 0.3, 0.7, 1] is 0 at t = 0, so the head
  // and final norm take orca's and WizardMath's deltas only (checked in full against the reference above)
  const recipe = merged.get('ex-ties')!.outs[0]!;
  assert.ok(existsSync(join(recipe.f32, 'model.safetensors')));
  const out = join(root, 'grad-t0');
  mergeToDisk(loadMergeStages((() => {
    const f = join(root, 'grad.yml');
    writeFileSync(f, stringify({ merge_method: 'linear', models: [{ model: M.model_a, parameters: { weight: 1 } }, { model: M.model_b, parameters: { weight: [0, 1] } }], dtype: 'float32' }));
    return f;
  })())[0]!.recipe, out);
  const c = openCheckpoint(out);
  const a = openCheckpoint(M.model_a!);
  try {
    for (const n of ['lm_head.weight', 'model.norm.weight', 'model.embed_tokens.weight', 'model.layers.0.mlp.up_proj.weight']) assert.deepEqual(c.readFloat32(n), a.readFloat32(n), `${n}: model_b's weight is 0 at t = 0`);
    assert.notDeepEqual(c.readFloat32('model.layers.1.mlp.up_proj.weight'), a.readFloat32('model.layers.1.mlp.up_proj.weight'));
  } finally {
    c.close();
    a.close();
  }
});
