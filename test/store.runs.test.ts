import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../src/errors.ts';
import { newOwner, runState, RunStore, SCHEMA_VERSION, type NewCandidate } from '../src/store/index.ts';
import { tempDir } from './helpers/tmp.ts';

/** Columns schema 4 added (when a candidate's merge and scoring ran, and where). */
const PHASE_COLUMNS = ['merge_start', 'merge_end', 'write_ms', 'score_start', 'score_end', 'slot'];

const dir = tempDir();
let n = 0;
const freshStore = () => RunStore.open(join(dir, `run-${n++}`, 'run.sqlite'));

function proposal(id: string, generation: number, parents: string[] = [], operator = 'sample'): NewCandidate {
  return { stage: 0, generation, proposalId: id, operator, genome: [generation, 0.5], recipe: { method: 'linear', id }, recipeHash: `h-${id}`, parents };
}

test('a run is created once; a second run of the same name is refused with the way out', () => {
  const store = freshStore();
  const run = store.createRun({ name: 'demo', space: { method: 'ties' }, codeVersion: '0.1.0', seed: 7 });
  assert.equal(run.name, 'demo');
  assert.deepEqual(run.space, { method: 'ties' });
  assert.throws(() => store.createRun({ name: 'demo', space: {}, codeVersion: '0.1.0', seed: 7 }), (e: unknown) => e instanceof InputError && e.code === 'E_RUN_EXISTS' && /evomerge resume demo/.test(e.message));
  store.close();
});

test('results are recorded once per candidate, and failures and NaN never rank as best', () => {
  const store = freshStore();
  const run = store.createRun({ name: 'r', space: {}, codeVersion: 'x', seed: 1 });
  const [a, b, c] = store.addCandidates(run.id, [proposal('g0-0', 0), proposal('g0-1', 0), proposal('g0-2', 0)]);
  store.markRunning(a!.id, 'worker-1');
  assert.equal(store.candidate(a!.id)!.state, 'running');
  assert.equal(store.recordResult(a!.id, { fitness: 0.5, metrics: [{ evaluator: 'digits', metric: 'acc', value: 0.5 }] }), true);
  assert.equal(store.recordResult(a!.id, { fitness: 0.9 }), false, 'a duplicate result is ignored');
  assert.equal(store.candidate(a!.id)!.fitness, 0.5);
  assert.equal(store.recordResult(b!.id, { fitness: Number.NaN }), true);
  assert.equal(store.candidate(b!.id)!.state, 'failed');
  assert.match(store.candidate(b!.id)!.error!, /NaN/);
  store.recordResult(c!.id, { fitness: null, error: 'evaluator timed out after 30 s' });
  assert.deepEqual(store.best(run.id, 5).map((x) => x.proposalId), ['g0-0']);
  assert.deepEqual(store.counts(run.id), { pending: 0, running: 0, done: 1, failed: 2 });
  assert.deepEqual(store.metrics(a!.id), [{ evaluator: 'digits', metric: 'acc', value: 0.5 }]);
  assert.equal(store.scoredByHash(run.id, 'h-g0-0')!.id, a!.id);
  assert.equal(store.scoredByHash(run.id, 'h-g0-1'), undefined, 'a failed candidate is not reused');
  store.close();
});

test('lineage follows parents across generations with their operators', () => {
  const store = freshStore();
  const run = store.createRun({ name: 'r', space: {}, codeVersion: 'x', seed: 1 });
  store.addCandidates(run.id, [proposal('a', 0), proposal('b', 0)]);
  store.addCandidates(run.id, [proposal('c', 1, ['a', 'b'], 'crossover')]);
  const [d] = store.addCandidates(run.id, [proposal('d', 2, ['c'], 'mutation')]);
  const lineage = store.lineage(d!.id);
  assert.deepEqual(lineage.map((e) => [e.candidate.proposalId, e.depth]), [['d', 0], ['c', 1], ['a', 2], ['b', 2]]);
  assert.deepEqual(lineage[0]!.parents.map((p) => p.operator), ['mutation']);
  assert.deepEqual(lineage[1]!.parents.map((p) => store.candidate(p.id)!.proposalId), ['a', 'b']);
  assert.throws(() => store.addCandidates(run.id, [proposal('e', 3, ['nope'])]), /parent 'nope'/);
  assert.equal(store.candidateByProposal(run.id, 0, 'e'), undefined, 'a failed insert rolls back the whole batch');
  store.close();
});

test('the latest optimizer state is the one of the highest stage and generation', () => {
  const store = freshStore();
  const run = store.createRun({ name: 'r', space: {}, codeVersion: 'x', seed: 1 });
  assert.equal(store.latestGeneration(run.id), undefined);
  store.saveGeneration(run.id, 0, 0, { mean: [0] });
  store.saveGeneration(run.id, 0, 1, { mean: [1] });
  store.saveGeneration(run.id, 1, 0, { mean: [2] });
  assert.deepEqual(store.latestGeneration(run.id), { stage: 1, generation: 0, state: { mean: [2] } });
  store.event(run.id, 'resume', 'resumed after a restart', { pending: 3 });
  assert.equal(store.events(run.id)[0]!.kind, 'resume');
  assert.equal(store.integrityCheck(), 'ok');
  store.close();
});

test('a reader in another connection sees committed results while the writer is open', () => {
  const path = join(dir, 'shared', 'run.sqlite');
  const writer = RunStore.open(path);
  const run = writer.createRun({ name: 'live', space: {}, codeVersion: 'x', seed: 1 });
  const [a] = writer.addCandidates(run.id, [proposal('a', 0)]);
  const reader = RunStore.open(path, { readonly: true });
  assert.equal(reader.counts(run.id).pending, 1);
  writer.recordResult(a!.id, { fitness: 1 });
  assert.equal(reader.counts(run.id).done, 1);
  assert.throws(() => reader.createRun({ name: 'x', space: {}, codeVersion: 'x', seed: 1 }));
  reader.close();
  writer.close();
});

test('a missing, foreign or newer database is refused with a clear error', () => {
  assert.throws(() => RunStore.open(join(dir, 'none.sqlite'), { readonly: true }), (e: unknown) => e instanceof InputError && e.code === 'E_NO_RUN_DB');
  const junk = join(dir, 'junk.sqlite');
  writeFileSync(junk, 'this is not sqlite at all, just text that is long enough to look like a header....');
  assert.throws(() => RunStore.open(junk), (e: unknown) => e instanceof InputError && e.code === 'E_DB_CORRUPT');
  const path = join(dir, 'future', 'run.sqlite');
  const s = RunStore.open(path);
  s.db.prepare(`UPDATE meta SET value = '99' WHERE key = 'schema_version'`).run();
  s.close();
  assert.throws(() => RunStore.open(path), (e: unknown) => e instanceof InputError && e.code === 'E_DB_VERSION');
});

test('a schema-1 database opens: read-only as it is, and for writing with the multi-fidelity columns added', () => {
  const path = join(dir, 'v1', 'run.sqlite');
  const s = RunStore.open(path);
  const run = s.createRun({ name: 'old', space: {}, codeVersion: '0.1.0', seed: 1 });
  const [a] = s.addCandidates(run.id, [proposal('g0-0', 0)]);
  s.recordResult(a!.id, { fitness: 0.5 });
  // what a database written before schema 2 looks like
  for (const col of ['threshold', 'fidelity', 'item_evals', ...PHASE_COLUMNS]) s.db.exec(`ALTER TABLE candidates DROP COLUMN ${col}`);
  s.db.prepare(`UPDATE meta SET value = '1' WHERE key = 'schema_version'`).run();
  s.close();
  const ro = RunStore.open(path, { readonly: true });
  assert.equal(ro.best(run.id, 1)[0]!.fitness, 0.5);
  assert.equal(ro.candidate(a!.id)!.fidelity, null);
  assert.deepEqual(ro.itemEvaluations(run.id), { items: 0, byFidelity: [] });
  ro.close();
  const rw = RunStore.open(path);
  assert.equal((rw.db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get() as { value: string }).value, String(SCHEMA_VERSION));
  const c = rw.candidate(a!.id)!;
  assert.deepEqual([c.fitness, c.threshold, c.fidelity, c.itemEvals], [0.5, null, null, null]);
  assert.equal(rw.best(run.id, 1)[0]!.id, a!.id, 'an old full score still ranks');
  const [b] = rw.addCandidates(run.id, [{ ...proposal('g1-0', 1), threshold: 0.5 }]);
  rw.recordResult(b!.id, { fitness: 0.9, fidelity: 0.1, itemEvals: 10 });
  assert.equal(rw.best(run.id, 1)[0]!.id, a!.id);
  rw.close();
});

test('a schema-2 database opens read-only as it is, and for writing with its runs table rebuilt for settings, owner and the failed state', () => {
  const path = join(dir, 'v2', 'run.sqlite');
  const s = RunStore.open(path);
  const run = s.createRun({ name: 'old', space: { x: 1 }, codeVersion: '0.1.0', seed: 4, fingerprints: { f: 'abc' } });
  const [a, b] = s.addCandidates(run.id, [proposal('g0-0', 0), proposal('g0-1', 0)]);
  s.recordResult(a!.id, { fitness: 0.5, metrics: [{ evaluator: 'e', metric: 'acc', value: 0.5 }] });
  s.addCandidates(run.id, [proposal('g1-0', 1, ['g0-0'])]);
  s.event(run.id, 'start', 'started');
  for (const col of PHASE_COLUMNS) s.db.exec(`ALTER TABLE candidates DROP COLUMN ${col}`);
  // the runs table as schema 2 wrote it: no settings or owner columns, no 'failed' status
  s.db.pragma('foreign_keys = OFF');
  s.db.exec(`CREATE TABLE runs_old (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, space_json TEXT NOT NULL, space_path TEXT, code_version TEXT NOT NULL, seed INTEGER NOT NULL,
    fingerprints_json TEXT NOT NULL DEFAULT '{}', status TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'finished', 'stopped')), created_at TEXT NOT NULL, updated_at TEXT NOT NULL)`);
  s.db.exec(`INSERT INTO runs_old SELECT id, name, space_json, space_path, code_version, seed, fingerprints_json, status, created_at, updated_at FROM runs`);
  s.db.exec(`DROP TABLE runs`);
  s.db.exec(`ALTER TABLE runs_old RENAME TO runs`);
  s.db.prepare(`UPDATE meta SET value = '2' WHERE key = 'schema_version'`).run();
  s.close();

  const ro = RunStore.open(path, { readonly: true });
  const old = ro.run('old')!;
  assert.deepEqual([old.settings, old.owner, old.stopReason, old.status], [null, null, null, 'running']);
  // 'running' with no owner to vouch for it: nobody holds it
  assert.equal(runState(old), 'interrupted');
  ro.close();

  const rw = RunStore.open(path);
  assert.equal((rw.db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get() as { value: string }).value, String(SCHEMA_VERSION));
  const again = rw.run('old')!;
  assert.deepEqual([again.id, again.seed, again.fingerprints, again.space], [run.id, 4, { f: 'abc' }, { x: 1 }]);
  assert.equal(rw.candidate(b!.id)!.runId, run.id);
  assert.equal(rw.lineage(rw.candidates(run.id)[2]!.id).length, 2, 'parents survive the rebuild');
  assert.equal(rw.metrics(a!.id)[0]!.value, 0.5);
  assert.equal((rw.db.pragma('foreign_keys', { simple: true }) as number), 1, 'foreign keys are on again');
  assert.deepEqual(rw.db.pragma('foreign_key_check'), []);
  const owner = newOwner();
  rw.claimRun(run.id, owner);
  assert.equal(runState(rw.run('old')!), 'running', 'this live process holds it');
  assert.equal(rw.endRun(run.id, 'not-the-token', { status: 'failed', reason: 'x' }), false, 'only the holder ends the run');
  assert.equal(rw.endRun(run.id, owner.token, { status: 'failed', reason: 'error E_X', error: 'boom' }), true);
  const ended = rw.run('old')!;
  assert.deepEqual([ended.status, ended.stopReason, ended.error, runState(ended)], ['failed', 'error E_X', 'boom', 'failed']);
  assert.equal(rw.integrityCheck(), 'ok');
  rw.close();
});

test('a schema-3 database opens read-only without phases, and for writing with the phase columns added', () => {
  const path = join(dir, 'v3', 'run.sqlite');
  const s = RunStore.open(path);
  const run = s.createRun({ name: 'old', space: {}, codeVersion: '0.1.0', seed: 1 });
  const [a, b] = s.addCandidates(run.id, [proposal('g0-0', 0), proposal('g0-1', 0)]);
  s.recordResult(a!.id, { fitness: 0.5 });
  // what a database written before schema 4 looks like
  for (const col of PHASE_COLUMNS) s.db.exec(`ALTER TABLE candidates DROP COLUMN ${col}`);
  s.db.prepare(`UPDATE meta SET value = '3' WHERE key = 'schema_version'`).run();
  s.close();
  const ro = RunStore.open(path, { readonly: true });
  assert.deepEqual(ro.candidate(a!.id)!.phases, { mergeStart: null, mergeEnd: null, writeMs: null, scoreStart: null, scoreEnd: null, slot: null });
  ro.close();
  const rw = RunStore.open(path);
  assert.equal((rw.db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get() as { value: string }).value, String(SCHEMA_VERSION));
  assert.equal(rw.candidate(a!.id)!.fitness, 0.5);
  rw.recordResult(b!.id, { fitness: 0.7, phases: { mergeStart: 1000.5, mergeEnd: 2000, writeMs: 300, scoreStart: 2100, scoreEnd: 5000, slot: 'gpu1' } });
  assert.deepEqual(rw.candidate(b!.id)!.phases, { mergeStart: 1000.5, mergeEnd: 2000, writeMs: 300, scoreStart: 2100, scoreEnd: 5000, slot: 'gpu1' });
  rw.close();
});

test('a run held by a process that died reads as interrupted; one held by a live process as running', () => {
  const store = freshStore();
  const run = store.createRun({ name: 'r', space: {}, codeVersion: 'x', seed: 1 });
  store.claimRun(run.id, { ...newOwner(), pid: 2 ** 22 + 12345 });
  assert.equal(runState(store.run('r')!), 'interrupted');
  const me = newOwner();
  store.claimRun(run.id, me);
  assert.equal(runState(store.run('r')!), 'running');
  assert.equal(store.heartbeat(run.id, me.token), true);
  assert.equal(store.heartbeat(run.id, 'someone-else'), false);
  // seen from another host only the heartbeat tells: a recent one is alive, an old one is not
  const elsewhere = { ...me, host: 'another-host.invalid' };
  assert.equal(runState({ status: 'running', owner: elsewhere, heartbeatAt: new Date().toISOString() }), 'running');
  assert.equal(runState({ status: 'running', owner: elsewhere, heartbeatAt: new Date(Date.now() - 3600_000).toISOString() }), 'interrupted');
  store.close();
});
