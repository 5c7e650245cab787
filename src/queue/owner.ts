/**
 * The owner's side of a distributed stage: a CandidateRunner that puts each candidate on the
 * run's BullMQ queue and resolves with the result a worker returned. The search loop stays as it is
 * (it records results as they arrive and tells the optimizer in proposal order), so a queue
 * run makes exactly the candidates and the best recipe a local pool makes with the same seed.
 *
 * Idempotence: the job id is derived from the candidate id, and finished jobs are kept. When a
 * resumed owner dispatches a candidate again, adding the job is a no-op and a job that finished
 * while the owner was away gives its stored result instead of running again.
 */
import { hostname } from 'node:os';
import { Job, Queue, QueueEvents } from 'bullmq';
import type { Recipe } from '../recipe/index.ts';
import { sha256File, type CandidateRunner, type CandidateScore, type CandidateTask, type TaskOutcome, type WorkerData } from '../candidate/index.ts';
import type { RunRow, RunStore } from '../store/index.ts';
import { InputError } from '../errors.ts';
import { contextKey, heartbeat, jobIdFor, queueNameFor, unregister, type ContextSource, type JobResult, type QueueJobData, type StageContext } from './protocol.ts';
import { redisClient, type QueueUrl } from './url.ts';

export interface QueueStageOptions {
  url: QueueUrl;
  store: RunStore;
  run: RunRow;
  stage: number;
  data: WorkerData;
  timeoutMs: number;
  /** Candidates outstanding on the queue at once (the sum of the workers' concurrency is a good value). */
  slots: number;
  /** Attempts per job: a failed attempt (a worker that refused its sources) goes to another worker. */
  attempts?: number;
  onLog?: (line: string) => void;
}

export interface QueueStage {
  queueName: string;
  runner: CandidateRunner;
}

const KEEP_SECONDS = 14 * 24 * 3600;
const HEARTBEAT_MS = 5000;
const POLL_MS = 2000;
/** BullMQ's failedReason for a job past the worker's maxStalledCount (moveStalledJobsToWait-9.lua). */
export const STALL_LIMIT_REASON = 'job stalled more than allowable limit';

/** What a remote worker needs to rebuild this stage's sources and evaluators, checked by hashes. */
export async function stageContext(store: RunStore, run: RunRow, stage: number, data: WorkerData, timeoutMs: number): Promise<StageContext> {
  const files = Object.entries(run.fingerprints);
  const real: ContextSource[] = [];
  const merged: ContextSource[] = [];
  for (const [path, model] of Object.entries(data.sources)) {
    const m = /^ps-best:candidate-(\d+)$/.exec(path);
    if (m && model.format === 'merged') {
      const c = store.candidate(Number(m[1]));
      if (!c) throw new InputError('E_QUEUE_CONTEXT', `source ${path} names candidate ${m[1]}, which the run does not have`);
      merged.push({ path, merged: c.recipe as Recipe });
      continue;
    }
    const own = Object.fromEntries(files.filter(([f]) => f === path || f.startsWith(`${path}/`)));
    if (Object.keys(own).length === 0) throw new InputError('E_QUEUE_CONTEXT', `the run recorded no fingerprint for source ${path}, so remote workers could not check their copy of it`);
    real.push({ path, files: own });
  }
  return {
    run: run.name, stage, sources: [...real, ...merged],
    evaluators: await Promise.all(data.evaluators.map(async (e) => ({ ...e, sha256: await sha256File(e.manifest) }))),
    backend: data.backend, objective: data.objective, allowTestSplit: data.allowTestSplit, ...(data.baseCheckpoint ? { baseCheckpoint: data.baseCheckpoint } : {}), timeoutMs,
  };
}

function toOutcome(r: JobResult): TaskOutcome<CandidateScore, string> {
  return r.ok ? { ok: true, value: r.value, ms: r.ms, worker: r.worker } : { ok: false, kind: r.kind, error: r.error, ms: r.ms, worker: r.worker };
}

export async function openQueueStage(o: QueueStageOptions): Promise<QueueStage> {
  const log = o.onLog ?? (() => {});
  const queueName = queueNameFor(o.run);
  const context = await stageContext(o.store, o.run, o.stage, o.data, o.timeoutMs);
  const key = contextKey(context);
  const connection = { ...o.url.connection, maxRetriesPerRequest: null };
  const queue = new Queue<QueueJobData, JobResult>(queueName, { connection, prefix: o.url.prefix });
  const events = new QueueEvents(queueName, { connection, prefix: o.url.prefix });
  const client = redisClient(o.url);
  let lastError = 0;
  const onError = (err: Error) => {
    // ioredis reconnects by itself; say so at most every 10 s instead of once per retry
    if (Date.now() - lastError > 10_000) log(`queue ${o.url.display}: ${err.message} (retrying)`);
    lastError = Date.now();
  };
  queue.on('error', onError);
  events.on('error', onError);
  await Promise.all([queue.waitUntilReady(), events.waitUntilReady(), client.connect()]);

  const owner = `${hostname()}:${process.pid}`;
  const beat = () => heartbeat(client, o.url.prefix, { run: o.run.name, queue: queueName, contextKey: key, context, owner }).catch((e: Error) => onError(e));
  await beat();
  const beatTimer = setInterval(beat, HEARTBEAT_MS);

  const waiting = new Map<string, (r: TaskOutcome<CandidateScore, string>) => void>();
  let busyMs = 0;
  const startedAt = performance.now();

  /** Settle a job's waiter if the job is finished for good (a failed attempt with retries left is not). */
  const check = async (jobId: string) => {
    if (!waiting.has(jobId)) return;
    // the state first, then the job: BullMQ finishes a job in one script (state and return value
    // together), so a job read after a finished state has its result. Read the other way round,
    // a job fetched while active and found completed a moment later looked like a completion
    // without a result, and a sound candidate was recorded failed (seen in bench queue)
    const state = await queue.getJobState(jobId);
    if (state !== 'completed' && state !== 'failed') return;
    const job = await Job.fromId<QueueJobData, JobResult>(queue, jobId);
    if (!job) return;
    let outcome: TaskOutcome<CandidateScore, string> | null = null;
    if (state === 'completed') {
      const r = job.returnvalue;
      outcome = r && typeof r === 'object' ? toOutcome(r) : { ok: false, kind: 'error', error: `job ${jobId} completed without a result`, ms: 0, worker: null };
    } else if (state === 'failed') {
      if (job.failedReason === STALL_LIMIT_REASON) {
        await requeueStalled(job);
        return;
      }
      outcome = { ok: false, kind: 'error', error: `queue: ${job.failedReason ?? 'failed'} (after ${job.attemptsMade} attempt${job.attemptsMade === 1 ? '' : 's'})`, ms: 0, worker: null };
    }
    const settle = outcome && waiting.get(jobId);
    if (!settle || !outcome) return;
    waiting.delete(jobId);
    busyMs += outcome.ms;
    settle(outcome);
  };
  /**
   * A stall is a worker that stopped renewing its lock: killed, or alive but starved on a loaded
   * machine. Neither says anything about the candidate, so a job that BullMQ failed for stalling
   * too often (a worker with a lower maxStalledCount than ours) goes back to the queue instead
   * of being recorded as a failed candidate. BullMQ keeps the stall count ('stc') and the
   * deferred failure ('defa') on the job hash and Job.retry clears neither (reprocessJob-*.lua),
   * so they are cleared first; otherwise the next worker would fail the job again at once.
   */
  const requeued = new Map<string, number>();
  const requeuing = new Set<string>();
  const requeueStalled = async (job: Job<QueueJobData, JobResult>) => {
    const id = job.id!;
    // the completion event and the poll can both see the failed job
    if (requeuing.has(id)) return;
    requeuing.add(id);
    try {
      await client.hdel(`${o.url.prefix}:${queueName}:${id}`, 'stc', 'defa');
      await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    } finally {
      requeuing.delete(id);
    }
    const n = (requeued.get(id) ?? 0) + 1;
    requeued.set(id, n);
    log(`${id} was given up by BullMQ after its workers stopped renewing its lock (killed or starved); it goes back to the queue (${n} time${n === 1 ? '' : 's'}), since a stall is no verdict on the candidate`);
  };
  events.on('completed', ({ jobId }) => void check(jobId).catch(onError));
  events.on('failed', ({ jobId }) => void check(jobId).catch(onError));
  // events can be missed across a reconnection: look at the outstanding jobs now and then
  let lastWorkerNote = Date.now();
  const pollTimer = setInterval(() => {
    for (const id of [...waiting.keys()]) void check(id).catch(onError);
    if (waiting.size > 0 && Date.now() - lastWorkerNote > 30_000) {
      lastWorkerNote = Date.now();
      void queue.getWorkersCount().then((n) => {
        if (n === 0) log(`no worker is taking candidates from queue ${queueName} on ${o.url.display}; start one with 'evomerge worker --queue ${o.url.display}'`);
      }).catch(onError);
    }
  }, POLL_MS);

  const runner: QueueStage['runner'] = {
    threads: o.slots,
    async run(task: CandidateTask, candidate: { id: number; proposalId: string }): Promise<TaskOutcome<CandidateScore, string>> {
      const jobId = jobIdFor(candidate.id);
      const done = new Promise<TaskOutcome<CandidateScore, string>>((resolve) => waiting.set(jobId, resolve));
      try {
        await queue.add('candidate', { v: 1, run: o.run.name, stage: o.stage, candidate: candidate.id, proposalId: candidate.proposalId, contextKey: key, context, task }, {
          jobId, attempts: o.attempts ?? 3, backoff: { type: 'fixed', delay: 1000 },
          removeOnComplete: { age: KEEP_SECONDS }, removeOnFail: { age: KEEP_SECONDS },
        });
        // a job kept from an earlier session may be finished already
        await check(jobId);
      } catch (err) {
        waiting.delete(jobId);
        return { ok: false, kind: 'error', error: `queue: could not add ${jobId}: ${(err as Error).message}`, ms: 0, worker: null };
      }
      return done;
    },
    utilisation() {
      const elapsed = performance.now() - startedAt;
      return elapsed > 0 ? Math.min(1, busyMs / (elapsed * o.slots)) : 0;
    },
    async close() {
      clearInterval(beatTimer);
      clearInterval(pollTimer);
      await unregister(client, o.url.prefix, queueName).catch(() => {});
      client.disconnect();
      await Promise.allSettled([events.close(), queue.close()]);
    },
  };
  log(`stage ${o.stage}: candidates go to queue ${queueName} on ${o.url.display}, ${o.slots} outstanding at most`);
  return { queueName, runner };
}
