import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compareSnapshots, faultsSpace, runCli, runSnapshot } from '../src/bench/faults.ts';
import { startSearch } from './helpers/search.ts';
import { parseInjectedFaults } from '../src/candidate/faults.ts';
import { RunStore, storeWriteFailure } from '../src/store/index.ts';
import { EvomergeError } from '../src/errors.ts';
import { zooBuilder } from '../src/zoo/index.ts';
import { buildTinyZoo } from '../src/zoo/tiny.ts';
import { tempDir } from './helpers/tmp.ts';

const dir = tempDir('evomerge-faults-');
const zoo = join(dir, 'vision');
const BUDGET = 10;
let reference: NonNullable<ReturnType<typeof runSnapshot>>;
let space: string;

before(async () => {
  await zooBuilder('vision').build(zoo, { seed: 0, small: true });
  space = faultsSpace(dir, zoo, BUDGET);
  await startSearch(space, { dbPath: join(dir, 'reference', 'run.sqlite') });
  reference = runSnapshot(join(dir, 'reference', 'run.sqlite'))!;
});

test('injected faults (a throw, a hang past the timeout, NaN, a worker thread that exits) give failed candidates with their error, never a score', async () => {
  const db = join(dir, 'injected', 'run.sqlite');
  process.env.EVOMERGE_FAULTS = 'throw@2,hang@3,nan@4,exit@5';
  try {
    const r = await startSearch(faultsSpace(dir, zoo, BUDGET, { timeout_seconds: 12 }), { dbPath: db });
    assert.equal(r.stages[0]!.reason, 'budget: evaluations');
  } finally {
    delete process.env.EVOMERGE_FAULTS;
  }
  const store = RunStore.open(db, { readonly: true });
  const run = store.run('faults')!;
  const errors = Object.fromEntries([2, 3, 4, 5].map((id) => [id, store.candidate(id)!]));
  assert.match(errors[2]!.error!, /^error: injected fault: the evaluator of candidate 2 threw/);
  assert.match(errors[3]!.error!, /^timeout: timed out after 12000 ms/);
  assert.match(errors[4]!.error!, /NaN/);
  assert.match(errors[5]!.error!, /^worker-exit: /);
  for (const c of Object.values(errors)) {
    assert.equal(c.state, 'failed');
    assert.equal(c.fitness, null);
    assert.ok(!store.metrics(c.id).some((m) => m.metric === 'fitness' && m.value !== null), `candidate ${c.id} has no fitness metric`);
  }
  const others = store.candidates(run.id).filter((c) => !(c.id in errors));
  // the budget is a limit: the other 6 evaluated are scored; proposals past it are not evaluated
  assert.equal(others.filter((c) => c.state === 'done').length, BUDGET - 4);
  assert.ok(others.every((c) => c.state === 'done' || c.state === 'pending'));
  assert.equal(store.best(run.id, 1)[0]!.state, 'done');
  assert.equal(run.status, 'finished');
  store.close();
});

test('EVOMERGE_FAULTS that does not parse is refused with a typed error', () => {
  assert.deepEqual([...parseInjectedFaults('throw@3, nan@7')], [[3, 'throw'], [7, 'nan']]);
  assert.throws(() => parseInjectedFaults('explode@3'), (e: unknown) => e instanceof EvomergeError && e.code === 'E_FAULTS_SPEC');
});

for (const [phase, at] of [['record', 6], ['state', 2]] as const) {
  test(`a SIGKILL inside the ${phase === 'record' ? 'transaction recording a result' : 'commit of an optimizer step'} resumes to exactly the uninterrupted run`, async () => {
    const db = join(dir, `kill-${phase}`, 'run.sqlite');
    const first = await runCli(['search', space, '--db', db], { env: { EVOMERGE_BENCH_KILL: JSON.stringify({ phase, at }) } });
    assert.equal(first.signal, 'SIGKILL', first.stderr);
    const killed = runSnapshot(db)!;
    assert.equal(killed.integrity, 'ok');
    // a kill inside a step's commit leaves at least that step's outcomes untold, however the
    // results happened to group; a kill inside a result's transaction leaves that result unscored
    assert.ok(killed.rows.length < reference.rows.length || killed.unfinished > 0 || killed.untold > reference.untold, 'the kill left work to do');
    const again = await runCli(['resume', 'faults', '--db', db, '--no-queue']);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(compareSnapshots(runSnapshot(db), reference), []);
  });
}

test('a full disk stops the search with E_DISK_FULL and the database resumes once there is space', async (t) => {
  const mnt = join(dir, 'tiny-disk');
  mkdirSync(mnt);
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt]).status !== 0) return t.skip('cannot mount a tmpfs here (needs root)');
  try {
    const db = join(mnt, 'run.sqlite');
    // leave less room than the run needs: its first step fits, the search's later writes do not
    const avail = Number(spawnSync('df', ['--output=avail', '-B1', mnt], { encoding: 'utf8' }).stdout.trim().split('\n').pop());
    writeFileSync(join(mnt, 'filler'), new Uint8Array(avail - 300 * 1024));
    const r = await runCli(['search', space, '--db', db]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /evomerge: .*the disk is full; .*evomerge resume .*\[E_DISK_FULL\]/);
    assert.doesNotMatch(r.stderr, /unexpected failure/);
    const stopped = runSnapshot(db)!;
    assert.equal(stopped.integrity, 'ok');
    spawnSync('rm', [join(mnt, 'filler')]);
    const again = await runCli(['resume', 'faults', '--db', db, '--no-queue']);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(compareSnapshots(runSnapshot(db), reference), []);
  } finally {
    spawnSync('umount', [mnt]);
  }
});

test('SQLite disk-full and I/O errors become typed store errors; others pass through', () => {
  const full = storeWriteFailure(Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' }), '/x/run.sqlite');
  assert.ok(full instanceof EvomergeError && full.code === 'E_DISK_FULL' && full.exitCode === 1);
  const io = storeWriteFailure(Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR_FSYNC' }), '/x/run.sqlite');
  assert.ok(io instanceof EvomergeError && io.code === 'E_DB_IO');
  const other = new Error('constraint');
  assert.equal(storeWriteFailure(Object.assign(other, { code: 'SQLITE_CONSTRAINT' }), '/x'), other);
});

test('evomerge merge killed after writing leaves no folder under the final name, and the same command then finishes the job', async () => {
  const tiny = buildTinyZoo(join(dir, 'tiny'), 0);
  const recipe = join(dir, 'tiny-recipe.json');
  writeFileSync(recipe, JSON.stringify({ method: 'linear', sources: [tiny.base, ...tiny.models].map((m) => ({ model: m, parameters: { weight: 1 } })) }));
  const out = join(dir, 'merged');
  const first = await runCli(['merge', recipe, '-o', out, '--no-progress'], { env: { EVOMERGE_BENCH_KILL: JSON.stringify({ phase: 'merge-finished', at: 1 }) } });
  assert.equal(first.signal, 'SIGKILL', first.stderr);
  assert.ok(!existsSync(out), 'nothing under the final name');
  assert.equal(readdirSync(dir).filter((n) => n.startsWith('.merged.tmp-')).length, 1, 'the killed merge left its staging folder');
  const again = await runCli(['merge', recipe, '-o', out, '--no-progress']);
  assert.equal(again.code, 0, again.stderr);
  assert.ok(existsSync(join(out, 'model.safetensors')) && existsSync(join(out, 'config.json')) && existsSync(join(out, 'recipe.json')));
  assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('.merged.tmp-')), [], 'the dead staging folder was removed');
});
