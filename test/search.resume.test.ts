/**
 * A run keeps the settings it was started with: `resume` after a kill continues with the
 * command line's budget, seed and workers, not the space file's, and ends with exactly the run
 * an uninterrupted command gives; run states say what happened (running only with a live
 * owner; interrupted, stopped, finished); a finished run is only reported unless a larger
 * budget extends it, and the extension equals a run started with that budget.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { runCli } from '../src/bench/faults.ts';
import { RunStore } from '../src/store/index.ts';
import { zooBuilder } from '../src/zoo/index.ts';
import { tempDir } from './helpers/tmp.ts';

const dir = tempDir('evomerge-resume-');
const zoo = join(dir, 'vision');
const BIN = new URL('../src/cli/bin.mjs', import.meta.url).pathname;
let spacePath: string;
/** The command line of every run here: its overrides differ from the space file's values. */
const FLAGS = ['--budget', '12', '--seed', '11', '--workers', '2'];

function rows(db: string, run: string) {
  const store = RunStore.open(db, { readonly: true });
  try {
    const r = store.run(run)!;
    return store.candidates(r.id).map((c) => ({ proposal: c.proposalId, recipeHash: c.recipeHash, state: c.state, fitness: c.fitness }));
  } finally {
    store.close();
  }
}

function status(db: string, run: string) {
  const r = spawnSync(process.execPath, [BIN, 'status', run, '--db', db, '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { status: string; reason: string | null; error: string | null; counts: Record<string, number>; settings: { budget: { evaluations: number }; seed: number; workers: number; given: string[] } };
}

before(async () => {
  await zooBuilder('vision').build(zoo, { seed: 0, small: true });
  spacePath = join(dir, 'space.yaml');
  // the file says 1000 evaluations, seed 0 and 1 worker; the command line says otherwise
  writeFileSync(spacePath, stringify({
    name: 'resume-test', zoo, mode: 'ps',
    ps: { method: 'task_arithmetic', layers_per_group: 1, evolve: { weight: [0, 1] }, fixed: { lambda: 1 } },
    optimizer: { id: 'cmaes', options: { sigma0: 0.25, popsize: 5 } },
    budget: { evaluations: 1000 }, seed: 0, workers: 1, timeout_seconds: 120, backend: 'wasm',
  }));
});

test('a search killed after a random committed candidate resumes with the command line\'s budget, seed and workers and ends as the uninterrupted run', async () => {
  const ref = join(dir, 'ref', 'run.sqlite');
  const done = await runCli(['search', spacePath, ...FLAGS, '--run', 'B', '--db', ref]);
  assert.equal(done.code, 0, done.stderr);
  const expected = rows(ref, 'B');
  assert.equal(expected.filter((r) => r.state === 'done').length, 12, 'the budget is a limit');
  const refStatus = status(ref, 'B');
  assert.equal(refStatus.status, 'finished');
  assert.match(refStatus.reason!, /budget of 12 evaluations reached/);
  assert.deepEqual([refStatus.settings.budget.evaluations, refStatus.settings.seed, refStatus.settings.workers], [12, 11, 2]);
  assert.deepEqual(refStatus.settings.given.sort(), ['budget', 'seed', 'workers']);

  // SIGKILL just after the k-th result is committed, k drawn at random (printed on failure)
  const k = 1 + Math.floor(Math.random() * 10);
  const db = join(dir, 'killed', 'run.sqlite');
  const killed = await runCli(['search', spacePath, ...FLAGS, '--run', 'B', '--db', db], { env: { EVOMERGE_BENCH_KILL: JSON.stringify({ phase: 'recorded', at: k }) } });
  assert.equal(killed.signal, 'SIGKILL', `k = ${k}: ${killed.stderr}`);
  const dead = status(db, 'B');
  assert.equal(dead.status, 'interrupted', `k = ${k}: a killed run has no live owner`);
  assert.ok(dead.counts.done >= 1);

  const again = spawnSync(process.execPath, [BIN, 'resume', 'B', '--db', db], { encoding: 'utf8' });
  assert.equal(again.status, 0, again.stderr);
  assert.deepEqual(rows(db, 'B'), expected, `k = ${k}`);
  assert.equal(status(db, 'B').status, 'finished');

  // resuming a finished run evaluates nothing and says so
  const before = rows(db, 'B');
  const idle = spawnSync(process.execPath, [BIN, 'resume', 'B', '--db', db], { encoding: 'utf8' });
  assert.equal(idle.status, 0, idle.stderr);
  assert.match(idle.stdout, /run 'B' is finished \(stage 0 \(ps\): budget of 12 evaluations reached\); nothing to resume/);
  assert.deepEqual(rows(db, 'B'), before);
});

test('resume --budget extends a finished run to exactly the run started with that budget, and records the change', async () => {
  const ref = join(dir, 'ref20', 'run.sqlite');
  const full = await runCli(['search', spacePath, '--budget', '20', '--seed', '11', '--workers', '2', '--run', 'C', '--db', ref]);
  assert.equal(full.code, 0, full.stderr);
  const db = join(dir, 'extended', 'run.sqlite');
  const first = await runCli(['search', spacePath, ...FLAGS, '--run', 'C', '--db', db]);
  assert.equal(first.code, 0, first.stderr);
  const more = spawnSync(process.execPath, [BIN, 'resume', 'C', '--db', db, '--budget', '20'], { encoding: 'utf8' });
  assert.equal(more.status, 0, more.stderr);
  assert.match(more.stderr, /resume: budget 12 -> 20 \(the run's other settings are kept\)/);
  assert.deepEqual(rows(db, 'C'), rows(ref, 'C'));
  const s = status(db, 'C');
  assert.equal(s.settings.budget.evaluations, 20);
  assert.equal(s.settings.seed, 11);
  const store = RunStore.open(db, { readonly: true });
  const events = store.events(store.run('C')!.id).filter((e) => e.kind === 'settings');
  store.close();
  assert.deepEqual(events.map((e) => e.message), ['resume changed budget 12 -> 20']);
});

test('Ctrl-C stops a search cleanly: exit 130, status stopped with the reason, and resume finishes it as the uninterrupted run', async () => {
  const ref = join(dir, 'ref', 'run.sqlite');
  const db = join(dir, 'sigint', 'run.sqlite');
  const proc = spawn(process.execPath, [BIN, 'search', spacePath, ...FLAGS, '--run', 'B', '--db', db], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let sent = false;
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => {
    err += d;
    // once the stage runs, interrupt it
    if (!sent && err.includes('worker thread')) {
      sent = true;
      setTimeout(() => proc.kill('SIGINT'), 300);
    }
  });
  const code = await new Promise<number | null>((r) => proc.on('exit', (c) => r(c)));
  assert.equal(code, 130, err);
  const s = status(db, 'B');
  if (s.counts.done === 12) return; // the search finished before the interrupt reached it: nothing to test
  assert.match(out, /run 'B' stopped \(Ctrl-C\)/);
  assert.equal(s.status, 'stopped');
  assert.equal(s.reason, 'Ctrl-C');
  const text = spawnSync(process.execPath, [BIN, 'status', 'B', '--db', db], { encoding: 'utf8' }).stdout;
  assert.match(text, /ended +stopped: Ctrl-C; continue with: evomerge resume B/);
  assert.match(text, /settings +budget 12 evaluations per stage \(--budget\), 2 workers \(--workers\), seed 11 \(--seed\)/);
  const again = spawnSync(process.execPath, [BIN, 'resume', 'B', '--db', db], { encoding: 'utf8' });
  assert.equal(again.status, 0, again.stderr);
  assert.deepEqual(rows(db, 'B'), rows(ref, 'B'));
});

test('the budget is a limit for every optimizer: --budget 5 evaluates 5 with GA (population 32) and CMA-ES, and the progress never shows more', async () => {
  for (const [id, options] of [['ga', {}], ['cmaes', { sigma0: 0.25 }]] as const) {
    const path = join(dir, `limit-${id}.yaml`);
    writeFileSync(path, stringify({
      name: `limit-${id}`, zoo, mode: 'ps', ps: { method: 'task_arithmetic', layers_per_group: 1, evolve: { weight: [0, 1] }, fixed: { lambda: 1 } },
      optimizer: { id, options }, budget: { evaluations: 1000 }, seed: 0, workers: 2, timeout_seconds: 120, backend: 'wasm',
    }));
    const db = join(dir, `limit-${id}`, 'run.sqlite');
    const r = await runCli(['search', path, '--budget', '5', '--db', db]);
    assert.equal(r.code, 0, r.stderr);
    const all = rows(db, `limit-${id}`);
    assert.equal(all.filter((c) => c.state === 'done' || c.state === 'failed').length, 5, id);
    assert.match(r.stdout, /stage 0 \(ps\) ended: budget of 5 evaluations reached; 5 evaluated/);
    // progress lines (logs, not a terminal) count up to the budget, never past it
    const shown = [...r.stderr.matchAll(/\] (\d+)\/(\d+) \|/g)].map((m) => [Number(m[1]), Number(m[2])]);
    assert.ok(shown.length > 0, r.stderr);
    assert.ok(shown.every(([v, t]) => t === 5 && v! <= 5), JSON.stringify(shown));
    // both first generations are larger than 5: the rest of each waits, not evaluated, past the budget
    assert.ok(status(db, `limit-${id}`).counts.pending > 0, id);
  }
});

test('a search whose output is closed (search ... 2>&1 | head) stops cleanly: exit 0, status stopped with the reason, resumable', async () => {
  const db = join(dir, 'epipe', 'run.sqlite');
  // the space's own budget (1000): the search is still running when its reader goes away
  const proc = spawn(process.execPath, [BIN, 'search', spacePath, '--run', 'E', '--db', db], { stdio: ['ignore', 'pipe', 'pipe'] });
  let lines = 0;
  const close = () => {
    proc.stdout.destroy();
    proc.stderr.destroy();
  };
  // like `head -3`: read three lines, then close the pipe
  for (const stream of [proc.stdout, proc.stderr]) {
    stream.on('data', (d: Buffer) => {
      lines += d.toString().split('\n').length - 1;
      if (lines >= 3) close();
    });
  }
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => proc.on('exit', (c, s) => r([c, s])));
  assert.deepEqual([code, signal], [0, null]);
  const s = status(db, 'E');
  assert.equal(s.status, 'stopped');
  assert.equal(s.reason, 'the output was closed');
  assert.ok(s.counts.done < 1000);
});
