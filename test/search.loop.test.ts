import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RunStore } from '../src/store/index.ts';
import { runStage } from '../src/search/loop.ts';
import { syntheticProblem, syntheticRunner } from './helpers/synthetic-search.ts';
import { tempDir } from './helpers/tmp.ts';

const dir = tempDir();
let k = 0;

function snapshot(store: RunStore, runId: number) {
  return store.candidates(runId).map((c) => ({ id: c.proposalId, gen: c.generation, op: c.operator, genome: c.genome, state: c.state, fitness: c.fitness, told: c.told }));
}

async function reference(optimizer: { id: string; options: unknown }, budget: number, threads: number, delay: number) {
  const store = RunStore.open(join(dir, `ref-${k++}.sqlite`));
  const run = store.createRun({ name: 'r', space: {}, codeVersion: 'test', seed: 11 });
  const summary = await runStage(store, run, syntheticProblem(optimizer), syntheticRunner(threads, delay, 7 + threads), { budget: { evaluations: budget } });
  return { store, run, summary, snap: snapshot(store, run.id) };
}

for (const optimizer of [{ id: 'cmaes', options: {} }, { id: 'ga', options: { popsize: 6, mode: 'steady-state' } }, { id: 'random', options: { batch: 5 } }]) {
  test(`${optimizer.id}: the same seed gives the same candidates and scores with 1 or 3 threads and any completion order`, async () => {
    const a = await reference(optimizer, 30, 1, 0);
    const b = await reference(optimizer, 30, 3, 5);
    assert.deepEqual(b.snap, a.snap);
    // the budget is a limit: exactly 30 evaluated, in proposal order; the rest of the last generation is left pending
    const evaluated = a.snap.filter((c) => c.state === 'done' || c.state === 'failed');
    assert.equal(evaluated.length, 30);
    assert.deepEqual(a.snap.slice(0, 30), evaluated);
    assert.ok(a.snap.slice(30).every((c) => c.state === 'pending'));
    assert.equal(a.summary.best!.proposalId, b.summary.best!.proposalId);
    assert.equal(a.store.integrityCheck(), 'ok');
  });
}

test('every candidate carries its operator, and later candidates their parents', async () => {
  const { store, run } = await reference({ id: 'ga', options: { popsize: 6, mode: 'steady-state' } }, 20, 2, 1);
  const all = store.candidates(run.id);
  assert.ok(all.slice(0, 6).every((c) => c.operator === 'init'));
  const child = all[all.length - 1]!;
  assert.ok(store.lineage(child.id).length > 1, 'a child has ancestors');
});

test('a stopped search resumes to exactly the uninterrupted result, and a larger budget continues it', async () => {
  const optimizer = { id: 'cmaes', options: {} };
  const ref = await reference(optimizer, 40, 2, 2);
  const path = join(dir, 'stopped.sqlite');
  const store = RunStore.open(path);
  const run = store.createRun({ name: 'r', space: {}, codeVersion: 'test', seed: 11 });
  const controller = new AbortController();
  let seen = 0;
  const first = await runStage(store, run, syntheticProblem(optimizer), syntheticRunner(2, 2, 3), {
    budget: { evaluations: 40 }, signal: controller.signal,
    onEvent: (e) => { if (e.type === 'result' && ++seen === 13) controller.abort(); },
  });
  assert.equal(first.reason, 'stopped');
  assert.ok(store.candidates(run.id).some((c) => c.state === 'pending'));
  await runStage(store, run, syntheticProblem(optimizer), syntheticRunner(3, 4, 9), { budget: { evaluations: 40 } });
  assert.deepEqual(snapshot(store, run.id), ref.snap);
  const more = await runStage(store, run, syntheticProblem(optimizer), syntheticRunner(2, 0, 1), { budget: { evaluations: 60 } });
  assert.ok(store.candidates(run.id).length >= 60);
  assert.match(more.reason, /budget/);
});

test('an identical recipe is scored once and reused after', async () => {
  const store = RunStore.open(join(dir, 'reuse.sqlite'));
  const run = store.createRun({ name: 'r', space: {}, codeVersion: 'test', seed: 11 });
  let calls = 0;
  const runner = syntheticRunner(2, 0);
  const counting = { threads: 2, run: (t: { genome: number[] }) => { calls++; return runner.run(t); } };
  // every genome maps to one recipe: after the first, all are reused
  const problem = { ...syntheticProblem({ id: 'random', options: { batch: 4 } }), prepare: (g: readonly number[]) => ({ recipe: {}, recipeHash: 'same', task: { genome: [0.3, 0.3, 0.3, 0.3] } }) };
  const summary = await runStage(store, run, problem, counting, { budget: { evaluations: 8 } });
  const total = store.candidates(run.id).length;
  assert.ok(total >= 8);
  assert.equal(calls, 1);
  assert.equal(summary.reused, total - 1);
  assert.equal(store.candidates(run.id)[5]!.reusedFrom, store.candidates(run.id)[0]!.id);
});

test('a search killed with SIGKILL at random moments resumes to exactly the uninterrupted result', async () => {
  const child = fileURLToPath(new URL('./helpers/search-child.ts', import.meta.url));
  for (const optimizerId of ['cmaes', 'ga']) {
    const ref = await reference({ id: optimizerId, options: optimizerId === 'ga' ? { popsize: 6, mode: 'steady-state' } : {} }, 60, 1, 0);
    const path = join(dir, `killed-${optimizerId}.sqlite`);
    let kills = 0;
    for (let attempt = 0; attempt < 9; attempt++) {
      const proc = spawn(process.execPath, ['--import', 'tsx', child, path, optimizerId, '60', '12'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      let timer: NodeJS.Timeout | undefined;
      proc.stdout.on('data', (d) => {
        out += d;
        // kill at a moment spread over the work, counted from when the search has started
        // kill at moments spread over the work, counted from when the search has started; later
        // attempts get longer, and after eight the search is left to finish, however loaded the machine
        if (!timer && out.includes('ready') && attempt < 8) timer = setTimeout(() => proc.kill('SIGKILL'), 10 + ((attempt * 37) % 60) + attempt * 40);
      });
      proc.stderr.on('data', (d) => { err += d; });
      const code = await new Promise<number | null>((r) => proc.on('exit', (c) => r(c)));
      clearTimeout(timer);
      if (out.includes('finished')) break;
      assert.equal(code, null, `the child failed on its own: ${err}`);
      kills++;
    }
    assert.ok(kills >= 2, `the search was killed only ${kills} times`);
    const store = RunStore.open(path);
    const run = store.run('kill-test')!;
    assert.equal(store.integrityCheck(), 'ok');
    assert.deepEqual(snapshot(store, run.id), ref.snap, `${optimizerId} after ${kills} kills`);
    store.close();
  }
});
