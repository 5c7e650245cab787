import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { bestTable, recipeSummary } from '../src/report/index.ts';
import type { RunRow } from '../src/store/index.ts';
import { tempDir } from './helpers/tmp.ts';
import { cmaesFitness, cmaesRun, recipeOf } from './helpers/cmaes-run.ts';

const bin = new URL('../src/cli/bin.mjs', import.meta.url).pathname;
const dir = tempDir();

test('best prints a table of the best candidates with each model\'s mean parameters, and points to --json for the recipes', () => {
  const { store, db, ids } = cmaesRun(dir, { generations: 5, lambda: 8, mu: 5 });
  store.close();
  const r = spawnSync(process.execPath, [bin, 'best', 'cma', '--top', '3', '--db', db], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines[0], "run 'cma': the 3 best candidates of 40 scored candidates");
  assert.match(lines[1]!, /^\s*id\s+fitness\s+stage\s+gen\s+method\s+parameters/);
  // generation 4, candidates 0, 1, 2; alpha's weight is 0.204 and 0.304 in the two layer
  // groups (mean 0.254), beta's 0.4 (mlp) and 0.5, then 0.6 and 0.5 (mean 0.5)
  for (let k = 0; k < 3; k++) {
    assert.deepEqual(lines[2 + k]!.trim().split(/\s{2,}/), [String(ids[4]![k]), cmaesFitness(4, k).toFixed(4), '0', '4', 'task_arithmetic', 'alpha: weight 0.254; beta: weight 0.5; lambda 1']);
  }
  assert.equal(lines.length, 6, 'no recipe JSON');
  assert.equal(lines[5], `the recipes and metrics: evomerge best cma --top 3 --json; export: evomerge export cma --candidate ${ids[4]![0]}`);
  const json = JSON.parse(spawnSync(process.execPath, [bin, 'best', 'cma', '--top', '3', '--db', db, '--json'], { encoding: 'utf8' }).stdout);
  assert.deepEqual(Object.keys(json), ['run', 'candidates']);
  assert.deepEqual(Object.keys(json.candidates[0]).sort(), ['fitness', 'generation', 'id', 'metrics', 'recipe', 'recipeHash', 'stage']);
  assert.deepEqual(json.candidates[0].recipe, recipeOf(4, 0), '--json keeps the recipes');
});

const run = {
  name: 'wide',
  space: { space: {}, spacePath: null, base: '/m/base', models: ['math', 'code', 'chat', 'poetry'].map((name) => ({ name, path: `/m/${name}` })), evaluators: [] },
} as unknown as RunRow;

test('a long recipe summary wraps at 100 columns under its own column', () => {
  const source = (name: string, w: number) => ({ model: `/m/${name}`, parameters: { weight: w, density: [0.2, 0.4], epsilon: [{ filter: 'mlp', value: 0.1 }, { value: 0.05 }] } });
  const recipe = { version: 1, method: 'della', base: '/m/base', parameters: { lambda: 1.25 }, sources: [{ model: '/m/base' }, source('math', 0.5), source('code', 0.25), source('chat', 0.125), source('poetry', 1 / 3)] };
  assert.equal(recipeSummary(run, recipe).parameters, 'math: weight 0.5 density 0.3 epsilon 0.075; code: weight 0.25 density 0.3 epsilon 0.075; chat: weight 0.125 density 0.3 epsilon 0.075; poetry: weight 0.333 density 0.3 epsilon 0.075; lambda 1.25');
  const lines = bestTable(run, [{ id: 12, stage: 0, generation: 3, fitness: 0.5, recipe }], 20, 1);
  const body = lines.slice(2, -1);
  assert.ok(body.length >= 2, 'wrapped');
  assert.ok(lines.every((l) => l.length <= 100), lines.join('\n'));
  const column = body[0]!.indexOf('math:');
  for (const l of body.slice(1)) assert.equal(/^\s*/.exec(l)![0].length, column, 'continuations start under the parameters column');
  assert.equal(body.map((l, i) => (i === 0 ? l.slice(column) : l.trim())).join(' '), recipeSummary(run, recipe).parameters, 'nothing left out');
  assert.equal(lines.at(-1), 'the recipes and metrics: evomerge best wide --json; export: evomerge export wide --candidate 12');
});

test('a layer path is summarised by its steps, sources and scales', () => {
  const dfs = { kind: 'dfs', sources: [{ name: 'ps-best', path: 'ps-best:candidate-4' }, { name: 'code', path: '/m/code' }], steps: [{ source: 0, layer: 0, scale: 1 }, { source: 1, layer: 1, scale: 0.8 }, { source: 0, layer: 1, scale: 1.2 }], embeddings_from: 0, head_from: 0 };
  assert.deepEqual(recipeSummary(run, dfs), { method: 'layer path', parameters: '3 steps through ps-best, code; scales 0.8 to 1.2' });
});
