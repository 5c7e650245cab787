/**
 * Searches scored by command evaluators only, as they run at scale (src/pool/pipeline.ts): a
 * persistent Python evaluator (test/helpers/protocol_evaluator.py, numpy only) on evaluation
 * slots owned by the search's process, one per GPU of --gpus, fed by merges on the pool's
 * threads. The store's per-phase timestamps show the pipelining and that no slot ever scores two
 * candidates at once; Ctrl-C, fail-fast and SIGKILL leave no evaluator process behind (checked by
 * pid); a run killed with SIGKILL, its database taken back to schema 3, resumes to the run an
 * uninterrupted search makes.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { generateFamily } from '../src/bench/scale.ts';
import { runCli } from '../src/bench/faults.ts';
import { processAlive } from '../src/eval/children.ts';
import { RunStore, type CandidateRow } from '../src/store/index.ts';
import { EvomergeError } from '../src/errors.ts';
import { parseQueueUrl, runQueueWorker } from '../src/queue/index.ts';
import { startSearch } from './helpers/search.ts';
import { testRedis } from './helpers/redis.ts';
import { PYTHON, requireNumpy } from './helpers/numpy.ts';
import { tempDir } from './helpers/tmp.ts';

const EVALUATOR = fileURLToPath(new URL('./helpers/protocol_evaluator.py', import.meta.url));
const BIN = fileURLToPath(new URL('../src/cli/bin.mjs', import.meta.url));
const root = tempDir('evomerge-pipeline-');
let family: string[];
let redis: { url: string; prefix: string; stop: () => Promise<void> } | undefined;
after(async () => { await redis?.stop(); });

before(() => {
  requireNumpy();
  family = generateFamily(join(root, 'family'), { hidden: 64, intermediate: 128, layers: 2, vocab: 256, heads: 4, kvHeads: 2, shardBytes: 1e5 }, () => {});
});

let spaces = 0;
/** A DARE-TIES space over the tiny family, scored by the persistent evaluator with `env`. */
function space(env: Record<string, string>, o: { budget?: number; workers?: number; gpus?: number[]; timeout?: number } = {}): { path: string; pids: string } {
  const dir = join(root, `space${++spaces}`);
  const pids = join(dir, 'pids');
  mkdirSync(pids, { recursive: true });
  writeFileSync(join(dir, 'proto.yaml'), stringify({
    id: 'proto', version: 1, kind: 'command', split: 'validation', limit: 5, persistent: true, timeout_s: o.timeout ?? 30,
    command: [PYTHON, EVALUATOR, '--serve', '--gpu', '{gpu}', '--base', '{base}'], env: { EVAL_PID_DIR: pids, ...env }, metric: { name: 'score', direction: 'maximize' },
  }));
  const path = join(dir, 'space.yaml');
  writeFileSync(path, stringify({
    name: 'pipe', base: family[0], models: [{ name: 'a', path: family[1] }, { name: 'b', path: family[2] }], mode: 'ps',
    ps: { method: 'dare_ties', layers_per_group: 1, evolve: { weight: [0, 1], density: [0.2, 1] }, fixed: { lambda: 1 } },
    evaluators: [{ manifest: join(dir, 'proto.yaml'), weight: 1 }],
    optimizer: { id: 'cmaes', options: { popsize: 4, sigma0: 0.2 } }, budget: { evaluations: o.budget ?? 8 },
    workers: o.workers ?? 2, seed: 3, timeout_seconds: 60, ...(o.gpus ? { gpus: o.gpus } : {}),
  }));
  return { path, pids };
}

const evaluatorPids = (dir: string) => readdirSync(dir).map(Number);

async function allGone(pids: readonly number[], ms = 5000): Promise<number[]> {
  const t0 = Date.now();
  while (pids.some(processAlive) && Date.now() - t0 < ms) await new Promise((r) => setTimeout(r, 50));
  return pids.filter(processAlive);
}

function candidates(db: string): CandidateRow[] {
  const store = RunStore.open(db, { readonly: true });
  try {
    return store.candidates(store.run('pipe')!.id);
  } finally {
    store.close();
  }
}

function metric(db: string, id: number, name: string): number | null {
  const store = RunStore.open(db, { readonly: true });
  try {
    return store.metrics(id).find((m) => m.metric === name)?.value ?? null;
  } finally {
    store.close();
  }
}

test('with --gpus 0,1 each slot\'s program sees its own GPU, no slot scores two candidates at once, and candidate k+1 is merged while k is scored', async () => {
  const s = space({ EVAL_DELAY: '0.4' });
  const db = join(root, 'gpus', 'run.sqlite');
  const log: string[] = [];
  const r = await startSearch(s.path, { dbPath: db, gpus: ['0', '1'], onLog: (l) => log.push(l) });
  assert.equal(r.stages[0]!.failed, 0);
  assert.ok(log.some((l) => /2 merge threads, 2 evaluation slots \(gpu0, gpu1\), up to 2 merged ahead/.test(l)), log.join('\n'));
  const rows = candidates(db).filter((c) => c.state === 'done');
  assert.equal(rows.length, 8);
  // placement: CUDA_VISIBLE_DEVICES and {gpu} are the slot's, and both slots scored
  for (const c of rows) {
    const gpu = Number(c.phases!.slot!.slice(3));
    assert.equal(metric(db, c.id, 'cuda'), gpu, `candidate ${c.id} on ${c.phases!.slot}`);
    assert.equal(metric(db, c.id, 'gpu_arg'), gpu);
  }
  assert.deepEqual([...new Set(rows.map((c) => c.phases!.slot))].sort(), ['gpu0', 'gpu1']);
  // one persistent process per slot for the whole run, started on the space's base model ({base})
  assert.equal(new Set(rows.map((c) => metric(db, c.id, 'pid'))).size, 2);
  const baseMean = JSON.parse(spawnSync(PYTHON, [EVALUATOR, '--model', family[0]!], { encoding: 'utf8' }).stdout).score as number;
  for (const c of rows) assert.equal(metric(db, c.id, 'base_mean'), baseMean, `candidate ${c.id}: {base} is the space's base`);
  // never two candidates on one slot at once
  for (const slot of ['gpu0', 'gpu1']) {
    const on = rows.filter((c) => c.phases!.slot === slot).sort((a, b) => a.phases!.scoreStart! - b.phases!.scoreStart!);
    for (let i = 1; i < on.length; i++) assert.ok(on[i]!.phases!.scoreStart! >= on[i - 1]!.phases!.scoreEnd!, `${slot}: candidate ${on[i]!.id} started before ${on[i - 1]!.id} ended`);
  }
  // pipelining: within a generation, a candidate's merge starts before the one before it is scored
  for (const c of rows) {
    const p = c.phases!;
    assert.ok(p.mergeStart! <= p.mergeEnd! && p.mergeEnd! <= p.scoreStart! && p.scoreStart! < p.scoreEnd!, `phases in order for ${c.id}`);
    assert.ok(p.writeMs! >= 0 && p.writeMs! <= p.mergeEnd! - p.mergeStart! + 1);
  }
  const byId = [...rows].sort((a, b) => a.id - b.id);
  const overlapped = byId.filter((c, i) => i > 0 && c.generation === byId[i - 1]!.generation && c.phases!.mergeStart! < byId[i - 1]!.phases!.scoreEnd!);
  assert.ok(overlapped.length >= 4, `k+1 merged while k scored for ${overlapped.length} candidates`);
  // logs in the run folder, one per evaluator and slot, and no process left
  assert.ok(existsSync(join(root, 'gpus', 'evaluators', 'proto.gpu0.log')));
  assert.match(readFileSync(join(root, 'gpus', 'evaluators', 'proto.gpu1.log'), 'utf8'), /speaks protocol 1 \(test-capability\)/);
  assert.deepEqual(await allGone(evaluatorPids(s.pids)), []);
  assert.deepEqual(readdirSync('/dev/shm').filter((n) => n.includes(`-${process.pid}-`)), [], 'no candidate folder left in the tmpfs');
});

test('a crash mid-run fails that candidate only, and the next candidate is scored by a fresh process', async () => {
  const s = space({ EVAL_FAULTS: 'crash@3' }, { workers: 1 });
  const db = join(root, 'crash', 'run.sqlite');
  await startSearch(s.path, { dbPath: db, failFast: 0 });
  const rows = candidates(db);
  const failed = rows.filter((c) => c.state === 'failed');
  assert.deepEqual(failed.map((c) => c.id), [3]);
  assert.match(failed[0]!.error!, /exited with 3: .*crashing on purpose/);
  const pids = new Set(rows.filter((c) => c.state === 'done').map((c) => metric(db, c.id, 'pid')));
  assert.equal(pids.size, 2, 'one process before the crash, one after');
  assert.deepEqual(await allGone(evaluatorPids(s.pids)), []);
});

test('a fail-fast stop and a Ctrl-C stop the evaluators\' processes', async () => {
  const bad = space({ EVAL_FAULTS: 'error@*' });
  await assert.rejects(startSearch(bad.path, { dbPath: join(root, 'failfast', 'run.sqlite') }), (e: unknown) => e instanceof EvomergeError && e.code === 'E_FAIL_FAST' && /reported an error: the task could not be scored/.test(e.message));
  assert.ok(evaluatorPids(bad.pids).length >= 1);
  assert.deepEqual(await allGone(evaluatorPids(bad.pids)), []);

  const slow = space({ EVAL_DELAY: '0.5' }, { budget: 40 });
  const child = spawn(process.execPath, [BIN, 'search', slow.path, '--db', join(root, 'ctrlc', 'run.sqlite')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  const code = new Promise<number | null>((r) => child.on('close', r));
  await new Promise<void>((resolve) => child.stderr.on('data', (b: Buffer) => {
    stderr += b.toString();
    if (evaluatorPids(slow.pids).length >= 2 && /speaks protocol/.test(readLogs(join(root, 'ctrlc', 'evaluators')))) resolve();
  }));
  await new Promise((r) => setTimeout(r, 700));
  child.kill('SIGINT');
  assert.equal(await code, 130, stderr);
  assert.deepEqual(await allGone(evaluatorPids(slow.pids)), []);
});

function readLogs(dir: string): string {
  try {
    return readdirSync(dir).map((f) => readFileSync(join(dir, f), 'utf8')).join('\n');
  } catch {
    return '';
  }
}

test('a run killed with SIGKILL leaves no evaluator behind, and resumed (from a schema-3 database) ends as the uninterrupted run', async () => {
  const s = space({ EVAL_DELAY: '0.2' }, { budget: 12 });
  const ref = join(root, 'ref', 'run.sqlite');
  await startSearch(s.path, { dbPath: ref });
  const expected = candidates(ref).map((c) => ({ proposal: c.proposalId, recipeHash: c.recipeHash, state: c.state, fitness: c.fitness }));
  assert.equal(expected.filter((c) => c.state === 'done').length, 12);

  const db = join(root, 'killed', 'run.sqlite');
  const before = new Set(evaluatorPids(s.pids));
  const killed = await runCli(['search', s.path, '--db', db], { env: { EVOMERGE_BENCH_KILL: JSON.stringify({ phase: 'recorded', at: 5 }) } });
  assert.equal(killed.signal, 'SIGKILL', killed.stderr);
  const orphans = evaluatorPids(s.pids).filter((p) => !before.has(p));
  assert.equal(orphans.length, 2, 'two slots, one process each');
  // the owner ran no handler: each program sees its stdin close (or its parent change) and exits
  assert.deepEqual(await allGone(orphans, 8000), []);

  // the database as schema 3 wrote it: no phase columns
  const old = RunStore.open(db);
  for (const col of ['merge_start', 'merge_end', 'write_ms', 'score_start', 'score_end', 'slot']) old.db.exec(`ALTER TABLE candidates DROP COLUMN ${col}`);
  old.db.prepare(`UPDATE meta SET value = '3' WHERE key = 'schema_version'`).run();
  old.close();
  const resumed = await runCli(['resume', 'pipe', '--db', db]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.deepEqual(candidates(db).map((c) => ({ proposal: c.proposalId, recipeHash: c.recipeHash, state: c.state, fitness: c.fitness })), expected);
  assert.ok(candidates(db).filter((c) => c.phases!.slot !== null).length >= 7, 'the resumed candidates have their phases');
  assert.deepEqual(await allGone(evaluatorPids(s.pids)), []);
});

test('a queue worker with --gpus 0,1 scores a command-only run on slots of its own, one per GPU, pipelined with its merges', async () => {
  redis = await testRedis();
  const s = space({ EVAL_DELAY: '0.3' });
  const url = parseQueueUrl(redis.url);
  const controller = new AbortController();
  const logs: string[] = [];
  const worker = runQueueWorker({ url, concurrency: 1, gpus: ['0', '1'], logDir: join(root, 'worker-logs'), lockSeconds: 10, pollMs: 200, signal: controller.signal, onLog: (l) => logs.push(l) });
  const db = join(root, 'queued', 'run.sqlite');
  try {
    const r = await startSearch(s.path, { dbPath: db, queue: { url, slots: 4 } });
    assert.equal(r.stages[0]!.failed, 0);
  } finally {
    controller.abort();
    await worker;
  }
  assert.ok(logs.some((l) => /1 merge thread, evaluation slots gpu0, gpu1, 2 merged ahead at most/.test(l)), logs.join('\n'));
  const rows = candidates(db).filter((c) => c.state === 'done');
  assert.equal(rows.length, 8);
  for (const c of rows) assert.equal(metric(db, c.id, 'cuda'), Number(c.phases!.slot!.slice(3)), `candidate ${c.id}`);
  assert.deepEqual([...new Set(rows.map((c) => c.phases!.slot))].sort(), ['gpu0', 'gpu1']);
  const byId = [...rows].sort((a, b) => a.id - b.id);
  assert.ok(byId.some((c, i) => i > 0 && c.phases!.mergeStart! < byId[i - 1]!.phases!.scoreEnd!), 'a merge ran while the worker\'s slots scored');
  assert.ok(existsSync(join(root, 'worker-logs', 'pipe-stage0', 'proto.gpu1.log')));
  assert.deepEqual(await allGone(evaluatorPids(s.pids)), []);
});
