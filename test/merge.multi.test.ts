/**
 * Multi-stage configs (mergekit-multi, docs/multimerge.md): several YAML documents, each named
 * but the final one, later stages naming earlier ones as models.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint } from '../src/checkpoint/index.ts';
import { makeTinyLlama } from '../src/zoo/index.ts';
import { loadMergeStages, loadRecipeFile, parseRecipe } from '../src/recipe/index.ts';
import { mergeStages, mergeToDisk } from '../src/report/index.ts';
import { tempDir } from './helpers/tmp.ts';
import { readTensor } from './helpers/checkpoint.ts';

const bin = new URL('../src/cli/bin.mjs', import.meta.url).pathname;
const root = tempDir('evomerge-multi-');
const tiny = (name: string, seed: number) => makeTinyLlama(join(root, name), { seed, layers: 2, hidden: 8, heads: 2, vocab: 16 });
const mistral = tiny('mistral', 1);
const bio = tiny('bio', 2);
const hermes = tiny('hermes', 3);
const openhermes = tiny('openhermes', 4);

// the final merge first: the stages run in the order their references need, not the file's
const MULTI = `merge_method: ties
base_model: ${mistral}
models:
  - model: second-merge
    parameters: { density: 0.6, weight: 0.5 }
  - model: ${openhermes}
    parameters: { density: 0.8, weight: 0.5 }
---
name: first-merge
merge_method: linear
models:
  - model: ${mistral}
  - model: ${bio}
parameters:
  weight: 0.5
---
name: second-merge
merge_method: slerp
base_model: first-merge
models:
  - model: ${hermes}
parameters:
  t: 0.5
`;

const read = readTensor;

test('evomerge merge runs every stage in order into a folder of its own; later stages read the earlier outputs', () => {
  const cfg = join(root, 'multi.yml');
  writeFileSync(cfg, MULTI);
  const out = join(root, 'out');
  const r = spawnSync(process.execPath, [bin, 'merge', cfg, '-o', out, '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const stages = (JSON.parse(r.stdout) as { stages: Array<{ name: string | null; dir: string }> }).stages;
  assert.deepEqual(stages.map((s) => s.name), ['first-merge', 'second-merge', null]);
  assert.deepEqual(readdirSync(out).sort(), ['final', 'first-merge', 'second-merge']);
  // stage 1 by hand: the mean of the two models (weight 0.5 at the top level applies to each)
  const name = 'model.layers.1.mlp.up_proj.weight';
  const a = read(mistral, name);
  const b = read(bio, name);
  const first = read(join(out, 'first-merge'), name);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(first[i]! - (a[i]! + b[i]!) / 2) < 1e-6);
  // stage 2's recording names stage 1's folder, and the final stage equals a merge of its recipe
  assert.equal(JSON.parse(readFileSync(join(out, 'second-merge', 'recipe.json'), 'utf8')).base, join(out, 'first-merge'));
  const again = join(root, 'again');
  mergeToDisk(parseRecipe(JSON.parse(readFileSync(join(out, 'final', 'recipe.json'), 'utf8'))), again);
  assert.deepEqual(read(again, name), read(join(out, 'final'), name));
});

test('--final-only writes the final merge to the output folder and leaves no stage folder', () => {
  const cfg = join(root, 'multi.yml');
  writeFileSync(cfg, MULTI);
  const out = join(root, 'final-only');
  const r = spawnSync(process.execPath, [bin, 'merge', cfg, '-o', out, '--final-only'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^merged stage \(final\): /);
  assert.ok(existsSync(join(out, 'model.safetensors')));
  assert.ok(!readdirSync(root).some((f) => f.includes('.final-only.stages-')), 'the stages\' scratch folder is removed');
  assert.deepEqual(read(out, 'model.norm.weight'), read(join(root, 'out', 'final'), 'model.norm.weight'));
});

test('cycles, duplicate names and a second unnamed merge are refused before any output', () => {
  const file = (name: string, text: string) => {
    const f = join(root, `${name}.yml`);
    writeFileSync(f, text);
    return f;
  };
  const doc = (name: string | null, model: string) => `${name ? `name: ${name}\n` : ''}merge_method: linear\nmodels:\n  - model: ${model}\n    parameters: { weight: 1 }\n  - model: ${mistral}\n    parameters: { weight: 1 }\n`;
  const cycle = loadMergeStages(file('cycle', [doc('x', 'y'), doc('y', 'x')].join('---\n')));
  assert.throws(() => mergeStages(cycle, join(root, 'cycle-out')), { code: 'E_RECIPE_STAGE_CYCLE', message: /x -> y -> x|y -> x -> y/ });
  assert.ok(!existsSync(join(root, 'cycle-out')));
  assert.throws(() => loadMergeStages(file('dup', [doc('x', bio), doc('x', hermes)].join('---\n'))), { code: 'E_RECIPE_STAGE', message: /second merge named 'x'/ });
  assert.throws(() => loadMergeStages(file('two', [doc(null, bio), doc(null, hermes)].join('---\n'))), { code: 'E_RECIPE_STAGE', message: /second merge without a name/ });
  assert.throws(() => loadRecipeFile(join(root, 'multi.yml')), { code: 'E_RECIPE_MULTI' });
  // a stage with a bad input fails at planning, before the first stage writes
  const bad = loadMergeStages(file('bad', [doc('x', bio), doc(null, join(root, 'missing'))].join('---\n')));
  assert.throws(() => mergeStages(bad, join(root, 'bad-out')), { code: 'E_NOT_FOUND' });
  assert.ok(!existsSync(join(root, 'bad-out', 'x')));
});

test('a bf16 merge is the float32 merge rounded once (evomerge computes in float32)', () => {
  const recipe = (dtype: string | undefined) => parseRecipe({ method: 'ties', base: mistral, sources: [{ model: bio, parameters: { weight: 0.7, density: 0.5 } }, { model: hermes, parameters: { weight: 0.4, density: 0.6 } }], ...(dtype ? { dtype } : {}) });
  const f32 = join(root, 'ties-f32');
  const bf16 = join(root, 'ties-bf16');
  mergeToDisk(recipe(undefined), f32);
  mergeToDisk(recipe('bfloat16'), bf16);
  const name = 'model.layers.0.self_attn.q_proj.weight';
  const x = read(f32, name);
  const c = openCheckpoint(bf16);
  const raw = c.readRaw(name);
  c.close();
  const bits = new Uint32Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength));
  for (let i = 0; i < x.length; i++) {
    // round to nearest even on the upper 16 bits
    const u = bits[i]!;
    const rounded = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
    assert.equal(raw[2 * i]! | (raw[2 * i + 1]! << 8), rounded, `element ${i}`);
  }
});
