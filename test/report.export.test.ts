import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { startSearch } from './helpers/search.ts';
import { RunStore, type RunRow } from '../src/store/index.ts';
import { recipeFromMergekit, parseRecipe } from '../src/recipe/index.ts';
import { exportCandidates, type DfsRecipe } from '../src/report/index.ts';
import { loadModel, composeMlpPath, ResidualMlp, useBackend } from '../src/models/index.ts';
import { zooBuilder } from '../src/zoo/index.ts';
import { tempDir } from './helpers/tmp.ts';

const dir = tempDir();
const zoo = join(dir, 'vision');
const bin = new URL('../src/cli/bin.mjs', import.meta.url).pathname;
const psDb = join(dir, 'ps', 'run.sqlite');

before(async () => {
  await zooBuilder('vision').build(zoo, { seed: 0, small: true });
  const space = join(dir, 'ps.yaml');
  writeFileSync(space, stringify({
    name: 'ps', zoo, mode: 'ps',
    ps: { method: 'ties', layers_per_group: 1, evolve: { weight: [0, 1.5], density: [0.1, 1] }, fixed: { lambda: 1 } },
    optimizer: { id: 'cmaes', options: { sigma0: 0.25 } },
    budget: { evaluations: 6 }, seed: 0, workers: 2, timeout_seconds: 60, backend: 'wasm',
  }));
  await startSearch(space, { dbPath: psDb });
});

/** Every file of a folder (recursively), name -> bytes. */
function files(folder: string, prefix = ''): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const e of readdirSync(folder, { withFileTypes: true })) {
    const p = join(folder, e.name);
    if (e.isDirectory()) for (const [k, v] of files(p, `${prefix}${e.name}/`)) out.set(k, v);
    else out.set(`${prefix}${e.name}`, readFileSync(p));
  }
  return out;
}

/** A recipe without its absent (undefined) fields, as JSON writes it. */
const plain = (v: unknown) => JSON.parse(JSON.stringify(v));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** The exported model equals `evomerge merge` of its recipe file byte for byte (the card aside). */
function assertMergeReproduces(modelDir: string, recipeFile: string, outDir: string) {
  const r = cli('merge', recipeFile, '-o', outDir, '--no-progress');
  assert.equal(r.code, 0, r.err);
  const got = files(modelDir);
  const want = files(outDir);
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
  for (const [name, bytes] of want) {
    if (name === 'README.md') continue; // the export's card replaces the generic one
    assert.ok(bytes.equals(got.get(name)!), `${name} differs from evomerge merge's`);
  }
}

test('a PS candidate exports as a recipe, mergekit YAML that parses back into it, a model equal to evomerge merge of the recipe, and a card', async () => {
  const store = RunStore.open(psDb, { readonly: true });
  const run = store.run('ps')!;
  const best = store.best(run.id, 1)[0]!;
  const out = join(dir, 'export-ps');
  const [c] = await exportCandidates(store, run, out, { best: true, testScores: async () => ({ digits: 0.5, permuted: 0.25, inverted: 0.125 }) });
  store.close();
  assert.equal(c!.id, best.id);
  const recipe = parseRecipe(JSON.parse(readFileSync(join(c!.dir, 'recipe.json'), 'utf8')));
  assert.deepEqual(recipe, parseRecipe(best.recipe));
  const yamlText = readFileSync(join(c!.dir, 'mergekit.yml'), 'utf8');
  // mergekit has no seed field: the seed travels in a comment, and this run's is the default 0
  assert.deepEqual(plain(recipeFromMergekit(parse(yamlText))), plain(recipe));
  assertMergeReproduces(join(c!.dir, 'model'), join(c!.dir, 'recipe.json'), join(dir, 'merged-ps'));
  const card = readFileSync(join(c!.dir, 'README.md'), 'utf8');
  assert.equal(card, readFileSync(join(c!.dir, 'model', 'README.md'), 'utf8'));
  assert.match(card, new RegExp(`candidate ${best.id}`));
  assert.match(card, /\| layer group \| digits weight \| digits density \|/);
  assert.match(card, /\| layer 1 \|/);
  assert.match(card, /\| permuted \| 0\.25 \|/, 'test scores are in the card');
  assert.match(card, /## Lineage/);
});

function dfsStore(steps: DfsRecipe['steps'], ends: { embeddings_from: number; head_from: number } = { embeddings_from: 0, head_from: 0 }) {
  const db = join(dir, `dfs-${Math.random().toString(36).slice(2)}.sqlite`);
  const store = RunStore.open(db);
  const sources = [{ name: 'digits', path: join(zoo, 'digits') }, { name: 'permuted', path: join(zoo, 'permuted') }];
  const run: RunRow = store.createRun({ name: 'dfs', space: { space: { mode: 'dfs' }, spacePath: null, base: null, models: sources, evaluators: [] }, codeVersion: 'test', seed: 0 });
  const recipe: DfsRecipe = { kind: 'dfs', sources, steps, ...ends };
  const [c] = store.addCandidates(run.id, [{ stage: 0, generation: 0, proposalId: 'p0', operator: 'init', genome: [], recipe, recipeHash: 'h' }]);
  store.recordResult(c!.id, { fitness: 1, metrics: [{ evaluator: 'digits', metric: 'accuracy', value: 0.9 }] });
  return { store, run, id: c!.id, recipe };
}

test('a DFS path at scale 1 exports as passthrough slices and a stacked model that computes what the path computes', async () => {
  const steps = [{ source: 1, layer: 0, scale: 1 }, { source: 1, layer: 1, scale: 1 }, { source: 0, layer: 1, scale: 1 }, { source: 0, layer: 0, scale: 1 }];
  const { store, run, recipe } = dfsStore(steps);
  const [c] = await exportCandidates(store, run, join(dir, 'export-dfs'), {});
  store.close();
  assert.deepEqual(c!.skipped, []);
  const modelDir = join(c!.dir, 'model');
  const stacked = parseRecipe(JSON.parse(readFileSync(join(modelDir, 'recipe.json'), 'utf8')));
  assert.deepEqual(stacked.slices!.map((s) => [s.sources[0]!.model.split('/').pop(), s.sources[0]!.layer_range]), [['permuted', [0, 2]], ['digits', [1, 2]], ['digits', [0, 1]]]);
  assert.deepEqual(plain(recipeFromMergekit(parse(readFileSync(join(c!.dir, 'mergekit.yml'), 'utf8')))), plain(stacked));
  assert.deepEqual(JSON.parse(readFileSync(join(c!.dir, 'recipe.json'), 'utf8')), recipe);
  assertMergeReproduces(modelDir, join(modelDir, 'recipe.json'), join(dir, 'merged-dfs'));
  assert.equal(JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')).num_blocks, 4);

  await useBackend('cpu');
  const exported = loadModel(modelDir).model as ResidualMlp;
  const sources = recipe.sources.map((s) => loadModel(s.path).model as ResidualMlp);
  const path = composeMlpPath(sources, steps, { embeddings: 0, head: 0 });
  const x = new Float32Array(3 * 784).map((_, i) => (i * 37) % 256);
  const a = await exported.logits(x, 3);
  const b = await path.logits(x, 3);
  for (const [head, v] of b) assert.deepEqual([...a.get(head)!], [...v], `head ${head}`);
  exported.dispose();
  sources.forEach((m) => m.dispose());
});

test('a DFS path with scales exports its mergekit YAML with the scales stated, and refuses the checkpoint with a clear error', async () => {
  const steps = [{ source: 0, layer: 0, scale: 1 }, { source: 1, layer: 1, scale: 1.25 }, { source: 0, layer: 1, scale: 1 }];
  const { store, run, id } = dfsStore(steps);
  const [c] = await exportCandidates(store, run, join(dir, 'export-scaled'), {});
  assert.equal(c!.skipped.length, 1);
  assert.equal(c!.skipped[0]!.format, 'model');
  assert.match(c!.skipped[0]!.reason, /step.* 1 \(scale 1\.2500\).*not supported yet/);
  assert.ok(!existsSync(join(c!.dir, 'model')));
  const yamlText = readFileSync(join(c!.dir, 'mergekit.yml'), 'utf8');
  assert.match(yamlText, /^# {3}step 1: permuted layer 1, scale 1\.25$/m);
  assert.match(readFileSync(join(c!.dir, 'README.md'), 'utf8'), /\| 1 \| permuted \| 1 \| 1\.25 \|/);
  await assert.rejects(exportCandidates(store, run, join(dir, 'export-scaled-model'), { candidate: id, formats: ['model'] }), (e: Error & { code?: string }) => e.code === 'E_EXPORT_DFS_MODEL');
  store.close();
});

test('a DFS path whose embeddings come from another model than layer stacking would take them from is refused as a checkpoint', async () => {
  const { store, run } = dfsStore([{ source: 0, layer: 0, scale: 1 }], { embeddings_from: 1, head_from: 0 });
  await assert.rejects(exportCandidates(store, run, join(dir, 'export-ends'), { formats: ['model'] }), /embeddings from permuted.*not supported yet/);
  store.close();
});

test('evomerge export refuses an unknown format and a candidate of another state before writing anything', () => {
  const r = cli('export', 'ps', '--db', psDb, '-o', join(dir, 'bad'), '--format', 'recipe,onnx');
  assert.equal(r.code, 2);
  assert.match(r.err, /unknown onnx/);
  const r2 = cli('export', 'ps', '--db', psDb, '-o', join(dir, 'bad'), '--candidate', '99999');
  assert.equal(r2.code, 2);
  assert.match(r2.err, /no candidate 99999/);
  assert.ok(!existsSync(join(dir, 'bad')));
});

test("a hybrid run's DFS path through the PS best exports that merge beside it and stacks layers from it", async () => {
  const db = join(dir, 'hybrid.sqlite');
  const store = RunStore.open(db);
  const models = [{ name: 'digits', path: join(zoo, 'digits') }, { name: 'permuted', path: join(zoo, 'permuted') }];
  const run = store.createRun({ name: 'hybrid', space: { space: { mode: 'hybrid' }, spacePath: null, base: join(zoo, 'base'), models, evaluators: [] }, codeVersion: 'test', seed: 0 });
  const psRecipe = parseRecipe({ method: 'linear', sources: [{ model: join(zoo, 'digits'), parameters: { weight: 0.5 } }, { model: join(zoo, 'permuted'), parameters: { weight: 0.5 } }] });
  const [ps] = store.addCandidates(run.id, [{ stage: 0, generation: 0, proposalId: 'p0', operator: 'init', genome: [], recipe: psRecipe, recipeHash: 'p' }]);
  store.recordResult(ps!.id, { fitness: 1 });
  const sources = [{ name: `ps-best (candidate ${ps!.id})`, path: `ps-best:candidate-${ps!.id}` }, ...models];
  const [d] = store.addCandidates(run.id, [{ stage: 1, generation: 0, proposalId: 'd0', operator: 'init', genome: [], recipeHash: 'd', parents: [ps!.id],
    recipe: { kind: 'dfs', sources, steps: [{ source: 2, layer: 0, scale: 1 }, { source: 0, layer: 1, scale: 1 }], embeddings_from: 0, head_from: 0 } }]);
  store.recordResult(d!.id, { fitness: 2 });
  const [c] = await exportCandidates(store, run, join(dir, 'export-hybrid'), { best: true });
  store.close();
  assert.equal(c!.id, d!.id);
  const psDir = join(c!.dir, `ps-best-candidate-${ps!.id}`);
  assertMergeReproduces(psDir, `${psDir}.recipe.json`, join(dir, 'merged-ps-best'));
  const stacked = parseRecipe(JSON.parse(readFileSync(join(c!.dir, 'model', 'recipe.json'), 'utf8')));
  assert.deepEqual(stacked.slices!.map((s) => s.sources[0]!.model), [join(zoo, 'permuted'), psDir]);
  assertMergeReproduces(join(c!.dir, 'model'), join(c!.dir, 'model', 'recipe.json'), join(dir, 'merged-hybrid'));
  assert.match(readFileSync(join(c!.dir, 'mergekit.yml'), 'utf8'), /is the PS stage's best \(candidate \d+\): build it first/);
});
