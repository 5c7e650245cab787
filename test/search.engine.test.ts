import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { RunStore } from '../src/store/index.ts';
import { resumeSearch, startSearch } from './helpers/search.ts';
import { zooBuilder } from '../src/zoo/index.ts';
import { tempDir } from './helpers/tmp.ts';

const dir = tempDir();
const zoo = join(dir, 'vision');
const bin = new URL('../src/cli/bin.mjs', import.meta.url).pathname;

before(async () => {
  await zooBuilder('vision').build(zoo, { seed: 0, small: true });
});

function space(name: string, extra: Record<string, unknown> = {}): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify({
    name, zoo, mode: 'ps',
    ps: { method: 'ties', layers_per_group: 1, evolve: { weight: [0, 1.5], density: [0.1, 1] }, fixed: { lambda: 1 } },
    optimizer: { id: 'cmaes', options: { sigma0: 0.25 } },
    budget: { evaluations: 24 }, seed: 3, workers: 2, timeout_seconds: 60, backend: 'wasm',
    ...extra,
  }));
  return path;
}

function snapshot(db: string, runName: string) {
  const store = RunStore.open(db, { readonly: true });
  const run = store.run(runName)!;
  const rows = store.candidates(run.id).map((c) => ({ id: c.proposalId, stage: c.stage, genome: c.genome, state: c.state, fitness: c.fitness }));
  const best = store.best(run.id, 1)[0]!;
  const integrity = store.integrityCheck();
  store.close();
  return { rows, best: { recipe: best.recipe, fitness: best.fitness }, integrity };
}

test('a PS search on the vision zoo scores every candidate and improves on its starting point', async () => {
  const db = join(dir, 'ps', 'run.sqlite');
  const r = await startSearch(space('ps'), { dbPath: db });
  assert.equal(r.stages[0]!.reason, 'budget: evaluations');
  const s = snapshot(db, 'ps');
  // the budget is a limit: 24 evaluated, the rest of the last generation not
  assert.equal(s.rows.filter((c) => c.state === 'done').length, 24, JSON.stringify(s.rows.map((c) => c.state)));
  assert.ok(s.rows.slice(24).every((c) => c.state === 'pending'));
  assert.ok(s.best.fitness! >= s.rows[0]!.fitness!, 'the best is at least the first candidate');
  assert.ok(s.best.fitness! > 1.5 && s.best.fitness! <= 3, `fitness is a sum of three accuracies: ${s.best.fitness}`);
});

test('a search killed with SIGKILL and resumed through the CLI ends exactly as an uninterrupted one', async () => {
  const path = space('killed');
  const ref = join(dir, 'ref', 'run.sqlite');
  await startSearch(path, { dbPath: ref, runName: 'killed' });
  const expected = snapshot(ref, 'killed');
  const db = join(dir, 'killed', 'run.sqlite');
  let kills = 0;
  for (let attempt = 0; attempt < 12; attempt++) {
    const args = attempt === 0 ? ['search', path, '--db', db] : ['resume', 'killed', '--db', db];
    const proc = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timer: NodeJS.Timeout | undefined;
    proc.stdout.on('data', (d) => { out += d; });
    proc.stderr.on('data', (d) => {
      err += d;
      if (!timer && attempt < 3 && err.includes('worker thread')) timer = setTimeout(() => proc.kill('SIGKILL'), 300 + attempt * 250);
    });
    const code = await new Promise<number | null>((r) => proc.on('exit', (c) => r(c)));
    clearTimeout(timer);
    if (code === 0) {
      assert.match(out, /finished/);
      break;
    }
    assert.equal(code, null, `exited on its own with ${code}: ${err}`);
    kills++;
  }
  assert.ok(kills >= 1, 'killed at least once');
  const got = snapshot(db, 'killed');
  assert.equal(got.integrity, 'ok');
  assert.deepEqual(got.rows, expected.rows);
  assert.deepEqual(got.best, expected.best);
});

test('DFS and hybrid searches run on the vision zoo, the DFS stage starting from the PS best', async () => {
  const db = join(dir, 'hybrid', 'run.sqlite');
  const r = await startSearch(space('hybrid', {
    mode: 'hybrid', dfs: { repetitions: 1, scale_range: [0.5, 1.5], init_source: 0, embeddings_from: 0 }, budget: { evaluations: 10 },
  }), { dbPath: db });
  assert.deepEqual(r.stages.map((s) => s.kind), ['ps', 'dfs']);
  const store = RunStore.open(db, { readonly: true });
  const run = store.run('hybrid')!;
  const dfs = store.candidates(run.id, { stage: 1 });
  assert.equal(dfs.filter((c) => c.state === 'done').length, 10);
  const first = dfs[0]!.recipe as { sources: Array<{ name: string }>; steps: unknown[] };
  assert.match(first.sources[0]!.name, /^ps-best/);
  // the initial DFS genome is the PS best's own path: it scores what that candidate scored
  const psBest = store.candidates(run.id, { stage: 0 }).filter((c) => c.fitness !== null).sort((a, b) => b.fitness! - a.fitness!)[0]!;
  const initial = dfs.find((c) => (c.recipe as { steps: unknown[] }).steps.length === 2 && JSON.stringify((c.recipe as { steps: Array<{ source: number; scale: number }> }).steps) === JSON.stringify([{ source: 0, layer: 0, scale: 1 }, { source: 0, layer: 1, scale: 1 }]));
  if (initial) assert.equal(initial.fitness, psBest.fitness);
  store.close();
});

test('candidates that fail (here: every evaluation times out) are stored as failed and, with fail-fast off, the search still ends', async () => {
  const db = join(dir, 'timeouts', 'run.sqlite');
  const r = await startSearch(space('timeouts', { timeout_seconds: 0.001, budget: { evaluations: 6 } }), { dbPath: db, failFast: 0 });
  assert.ok(r.stages[0]!.failed >= 6);
  assert.equal(r.best, null);
  const store = RunStore.open(db, { readonly: true });
  const run = store.run('timeouts')!;
  assert.match(store.candidates(run.id)[0]!.error!, /timeout/);
  store.close();
});

test('a command evaluator gets each PS candidate written to a checkpoint folder', async () => {
  const manifest = join(dir, 'files-present.evaluator.yaml');
  const script = "const fs=require('fs');const d=process.argv[1];const ok=fs.existsSync(d+'/config.json')&&fs.existsSync(d+'/model.safetensors');console.log(JSON.stringify({score: ok ? 0.25 : 0}))";
  writeFileSync(manifest, stringify({ id: 'files-present', version: 1, kind: 'command', family: 'any', split: 'validation', command: [process.execPath, '-e', script, '{model}'], timeout_s: 30, metric: { name: 'score', direction: 'maximize' } }));
  const db = join(dir, 'cmd', 'run.sqlite');
  const r = await startSearch(space('cmd', { evaluators: [{ manifest, weight: 1 }], budget: { evaluations: 3 }, workers: 1 }), { dbPath: db });
  const store = RunStore.open(db, { readonly: true });
  const errors = store.candidates(store.run('cmd')!.id).map((c) => c.error).filter((e) => e);
  store.close();
  assert.deepEqual(errors, []);
  assert.equal(r.best!.fitness, 0.25);
  // the program's own timer must fire before the candidate's thread is terminated
  await assert.rejects(startSearch(space('cmd-slow', { evaluators: [{ manifest, weight: 1 }], timeout_seconds: 20 }), { dbPath: join(dir, 'cmd-slow', 'run.sqlite') }), /timeout_s \(30 s\) must be below/);
});

test('status, best and lineage read a finished run', () => {
  const db = join(dir, 'ps', 'run.sqlite');
  const status = JSON.parse(spawnSync(process.execPath, [bin, 'status', 'ps', '--db', db, '--json'], { encoding: 'utf8' }).stdout);
  assert.equal(status.counts.done, 24 + (status.counts.done - 24));
  assert.ok(status.best.fitness > 0);
  const best = JSON.parse(spawnSync(process.execPath, [bin, 'best', 'ps', '--db', db, '--top', '3', '--json'], { encoding: 'utf8' }).stdout);
  assert.equal(best.candidates.length, 3);
  assert.ok(best.candidates[0].fitness >= best.candidates[2].fitness);
  assert.equal(best.candidates[0].recipe.method, 'ties');
  assert.ok(best.candidates[0].metrics.some((m: { evaluator: string }) => m.evaluator === 'digits'));
  const lineage = spawnSync(process.execPath, [bin, 'lineage', 'ps', String(best.candidates[0].id), '--db', db, '--json'], { encoding: 'utf8' });
  assert.equal(lineage.status, 0, lineage.stderr);
  assert.equal(JSON.parse(lineage.stdout).lineage[0].id, best.candidates[0].id);
  const missing = spawnSync(process.execPath, [bin, 'status', 'nope', '--db', db], { encoding: 'utf8' });
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /no run named 'nope'/);
});

test('init: baselines puts the fixed recipes the space expresses first, so the best is never below them; init: center does not', async () => {
  const db = join(dir, 'warm', 'run.sqlite');
  await startSearch(space('warm', { budget: { evaluations: 8 } }), { dbPath: db });
  const store = RunStore.open(db, { readonly: true });
  const run = store.run('warm')!;
  const rows = store.candidates(run.id);
  // the TIES space (weight in [0, 1.5], density in [0.1, 1], lambda 1) expresses 'ties density=0.5': weight 1, density 0.5
  const warm = rows.filter((c) => c.operator === 'init' && c.genome.every((v, i) => Math.abs(v - (i % 2 === 0 ? 1 / 1.5 : 0.4 / 0.9)) < 1e-9));
  assert.equal(warm.length, 1, JSON.stringify(rows.map((c) => c.genome)));
  assert.equal(warm[0]!.generation, 0);
  assert.ok(store.best(run.id, 1)[0]!.fitness! >= warm[0]!.fitness!);
  store.close();
  const cdb = join(dir, 'center', 'run.sqlite');
  await startSearch(space('center', { budget: { evaluations: 8 }, init: 'center' }), { dbPath: cdb });
  const c = RunStore.open(cdb, { readonly: true });
  const crows = c.candidates(c.run('center')!.id);
  assert.ok(!crows.some((x) => x.genome.every((v, i) => Math.abs(v - (i % 2 === 0 ? 1 / 1.5 : 0.4 / 0.9)) < 1e-9)));
  c.close();
});

test('refine: gradient steps after the PS stage are candidates of stage 1 with lineage, and the loss they follow goes down', async () => {
  const db = join(dir, 'refine', 'run.sqlite');
  const lines: string[] = [];
  const r = await startSearch(space('refine', { budget: { evaluations: 6 }, refine: { steps: 3, lr: 0.05 } }), { dbPath: db, onLog: (l) => lines.push(l) });
  assert.equal(r.stages.length, 2);
  const store = RunStore.open(db, { readonly: true });
  const run = store.run('refine')!;
  const steps = store.candidates(run.id, { stage: 1 });
  assert.deepEqual(steps.map((c) => [c.operator, c.state, c.generation]), [['gradient', 'done', 1], ['gradient', 'done', 2], ['gradient', 'done', 3]]);
  const psBest = store.candidates(run.id, { stage: 0, state: 'done' }).sort((a, b) => b.fitness! - a.fitness!)[0]!;
  assert.deepEqual(steps.map((c) => store.lineage(c.id)[0]!.parents.map((p) => p.id)), [[psBest.id], [steps[0]!.id], [steps[1]!.id]]);
  // the loss at the start of each step (all validation items, so the steps see the same loss)
  const losses = lines.filter((l) => l.startsWith('refine step')).map((l) => Number(/loss ([\d.]+)/.exec(l)![1]));
  assert.equal(losses.length, 3, lines.join('\n'));
  assert.ok(losses[2]! < losses[0]!, `loss ${losses.join(' -> ')}`);
  assert.equal(store.outstanding(run.id, 1).length, 0, 'every step is told');
  const expected = steps.map((c) => c.genome);
  store.close();
  // stopped after the first gradient step, then resumed: the same steps
  const db2 = join(dir, 'refine-resumed', 'run.sqlite');
  const abort = new AbortController();
  const path = space('refine-resumed', { budget: { evaluations: 6 }, refine: { steps: 3, lr: 0.05 } });
  await startSearch(path, { dbPath: db2, signal: abort.signal, onEvent: (e) => { if (e.stage === 1 && e.type === 'result') abort.abort(); } });
  const mid = RunStore.open(db2, { readonly: true });
  assert.equal(mid.candidates(mid.run('refine-resumed')!.id, { stage: 1 }).length, 1);
  mid.close();
  await resumeSearch('refine-resumed', { dbPath: db2 });
  const after = RunStore.open(db2, { readonly: true });
  assert.deepEqual(after.candidates(after.run('refine-resumed')!.id, { stage: 1 }).map((c) => c.genome), expected);
  after.close();
});
