import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { Job, Queue } from 'bullmq';
import { RunStore } from '../src/store/index.ts';
import { startSearch } from './helpers/search.ts';
import { zooBuilder } from '../src/zoo/index.ts';
import { contextKey, jobIdFor, parseQueueUrl, queueNameFor, runQueueWorker, verifySources, type JobResult, type QueueJobData, type StageContext } from '../src/queue/index.ts';
import { heartbeat, serverTimeMs } from '../src/queue/protocol.ts';
import { redisClient } from '../src/queue/url.ts';
import { tempDir } from './helpers/tmp.ts';
import { testRedis } from './helpers/redis.ts';

const dir = tempDir();
const zoo = join(dir, 'vision');
const bin = new URL('../src/cli/bin.mjs', import.meta.url).pathname;
let redis!: { url: string; prefix: string; stop: () => Promise<void> };

before(async () => {
  redis = await testRedis();
  await zooBuilder('vision').build(zoo, { seed: 0, small: true });
});
after(async () => { await (redis as typeof redis | undefined)?.stop(); });

/**
 * The vision PS space, plus a command evaluator that takes 0.4 s and scores a constant, so
 * that a worker killed right after it starts a candidate is surely killed mid-evaluation.
 */
function space(name: string): string {
  const manifest = join(dir, 'slow.evaluator.yaml');
  writeFileSync(manifest, stringify({ id: 'slow', version: 1, kind: 'command', family: 'any', split: 'validation', command: [process.execPath, '-e', 'setTimeout(() => console.log(JSON.stringify({ score: 0.25 })), 400)', '{model}'], timeout_s: 30, metric: { name: 'score', direction: 'maximize' } }));
  const tasks = ['digits', 'permuted', 'inverted'].map((task) => ({ task, weight: 1 }));
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify({
    name, zoo, mode: 'ps',
    ps: { method: 'ties', layers_per_group: 1, evolve: { weight: [0, 1.5], density: [0.1, 1] }, fixed: { lambda: 1 } },
    optimizer: { id: 'cmaes', options: { sigma0: 0.25, popsize: 6 } },
    evaluators: [...tasks, { manifest, weight: 1 }],
    budget: { evaluations: 14 }, seed: 5, workers: 2, timeout_seconds: 60, backend: 'wasm',
  }));
  return path;
}

function snapshot(db: string, runName: string) {
  const store = RunStore.open(db, { readonly: true });
  const run = store.run(runName)!;
  const all = store.candidates(run.id);
  const rows = all.map((c) => ({ id: c.proposalId, genome: c.genome, state: c.state, fitness: c.fitness }));
  const best = store.best(run.id, 1)[0]!;
  const out = { run, rows, candidates: all, best: { recipe: best.recipe, fitness: best.fitness }, integrity: store.integrityCheck() };
  store.close();
  return out;
}

/** A CLI process whose stderr lines are kept and can be waited for. */
function cli(args: string[]) {
  const proc: ChildProcess = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters: Array<{ test: (l: string[]) => boolean; resolve: () => void }> = [];
  let out = '';
  let partial = '';
  proc.stdout!.on('data', (d) => { out += d; });
  proc.stderr!.on('data', (d) => {
    partial += d;
    const parts = partial.split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
    for (const w of [...waiters]) if (w.test(lines)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(); }
  });
  const exited = new Promise<number | null>((r) => proc.on('exit', (c) => r(c)));
  return {
    proc, lines, exited, stdout: () => out,
    /** Resolves once the collected lines satisfy `test` (or rejects after `ms`). */
    until(test: (l: string[]) => boolean, ms = 60_000, what = 'a line'): Promise<void> {
      if (test(lines)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}; stderr:\n${lines.slice(-20).join('\n')}`)), ms);
        waiters.push({ test, resolve: () => { clearTimeout(t); resolve(); } });
      });
    },
  };
}

const count = (lines: string[], re: RegExp) => lines.filter((l) => re.test(l)).length;
const finishedIds = (lines: string[]) => lines.map((l) => /finished (candidate-\d+)/.exec(l)?.[1]).filter((x): x is string => !!x);

test('queue URLs are parsed with their database and prefix, and bad ones are refused with the expected form', () => {
  const q = parseQueueUrl('redis://user:secret@10.0.0.5:6380/2?prefix=lab');
  assert.deepEqual(q.connection, { host: '10.0.0.5', port: 6380, db: 2, username: 'user', password: 'secret' });
  assert.equal(q.prefix, 'lab');
  assert.doesNotMatch(q.display, /secret/);
  assert.equal(parseQueueUrl('redis://h').connection.port, 6379);
  assert.equal(parseQueueUrl('rediss://h').connection.tls !== undefined, true);
  for (const bad of ['http://h', 'redis://h/x', 'not a url', 'redis://h?db=1']) {
    assert.throws(() => parseQueueUrl(bad), (e: Error & { code?: string }) => e.code === 'E_QUEUE_URL' && /redis:\/\/\[user:password@\]host/.test(e.message), bad);
  }
});

test('an unreachable Redis stops a search within seconds with a clear message and creates no run', () => {
  const db = join(dir, 'unreachable', 'run.sqlite');
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [bin, 'search', space('unreachable'), '--db', db, '--queue', 'redis://127.0.0.1:1'], { encoding: 'utf8', timeout: 60_000 });
  const seconds = (performance.now() - t0) / 1000;
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /cannot reach Redis at redis:\/\/127\.0\.0\.1:1.*nothing was started/is);
  // the bound is the CLI's start plus one connection attempt, not a retry loop (which never ends);
  // generous, since a loaded machine makes the start alone take seconds
  assert.ok(seconds < 30, `took ${seconds} s`);
  assert.equal(existsSync(db), false, 'no run database was created');
});

test('a worker whose copy of a source differs from the run fails the job with the reason and evaluates nothing', async () => {
  const src = join(zoo, 'digits');
  const file = join(src, 'model.safetensors');
  const good: StageContext = {
    run: 'mismatch', stage: 0, sources: [{ path: src, files: { [file]: '' } }], evaluators: [], backend: 'wasm', objective: 'weighted-sum', allowTestSplit: false, timeoutMs: 0,
  };
  const { createHash } = await import('node:crypto');
  const { readFileSync } = await import('node:fs');
  good.sources[0] = { path: src, files: { [file]: createHash('sha256').update(readFileSync(file)).digest('hex') } };
  await verifySources(good);
  const bad: StageContext = { ...good, sources: [{ path: src, files: { [file]: 'f'.repeat(64) } }] };
  await assert.rejects(verifySources(bad), (e: Error & { code?: string }) => e.code === 'E_QUEUE_SOURCE_MISMATCH' && e.message.includes(file) && /SHA-256/.test(e.message));

  // through a queue: the registry's context is sound, the job's is not
  const url = parseQueueUrl(redis.url);
  const queueName = queueNameFor({ name: 'mismatch', createdAt: new Date().toISOString(), seed: 1 });
  const client = redisClient(url);
  await client.connect();
  await heartbeat(client, url.prefix, { run: 'mismatch', queue: queueName, contextKey: contextKey(good), context: good, owner: 'test' });
  const controller = new AbortController();
  const logs: string[] = [];
  const worker = runQueueWorker({ url, concurrency: 1, run: 'mismatch', lockSeconds: 5, pollMs: 200, signal: controller.signal, onLog: (l) => logs.push(l) });
  const queue = new Queue<QueueJobData, JobResult>(queueName, { connection: { ...url.connection, maxRetriesPerRequest: null }, prefix: url.prefix });
  try {
    await queue.add('candidate', { v: 1, run: 'mismatch', stage: 0, candidate: 1, proposalId: 'p', contextKey: contextKey(bad), context: bad, task: { kind: 'dfs', sources: [src], steps: [], embeddings: 0, head: 0 } }, { jobId: jobIdFor(1), attempts: 1 });
    let state = '';
    for (let i = 0; i < 100 && state !== 'failed'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      state = await (await Job.fromId(queue, jobIdFor(1)))!.getState();
    }
    const job = (await Job.fromId(queue, jobIdFor(1)))!;
    assert.equal(state, 'failed', logs.join('\n'));
    assert.match(job.failedReason, /SHA-256 .* but run 'mismatch' recorded f{16}/);
    assert.ok(logs.some((l) => /refusing run 'mismatch'/.test(l)), logs.join('\n'));
  } finally {
    controller.abort();
    const summary = await worker;
    assert.equal(summary.completed, 0);
    await queue.close();
    client.disconnect();
  }
});

test('owner and two workers: a worker killed mid-candidate and a killed owner lose nothing, score each candidate once, and end as a local run does', async () => {
  const path = space('dist');
  const ref = join(dir, 'ref', 'run.sqlite');
  await startSearch(path, { dbPath: ref, runName: 'dist' });
  const expected = snapshot(ref, 'dist');

  const db = join(dir, 'dist', 'run.sqlite');
  const workerArgs = ['worker', '--queue', redis.url, '--concurrency', '1', '--lock-seconds', '3', '--run', 'dist'];
  const w1 = cli(workerArgs);
  const w2 = cli(workerArgs);
  const workers = [w1, w2];
  const owner = cli(['search', path, '--db', db, '--queue', redis.url, '--queue-slots', '2']);
  try {
    // 1. SIGKILL the first worker right after it starts its second candidate (each takes at least 0.4 s)
    await w1.until((l) => count(l, /evaluating candidate-/) >= 2, 60_000, 'worker 1 to start a second candidate');
    const killedJob = /evaluating (candidate-\d+)/.exec(w1.lines.filter((l) => /evaluating candidate-/.test(l)).pop()!)![1]!;
    w1.proc.kill('SIGKILL');
    await w1.exited;
    assert.ok(!finishedIds(w1.lines).includes(killedJob), 'the killed worker had not finished its candidate');
    const w3 = cli(workerArgs);
    workers.push(w3);

    // 2. SIGKILL the owner once a few more results are in, while worker 2 holds a candidate (it
    //    started one it has not finished), so that candidate is surely in flight: waiting for the
    //    fourth result alone could catch the owner between results with nothing dispatched
    const busy = (l: string[]) => count(l, /evaluating candidate-/) > count(l, /finished candidate-/);
    await w2.until((l) => count(l, /finished candidate-/) >= 4 && busy(l), 60_000, 'four results from worker 2 and a fifth candidate started');
    owner.proc.kill('SIGKILL');
    await owner.exited;
    const atKill = snapshot(db, 'dist');
    const running = atKill.candidates.filter((c) => c.state === 'running').map((c) => jobIdFor(c.id));
    assert.ok(running.length > 0, 'candidates were in flight when the owner died');
    // the workers finish them while the owner is away
    const finishedAll = () => [w1, w2, w3].flatMap((w) => finishedIds(w.lines));
    await w2.until(() => running.every((j) => finishedAll().includes(j)), 60_000, 'the in-flight candidates to finish without the owner');

    // 3. resume with no --queue: it reattaches to the run's queue and picks up those results
    const resumed = cli(['resume', 'dist', '--db', db]);
    const code = await resumed.exited;
    assert.equal(code, 0, resumed.lines.join('\n'));
    assert.ok(resumed.lines.some((l) => /reattaching to the run's queue/.test(l)));

    const got = snapshot(db, 'dist');
    assert.equal(got.integrity, 'ok');
    const differ = got.candidates.filter((c, i) => JSON.stringify(got.rows[i]) !== JSON.stringify(expected.rows[i])).map((c) => ({ id: c.id, proposal: c.proposalId, state: c.state, fitness: c.fitness, error: c.error, worker: c.worker }));
    assert.equal(got.rows.length, expected.rows.length, 'as many candidates as the local run');
    assert.deepEqual(differ, [], `candidates that differ from the local run (killed job ${killedJob}, in flight at the owner's death ${running.join(', ')})`);
    assert.deepEqual(got.rows, expected.rows, 'same candidates and scores as the local run');
    assert.deepEqual(got.best, expected.best, 'same best recipe as the local run');

    // every candidate evaluated exactly once: one finished evaluation per job, one job per scored candidate
    // (proposals past the budget are not evaluated, here as in the local run)
    const evaluatedIds = got.candidates.filter((c) => c.reusedFrom === null && (c.state === 'done' || c.state === 'failed')).map((c) => jobIdFor(c.id)).sort();
    const finished = finishedAll().sort();
    assert.deepEqual(finished, evaluatedIds);
    // the killed worker's candidate went to another worker through BullMQ's stalled-job check
    const killed = got.candidates.find((c) => jobIdFor(c.id) === killedJob)!;
    assert.equal(killed.state, 'done');
    assert.ok(!killed.worker!.includes(`:${w1.proc.pid}/`), `${killed.worker} is not the killed worker`);
    assert.ok(running.every((j) => !resumed.lines.some((l) => l.includes(j))));
  } finally {
    for (const w of workers) if (w.proc.exitCode === null) w.proc.kill('SIGTERM');
    if (owner.proc.exitCode === null) owner.proc.kill('SIGKILL');
    await Promise.all(workers.map((w) => w.exited));
  }
});
