/**
 * What travels through Redis between a run's owner and the workers: the queue named after the
 * run, one job per candidate (job id from the candidate id, so adding it again is a no-op and
 * its stored result is found again), the stage context a worker needs to evaluate (source
 * paths with the SHA-256 of each file as the run recorded them, evaluator manifests with their
 * own hash), and the owner's heartbeat in a small registry that lets workers find live runs.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { canonicalJson, type Recipe } from '../recipe/index.ts';
import type { CandidateScore, CandidateTask, EvaluatorSpec, FailureKind } from '../candidate/index.ts';
import type { BackendChoice } from '../models/index.ts';
import type { RunRow } from '../store/index.ts';

export type ContextSource =
  | { path: string; files: Record<string, string> }
  /** A model the owner merged in memory (a hybrid run's PS best): workers merge it the same way. */
  | { path: string; merged: Recipe };

export interface StageContext {
  run: string;
  stage: number;
  /** Checkpoints first, then merged models that are built from them. */
  sources: ContextSource[];
  evaluators: Array<EvaluatorSpec & { sha256: string }>;
  backend: BackendChoice;
  objective: 'weighted-sum' | 'multi';
  allowTestSplit: boolean;
  /** A checkpoint of the candidates' architecture: command evaluators' `{base}` (src/candidate/types.ts). */
  baseCheckpoint?: string;
  /** Per-candidate limit (0: none), as a local pool applies it. */
  timeoutMs: number;
}

export interface QueueJobData {
  v: 1;
  run: string;
  stage: number;
  candidate: number;
  proposalId: string;
  contextKey: string;
  context: StageContext;
  task: CandidateTask;
}

/** A job's return value: the outcome a local pool would have given, with the worker named by host and pid. */
export type JobResult =
  | { ok: true; value: CandidateScore; ms: number; worker: string }
  | { ok: false; kind: FailureKind; error: string; ms: number; worker: string | null };

export function contextKey(c: StageContext): string {
  return createHash('sha256').update(canonicalJson(c)).digest('hex').slice(0, 16);
}

/**
 * The run's queue: its name plus a token of its creation, so two runs that share a name (in two
 * databases) never share jobs. BullMQ reserves ':' in queue names.
 */
export function queueNameFor(run: Pick<RunRow, 'name' | 'createdAt' | 'seed'>): string {
  const token = createHash('sha256').update(`${run.name}\n${run.createdAt}\n${run.seed}`).digest('hex').slice(0, 10);
  const slug = run.name.replace(/[^A-Za-z0-9_.-]+/g, '_').slice(0, 60);
  return `evomerge-${slug}-${token}`;
}

export function jobIdFor(candidateId: number): string {
  // BullMQ refuses plain integers as custom ids
  return `candidate-${candidateId}`;
}

/** Registry of live runs: a sorted set of queue names scored by the owner's last heartbeat (Redis clock). */
export interface RegistryEntry {
  run: string;
  queue: string;
  contextKey: string;
  context: StageContext;
  owner: string;
}

const activeKey = (prefix: string) => `${prefix}:evomerge:active`;
const entryKey = (prefix: string, queue: string) => `${prefix}:evomerge:entry:${queue}`;

export async function serverTimeMs(client: Redis): Promise<number> {
  const [s, us] = await client.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

export async function heartbeat(client: Redis, prefix: string, entry: RegistryEntry): Promise<void> {
  const now = await serverTimeMs(client);
  await client.multi().set(entryKey(prefix, entry.queue), JSON.stringify(entry), 'EX', 24 * 3600).zadd(activeKey(prefix), now, entry.queue).exec();
}

export async function unregister(client: Redis, prefix: string, queue: string): Promise<void> {
  await client.multi().zrem(activeKey(prefix), queue).del(entryKey(prefix, queue)).exec();
}

/** Runs whose owner beat within `withinMs`. */
export async function liveRuns(client: Redis, prefix: string, withinMs: number): Promise<RegistryEntry[]> {
  const now = await serverTimeMs(client);
  const queues = await client.zrangebyscore(activeKey(prefix), now - withinMs, '+inf');
  const out: RegistryEntry[] = [];
  for (const q of queues) {
    const raw = await client.get(entryKey(prefix, q));
    if (raw) out.push(JSON.parse(raw) as RegistryEntry);
  }
  return out;
}
