/**
 * The gradient stage and multi-fidelity of a search whose evaluators are command programs
 * (evaluators/scripts/mlp_numpy.py) on the small vision zoo: against the built-in evaluators'
 * gradient stage, a malformed gradient file stopping the stage, and the preflight's refusals.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { RunStore } from '../src/store/index.ts';
import { zooBuilder } from '../src/zoo/index.ts';
import { startSearch } from './helpers/search.ts';
import { tempDir } from './helpers/tmp.ts';
import { PYTHON, requireNumpy } from './helpers/numpy.ts';

const SCRIPT = fileURLToPath(new URL('../evaluators/scripts/mlp_numpy.py', import.meta.url));
const BAD = fileURLToPath(new URL('./helpers/bad_gradient.py', import.meta.url));
const dir = tempDir('evomerge-command-refine-');
const zoo = join(dir, 'vision');

before(async () => {
  await zooBuilder('vision').build(zoo, { seed: 0, small: true });
});

/** A command manifest running the numpy evaluator on the zoo task's validation items (its IDX files, head and item count). */
function numpyManifest(task: string, extra: Record<string, unknown> = {}, command?: string[]): string {
  const file = join(zoo, 'evaluators', `${task}.validation.yaml`);
  const m = parse(readFileSync(file, 'utf8')) as { head: string; limit: number; data: { splits: { validation: { images: string; labels: string } } } };
  const at = (p: string) => resolve(zoo, 'evaluators', p);
  const path = join(dir, `${task}-${Object.keys(extra).join('-') || 'plain'}-${Math.random().toString(36).slice(2, 7)}.yaml`);
  writeFileSync(path, stringify({
    id: `numpy-${task}`, version: 1, kind: 'command', family: 'residual-mlp', split: 'validation', persistent: true, timeout_s: 100,
    command: command ?? [PYTHON, SCRIPT, ...(extra.persistent === false ? ['--model', '{model}', '--gradient', '{gradient}', '--loss', '{loss}'] : ['--serve']), '--images', at(m.data.splits.validation.images), '--labels', at(m.data.splits.validation.labels), '--head', m.head, '--limit', String(m.limit)],
    metric: { name: 'accuracy', direction: 'maximize' },
    ...extra,
  }));
  return path;
}

function space(name: string, evaluators: unknown[], extra: Record<string, unknown> = {}): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify({
    name, zoo, mode: 'ps', evaluators,
    ps: { method: 'task_arithmetic', layers_per_group: 1, evolve: { weight: [0, 1.5] }, fixed: { lambda: 1 } },
    optimizer: { id: 'cmaes', options: { sigma0: 0.25 } },
    budget: { evaluations: 4 }, seed: 3, workers: 1, timeout_seconds: 120, backend: 'cpu',
    refine: { steps: 2, lr: 0.05 },
    ...extra,
  }));
  return path;
}

async function refused(path: string, code: string, pattern: RegExp): Promise<void> {
  const db = join(dir, `${code}-${Math.random().toString(36).slice(2)}`, 'run.sqlite');
  await assert.rejects(startSearch(path, { dbPath: db }), (err: Error & { code?: string }) => {
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  });
  assert.equal(existsSync(db), false, 'no run database is created');
}

test('the gradient stage through persistent numpy command evaluators takes the steps the built-in evaluators\' gradient stage takes', async () => {
  requireNumpy();
  const tasks = ['digits', 'inverted'];
  const runs: Array<{ genomes: number[][]; losses: number[]; fitness: number[] }> = [];
  for (const [name, evaluators] of [
    ['builtin', tasks.map((task) => ({ task }))],
    ['numpy', tasks.map((task) => ({ manifest: numpyManifest(task, { gradient: true }) }))],
  ] as const) {
    const db = join(dir, name, 'run.sqlite');
    const lines: string[] = [];
    const r = await startSearch(space(`refine-${name}`, evaluators as unknown[]), { dbPath: db, onLog: (l) => lines.push(l) });
    assert.deepEqual(r.stages.map((s) => s.reason), ['budget: evaluations', 'refine: 2 steps'], lines.join('\n'));
    const store = RunStore.open(db, { readonly: true });
    const run = store.run(`refine-${name}`)!;
    const steps = store.candidates(run.id, { stage: 1 });
    assert.deepEqual(steps.map((c) => [c.operator, c.state]), [['gradient', 'done'], ['gradient', 'done']]);
    runs.push({
      genomes: steps.map((c) => c.genome),
      losses: lines.filter((l) => l.startsWith('refine step')).map((l) => Number(/loss ([\d.]+)/.exec(l)![1])),
      fitness: store.candidates(run.id, { stage: 0 }).map((c) => c.fitness!),
    });
    store.close();
  }
  const [builtin, numpy] = runs as [typeof runs[0], typeof runs[0]];
  // the PS stage scores alike (accuracy of the same merges), so both refine the same start
  builtin.fitness.forEach((f, i) => assert.ok(Math.abs(f - numpy.fitness[i]!) < 1e-9, `PS candidate ${i}: ${f} vs ${numpy.fitness[i]}`));
  builtin.losses.forEach((l, i) => assert.ok(Math.abs(l - numpy.losses[i]!) < 1e-4 * l, `step ${i + 1} loss: tfjs ${l} vs numpy ${numpy.losses[i]}`));
  builtin.genomes.forEach((g, i) => g.forEach((v, j) => assert.ok(Math.abs(v - numpy.genomes[i]![j]!) < 1e-4, `step ${i + 1} gene ${j}: ${v} vs ${numpy.genomes[i]![j]}`)));
});

test('a malformed gradient file stops the gradient stage with the reason, the PS stage kept', async () => {
  requireNumpy();
  const manifest = numpyManifest('digits', { gradient: true, persistent: false }, [PYTHON, BAD, '{model}', '{gradient}', 'shape']);
  const db = join(dir, 'bad', 'run.sqlite');
  await assert.rejects(startSearch(space('bad-gradient', [{ manifest }]), { dbPath: db }), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'E_REFINE_GRADIENT_FILE', e.message);
    assert.match(e.message, /tensor 'blocks\.0\.fc1\.weight' with shape/);
    return true;
  });
  const store = RunStore.open(db, { readonly: true });
  const run = store.run('bad-gradient')!;
  assert.equal(store.candidates(run.id, { stage: 0, state: 'done' }).length, 4);
  assert.equal(store.candidates(run.id, { stage: 1 }).length, 0);
  store.close();
});

test('multi-fidelity through a range-subset command evaluator races candidates on its rungs and spends fewer items than full scoring', async () => {
  requireNumpy();
  const manifest = numpyManifest('digits', { subset: { form: 'range', items: 500 } });
  const db = join(dir, 'mf', 'run.sqlite');
  const r = await startSearch(space('mf', [{ manifest }], { refine: undefined, budget: { evaluations: 16 }, fidelity: { rungs: [0.2, 1], confidence: 0.5 } }), { dbPath: db });
  assert.equal(r.stages[0]!.reason, 'budget: evaluations');
  const store = RunStore.open(db, { readonly: true });
  const run = store.run('mf')!;
  const done = store.candidates(run.id, { stage: 0, state: 'done' });
  // each candidate scored 100 items (stopped at the first rung) or all 500
  for (const c of done) assert.ok((c.fidelity === 0.2 && c.itemEvals === 100) || (c.fidelity === 1 && c.itemEvals === 500), `candidate ${c.id}: fidelity ${c.fidelity}, items ${c.itemEvals}`);
  assert.ok(done.some((c) => c.fidelity === 0.2), 'some candidate stopped early');
  store.close();
});

test('multi-fidelity with a command evaluator that cannot score part of its items is refused before the run exists, with the reason', async () => {
  requireNumpy();
  await refused(space('mf-whole', [{ manifest: numpyManifest('digits') }], { refine: undefined, fidelity: { rungs: [0.2, 1] } }), 'E_SETUP_FIDELITY', /is a command without 'subset', so its program can only score every item/);
  await refused(space('mf-min', [{ manifest: numpyManifest('digits', { subset: { form: 'range', items: 500, min_items: 200 } }) }], { refine: undefined, fidelity: { rungs: [0.2, 1] } }), 'E_SETUP_FIDELITY', /to score 100 of its 500 items in one request, but its program scores at least subset\.min_items = 200/);
});

test('the gradient stage over command evaluators it cannot use is refused before the run exists, with the reason', async () => {
  requireNumpy();
  await refused(space('no-gradient', [{ manifest: numpyManifest('digits') }]), 'E_REFINE_EVALUATOR', /runs a program that returns metrics.*set gradient: true in its manifest/);
  await refused(space('mixed', [{ manifest: numpyManifest('digits', { gradient: true, persistent: false }) }, { task: 'inverted' }]), 'E_REFINE_EVALUATOR', /from built-in evaluators or from command evaluators, not both/);
  await refused(space('batch', [{ manifest: numpyManifest('digits', { gradient: true }) }], { refine: { steps: 2, batch: 32 } }), 'E_REFINE_BATCH', /batch \(32\) samples the items of built-in evaluators/);
  const della = space('della', [{ manifest: numpyManifest('digits', { gradient: true }) }]);
  writeFileSync(della, readFileSync(della, 'utf8').replace('method: task_arithmetic', 'method: della'));
  await refused(della, 'E_REFINE_METHOD', /method 'della' is not refinable/);
});
