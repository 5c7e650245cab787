/**
 * `evomerge worker`, the queue's consumer: takes candidates from the queues of live runs (found
 * in the registry the owners keep beating), evaluates them with the same handler as a local pool
 * (a pool of src/candidate/handler.ts in this process, src/pool/candidates.ts, so a native tfjs
 * backend keeps its one thread and BullMQ's lock renewal keeps running while a candidate is
 * evaluated), and returns the metrics.
 *
 * Before taking a run's jobs the worker reads the sources from the paths the run names and
 * checks each file against the SHA-256 the run recorded; a difference makes it refuse the run
 * (a job that reaches it anyway fails with the reason, and BullMQ retries it elsewhere).
 * A worker killed mid-candidate leaves a job whose lock expires: BullMQ's stalled-job check,
 * run by the other workers, puts it back for another worker.
 */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { Worker, type Job } from 'bullmq';
import { checkpointFiles, chooseCandidateDir, loadSourceModel, mergedSourceModel, sha256File, slotSpecs, tensorBytes, type CandidateOutcome, type CandidateTask, type SourceModel, type SourceModels, type WorkerData } from '../candidate/index.ts';
import { loadManifest } from '../eval/index.ts';
import { candidatePool, pipelinedRunner, threadsFor } from '../pool/index.ts';
import type { BackendChoice } from '../models/index.ts';
import { SourceMismatchError } from './errors.ts';
import { liveRuns, type JobResult, type QueueJobData, type RegistryEntry, type StageContext } from './protocol.ts';
import { checkReachable, redisClient, type QueueUrl } from './url.ts';

/**
 * A stall (lock not renewed in time) means the worker died or was starved on a loaded machine,
 * never that the candidate is bad: evaluation errors come back as results and a crashed thread
 * as a 'crash' outcome from the pool. BullMQ fails a job for good once it stalls more than
 * maxStalledCount times (moveStalledJobsToWait-9.lua, default 1), which would record a sound
 * candidate as failed, so the limit is put out of reach and a stalled job is always re-run.
 * The cost: a candidate that kills every worker process (out of memory) keeps being retried,
 * which the worker logs show; the owner also re-queues jobs failed by other workers' limits.
 */
const MAX_STALLS = 1_000_000;

export interface QueueWorkerOptions {
  url: QueueUrl;
  /** Candidates evaluated at once by this process (capped at one for native tfjs backends); with command evaluators only, the merge threads. */
  concurrency: number;
  /** Command evaluators only: one evaluation slot per GPU id (default: `concurrency` slots without a GPU). */
  gpus?: string[] | null;
  /** Command evaluators only: where candidate folders go (default: /dev/shm when they fit, else the temporary folder). */
  candidateDir?: string | null;
  /** Folder of the evaluators' stderr logs (default: evomerge-worker-logs in the current folder). */
  logDir?: string;
  /** Overrides the run's backend on this machine. */
  backend?: BackendChoice;
  /** Serve only this run. */
  run?: string;
  /** BullMQ lock: a job whose worker stops renewing it for this long is given to another worker. */
  lockSeconds?: number;
  /** How often to look for new runs. */
  pollMs?: number;
  signal?: AbortSignal;
  onLog?: (line: string) => void;
}

export interface QueueWorkerSummary {
  completed: number;
  refused: string[];
}

/** Check this machine's copy of each checkpoint against the run's fingerprints; throws SourceMismatchError. */
export async function verifySources(context: StageContext, where = `${hostname()}:${process.pid}`): Promise<void> {
  for (const s of context.sources) {
    if (!('files' in s)) continue;
    if (!existsSync(s.path)) throw new SourceMismatchError(`worker ${where}: source ${s.path} of run '${context.run}' does not exist on this machine; workers read sources from the paths the search space names (a shared filesystem or the same files at the same paths)`);
    const files = checkpointFiles(s.path);
    const expected = Object.keys(s.files).sort();
    if (JSON.stringify([...files].sort()) !== JSON.stringify(expected)) {
      throw new SourceMismatchError(`worker ${where}: source ${s.path} has the files ${files.join(', ')} but run '${context.run}' recorded ${expected.join(', ')}; give this machine the same checkpoint`);
    }
    for (const file of files) {
      // streamed, so the event loop (and BullMQ's lock renewal) keeps running on large checkpoints
      const sha = await sha256File(file);
      if (sha !== s.files[file]) {
        throw new SourceMismatchError(`worker ${where}: ${file} has SHA-256 ${sha.slice(0, 16)}... but run '${context.run}' recorded ${s.files[file]!.slice(0, 16)}...; this machine's copy differs from the owner's, so its scores would mix different models. Copy the owner's file here (or fix the shared mount); this worker will not evaluate the run`);
      }
    }
  }
  for (const e of context.evaluators) {
    if (!existsSync(e.manifest)) throw new SourceMismatchError(`worker ${where}: evaluator manifest ${e.manifest} of run '${context.run}' does not exist on this machine`);
    const sha = await sha256File(e.manifest);
    if (sha !== e.sha256) throw new SourceMismatchError(`worker ${where}: evaluator manifest ${e.manifest} differs from the one run '${context.run}' uses (SHA-256 ${sha.slice(0, 16)}... against ${e.sha256.slice(0, 16)}...); give this machine the same manifest`);
  }
}

interface Lane {
  /** Candidates it takes at once (BullMQ's concurrency for the run's queue). */
  threads: number;
  run(task: CandidateTask, timeoutMs: number): Promise<CandidateOutcome>;
  close(): Promise<void>;
  busy: number;
  lastUsed: number;
}

/** Evaluation lanes, one per distinct stage context; sources are read once per path and fingerprint. */
class Lanes {
  private readonly lanes = new Map<string, Promise<Lane>>();
  private readonly sources = new Map<string, SourceModel>();
  readonly refused = new Map<string, Error>();

  constructor(private readonly o: { concurrency: number; backend?: BackendChoice; gpus?: string[] | null; candidateDir?: string | null; logDir: string; log: (l: string) => void }) {}

  get(key: string, context: StageContext): Promise<Lane> {
    const no = this.refused.get(key);
    if (no) return Promise.reject(no);
    let lane = this.lanes.get(key);
    if (!lane) {
      lane = this.build(context);
      this.lanes.set(key, lane);
      lane.catch((err: Error) => {
        this.lanes.delete(key);
        if (err instanceof SourceMismatchError) this.refused.set(key, err);
      });
    }
    return lane;
  }

  private async build(c: StageContext): Promise<Lane> {
    await verifySources(c);
    const sources: SourceModels = {};
    for (const s of c.sources) {
      if ('files' in s) {
        const id = `${s.path}\n${JSON.stringify(s.files)}`;
        let m = this.sources.get(id);
        if (!m) {
          m = loadSourceModel(s.path);
          this.sources.set(id, m);
        }
        sources[s.path] = m;
      } else {
        sources[s.path] = mergedSourceModel(s.path, s.merged, sources);
      }
    }
    const backend = this.o.backend ?? c.backend;
    const data: WorkerData = { sources, evaluators: c.evaluators.map(({ id, manifest, weight }) => ({ id, manifest, weight })), backend, objective: c.objective, allowTestSplit: c.allowTestSplit, ...(c.baseCheckpoint ? { baseCheckpoint: c.baseCheckpoint } : {}) };
    const commandsOnly = c.evaluators.every((e) => loadManifest(e.manifest).kind === 'command');
    if (commandsOnly) {
      // as a local search does: merges on threads pipelined with scoring on this process's slots
      const slots = slotSpecs(this.o.gpus, this.o.concurrency);
      const ahead = Math.max(slots.length, this.o.concurrency);
      const first = c.sources.find((s) => 'files' in s);
      const folderBytes = first ? Object.values(sources[first.path]!.tensors).reduce((n, t) => n + tensorBytes(t), 0) : 0;
      const where = chooseCandidateDir({ override: this.o.candidateDir, folderBytes, folders: slots.length + ahead });
      const runner = pipelinedRunner({ data, workers: this.o.concurrency, timeoutMs: c.timeoutMs, evaluation: { slots, ahead, candidateDir: where.dir, logDir: join(this.o.logDir, `${c.run}-stage${c.stage}`) } });
      this.o.log(`run '${c.run}' stage ${c.stage}: sources verified (${c.sources.length}), ${this.o.concurrency} merge thread${this.o.concurrency === 1 ? '' : 's'}, evaluation slots ${slots.map((s) => s.name).join(', ')}, ${ahead} merged ahead at most, candidate folders in ${where.dir}`);
      return { threads: runner.threads, run: (task) => runner.run(task, { id: -1, proposalId: '' }), close: () => runner.close(), busy: 0, lastUsed: Date.now() };
    }
    if (this.o.gpus?.length) this.o.log(`note: --gpus places command evaluators; run '${c.run}' has built-in evaluators, which run on this process's ${backend} backend`);
    // the job gives each candidate's time limit (the run's), not the pool
    const pool = candidatePool({ data, workers: this.o.concurrency });
    const threads = pool.threads;
    this.o.log(`run '${c.run}' stage ${c.stage}: sources verified (${c.sources.length}), ${threads} evaluation thread${threads === 1 ? '' : 's'} on backend ${backend}`);
    return { threads, run: (task, timeoutMs) => pool.run(task, { timeoutMs }) as Promise<CandidateOutcome>, close: () => pool.close(), busy: 0, lastUsed: Date.now() };
  }

  /** Close lanes idle for `idleMs` (a finished stage's pool and its threads). */
  async sweep(idleMs: number): Promise<void> {
    for (const [key, p] of [...this.lanes]) {
      const lane = await p.catch(() => null);
      if (lane && lane.busy === 0 && Date.now() - lane.lastUsed > idleMs) {
        this.lanes.delete(key);
        await lane.close();
      }
    }
  }

  async close(): Promise<void> {
    for (const p of this.lanes.values()) await (await p.catch(() => null))?.close();
    this.lanes.clear();
  }
}

/** Serve live runs until `signal` aborts; returns what was done. */
export async function runQueueWorker(o: QueueWorkerOptions): Promise<QueueWorkerSummary> {
  const log = o.onLog ?? (() => {});
  await checkReachable(o.url);
  const me = `${hostname()}:${process.pid}`;
  const lanes = new Lanes({ concurrency: o.concurrency, backend: o.backend, gpus: o.gpus, candidateDir: o.candidateDir, logDir: resolve(o.logDir ?? 'evomerge-worker-logs'), log });
  const native = o.backend === 'tensorflow' || o.backend === 'tensorflow-gpu';
  const concurrency = threadsFor(native ? 'native' : 'wasm', o.concurrency);
  const lockMs = Math.round((o.lockSeconds ?? 30) * 1000);
  const client = redisClient(o.url);
  await client.connect();
  const workers = new Map<string, Worker<QueueJobData, JobResult>>();
  const refusedRuns = new Set<string>();
  let completed = 0;
  let lastError = 0;
  const onError = (err: Error) => {
    if (Date.now() - lastError > 10_000) log(`queue ${o.url.display}: ${err.message}`);
    lastError = Date.now();
  };

  const processor = async (job: Job<QueueJobData, JobResult>): Promise<JobResult> => {
    const d = job.data;
    log(`evaluating ${job.id} (run '${d.run}', stage ${d.stage}, attempt ${job.attemptsMade + 1})`);
    let lane: Lane;
    try {
      lane = await lanes.get(d.contextKey, d.context);
    } catch (err) {
      // a refusal (sources differ here) fails this attempt with the reason, BullMQ retries the
      // job elsewhere, and this worker stops taking the run's jobs
      if (err instanceof SourceMismatchError && !refusedRuns.has(job.queueName)) {
        refusedRuns.add(job.queueName);
        log(`refusing run '${d.run}': ${err.message}`);
        const w = workers.get(job.queueName);
        workers.delete(job.queueName);
        setImmediate(() => void w?.close().catch(onError));
      }
      throw err;
    }
    lane.busy++;
    try {
      const outcome = await lane.run(d.task, d.context.timeoutMs);
      const worker = outcome.worker === null ? me : `${me}/${outcome.worker}`;
      // 'finished' is logged once BullMQ has accepted the result (the 'completed' event): a
      // worker that lost its lock meanwhile has its result refused, and the re-run counts
      log(`evaluated ${job.id} (run '${d.run}'): ${outcome.ok ? `fitness ${outcome.value.fitness}` : `${outcome.kind}: ${outcome.error}`}`);
      return outcome.ok ? { ok: true, value: outcome.value, ms: outcome.ms, worker } : { ok: false, kind: outcome.kind, error: outcome.error, ms: outcome.ms, worker };
    } finally {
      lane.busy--;
      lane.lastUsed = Date.now();
    }
  };

  const attach = async (entry: RegistryEntry) => {
    if (workers.has(entry.queue) || refusedRuns.has(entry.queue)) return;
    let lane: Lane;
    try {
      // verify and read the sources before taking a job, so no job waits behind a slow load
      lane = await lanes.get(entry.contextKey, entry.context);
    } catch (err) {
      refusedRuns.add(entry.queue);
      log(`refusing run '${entry.run}': ${(err as Error).message}`);
      return;
    }
    const w = new Worker<QueueJobData, JobResult>(entry.queue, processor, {
      // a pipelined lane takes more jobs than it has slots, so merges run while the slots score
      connection: { ...o.url.connection, maxRetriesPerRequest: null }, prefix: o.url.prefix, concurrency: Math.max(concurrency, lane.threads),
      lockDuration: lockMs, stalledInterval: lockMs, maxStalledCount: MAX_STALLS, name: me,
    });
    // lock errors on completion say that a result was refused: always worth a line
    w.on('error', (err) => {
      if (/could not renew lock/i.test(err.message)) log(`${err.message}: this worker was too slow to renew it; if the job stalls, another worker re-runs it`);
      else if (/lock|not in the active state/i.test(err.message)) log(`result refused by the queue (${err.message}); the job was or will be re-run`);
      else onError(err);
    });
    w.on('failed', (job, err) => log(`attempt at ${job?.id} failed: ${err.message}`));
    w.on('completed', (job, r) => {
      completed++;
      log(`finished ${job.id} (run '${job.data.run}'): ${r.ok ? `fitness ${r.value.fitness}` : `${r.kind}: ${r.error}`}`);
    });
    workers.set(entry.queue, w);
    log(`taking candidates of run '${entry.run}' (queue ${entry.queue}, owner ${entry.owner}), ${Math.max(concurrency, lane.threads)} at a time`);
  };

  const poll = async () => {
    const live = await liveRuns(client, o.url.prefix, 10 * 60_000);
    for (const e of live) if (!o.run || e.run === o.run) await attach(e);
    // a queue left the registry (its run ended): stop taking from it
    const names = new Set(live.map((e) => e.queue));
    for (const [q, w] of [...workers]) {
      if (!names.has(q)) {
        workers.delete(q);
        await w.close();
      }
    }
    await lanes.sweep(60_000);
  };

  log(`worker ${me} on ${o.url.display}${o.run ? ` for run '${o.run}'` : ''}, ${concurrency} candidate${concurrency === 1 ? '' : 's'} at a time; waiting for runs`);
  try {
    while (!o.signal?.aborted) {
      await poll().catch(onError);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, o.pollMs ?? 2000);
        o.signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
      });
    }
  } finally {
    // let active candidates finish (Ctrl-C); their results still reach the owner
    await Promise.allSettled([...workers.values()].map((w) => w.close()));
    await lanes.close();
    client.disconnect();
  }
  return { completed, refused: [...refusedRuns] };
}
