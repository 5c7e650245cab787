/**
 * The genome derives from the method registry, so RAM+'s parameters evolve like any others, and
 * the genome does not care about vocabulary sizes: a search over a base of 64 tokens and
 * fine-tunes with added tokens (66 rows) merges every candidate (the shared rows, as mergekit
 * does without a tokenizer setting) and scores it through a command evaluator.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getMethod } from '../src/methods/index.ts';
import { PsCodec } from '../src/space/ps.ts';
import { startSearch } from './helpers/search.ts';
import { RunStore } from '../src/store/index.ts';
import { makeTinyLlama } from '../src/zoo/index.ts';
import { tempDir } from './helpers/tmp.ts';

const root = tempDir('evomerge-vocab-search-');
const base = makeTinyLlama(join(root, 'base'), { seed: 1, layers: 2, hidden: 16, vocab: 64 });
const chat = makeTinyLlama(join(root, 'chat'), { seed: 2, layers: 2, hidden: 16, vocab: 66 });
const math = makeTinyLlama(join(root, 'math'), { seed: 3, layers: 2, hidden: 16, vocab: 66 });

test('ramplus_tl\'s r, alpha and epsilon are genes, bounded by their declared search ranges', () => {
  const c = new PsCodec({ method: getMethod('ramplus_tl'), base, models: [chat, math], modelNames: ['chat', 'math'], layers: 2, layersPerGroup: 1, filters: [], evolve: ['r', 'alpha', 'epsilon'], fixed: {}, seed: 0 });
  assert.equal(c.dimension, 2 * 3, 'one gene per layer group and global parameter');
  assert.deepEqual(c.geneNames().slice(0, 3).map((n) => n.split(' / ').pop()), ['r', 'alpha', 'epsilon']);
  const recipe = c.decode([1, 1, 1, 0, 0, 0]);
  const p = recipe.slices ? recipe.slices[0]!.parameters! : recipe.parameters!;
  assert.equal(p.r, 1);
  assert.equal(p.alpha, 1);
  assert.equal(p.epsilon, 0.001);
});

test('a ramplus_tl search over sources of 64 and 66 tokens scores every candidate', async () => {
  const score = join(root, 'score.py');
  // the candidate folder: rows of the embeddings and head equal config.json's vocab_size (64)
  writeFileSync(score, String.raw`
import json, os, struct, sys
d = sys.argv[1]
cfg = json.load(open(os.path.join(d, 'config.json')))
raw = open(os.path.join(d, 'model.safetensors'), 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
h = json.loads(raw[8:8 + n])
for t in ('model.embed_tokens.weight', 'lm_head.weight'):
    assert h[t]['shape'][0] == cfg['vocab_size'] == 64, (t, h[t]['shape'], cfg['vocab_size'])
a, b = h['lm_head.weight']['data_offsets']
vals = struct.unpack('<%df' % ((b - a) // 4), raw[8 + n + a:8 + n + b])
print(json.dumps({'norm': sum(v * v for v in vals) ** 0.5}))
`);
  const manifest = join(root, 'norm.yaml');
  writeFileSync(manifest, `id: norm\nversion: 1\nkind: command\nfamily: any\nsplit: validation\ncommand: ["python3", "{manifest_dir}/score.py", "{model}"]\ntimeout_s: 60\nmetric: { name: norm, direction: minimize }\n`);
  const space = join(root, 'space.yaml');
  writeFileSync(space, [
    'name: vocab-ram', `base: ${base}`, 'models:', `  - { name: chat, path: ${chat} }`, `  - { name: math, path: ${math} }`,
    'mode: ps', 'ps:', '  method: ramplus_tl', '  evolve: [r, alpha]', 'evaluators:', `  - { manifest: ${manifest}, weight: 1 }`,
    'budget: { evaluations: 6 }', 'optimizer: { id: cmaes, options: { sigma0: 0.3 } }', 'seed: 1', 'workers: 1', 'timeout_seconds: 120',
  ].join('\n'));
  const db = join(root, 'run.sqlite');
  const r = await startSearch(space, { dbPath: db });
  const store = RunStore.open(db, { readonly: true });
  try {
    const all = store.candidates(r.run.id);
    const done = all.filter((c) => c.state === 'done');
    assert.ok(done.length >= 6, `${done.length} candidates scored`);
    assert.deepEqual(all.filter((c) => c.state === 'failed').map((c) => `${c.id}: ${c.error}`), []);
    assert.ok(new Set(all.map((c) => JSON.stringify(c.recipe))).size > 1, 'the genome moves r and alpha');
  } finally {
    store.close();
  }
});
