/**
 * Who holds a run. The process searching a run (its owner) writes its pid, host and a random
 * token into the run row when it starts or resumes, renews `heartbeat_at` every few seconds, and
 * writes the run's end (finished, stopped, failed) when it leaves. A run whose row says
 * 'running' is running only while that owner lives: on its own host, while its pid exists; seen
 * from another host (a shared file system), while its heartbeat is recent. Otherwise the owner
 * died without a word (SIGKILL, a crash, a power cut) and the run is 'interrupted'.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { RunOwner, RunRow, RunState } from './schema.ts';

/** Seconds between heartbeats. */
export const HEARTBEAT_SECONDS = 5;
/**
 * A heartbeat older than this means a dead owner, when its pid cannot be checked (another
 * host). Generous: a long synchronous step (a gradient over a large model) delays heartbeats.
 */
export const LEASE_SECONDS = 120;

export function newOwner(): RunOwner {
  return { pid: process.pid, host: hostname(), token: randomBytes(8).toString('hex'), startedAt: new Date().toISOString() };
}

/** Whether the process named by `owner` still runs (same host: its pid; else a recent heartbeat). */
export function ownerAlive(owner: RunOwner, heartbeatAt: string | null, nowMs = Date.now()): boolean {
  if (owner.host === hostname()) {
    try {
      process.kill(owner.pid, 0);
      return true;
    } catch (err) {
      // EPERM: the pid exists but belongs to another user
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
  return heartbeatAt !== null && nowMs - Date.parse(heartbeatAt) < LEASE_SECONDS * 1000;
}

/** The run's state as a reader should see it: 'running' only while a live owner holds it. */
export function runState(run: Pick<RunRow, 'status' | 'owner' | 'heartbeatAt'>): RunState {
  if (run.status !== 'running') return run.status;
  // a run of schema 2 has no owner: 'running' was all it could say
  if (!run.owner) return 'interrupted';
  return ownerAlive(run.owner, run.heartbeatAt) ? 'running' : 'interrupted';
}
