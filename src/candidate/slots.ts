/**
 * Evaluation slots: where the command evaluators of a stage score merged candidates, owned by
 * the process that owns the run (the search's owner, or an `evomerge worker`), never by a pool
 * thread (a thread that times out is terminated, which would orphan a program it started).
 *
 * A slot is one GPU (`--gpus 0,1`: slots gpu0 and gpu1), or one of N slots without a GPU. Each
 * slot has its own instance of every evaluator, so a persistent evaluator's program runs once per
 * slot and keeps its model loaded there; the slot's GPU is given to the program as
 * CUDA_VISIBLE_DEVICES and `{gpu}` (src/eval/protocol.ts). A slot scores one candidate at a
 * time; candidates wait for the first free slot in the order they asked. Each evaluator of each
 * slot appends its program's stderr to `<logDir>/<evaluator>.<slot>.log`.
 *
 * Also here: where candidate folders go (a tmpfs when the plan allows, src/search/preflight.ts),
 * and removing the folders a dead process left behind.
 */
import { accessSync, constants, existsSync, readdirSync, rmSync, statfsSync } from 'node:fs';
import { freemem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEvaluator, loadManifest, processAlive } from '../eval/index.ts';
import { epochMs, hostTag } from './build.ts';
import type { FidelityTask } from './fidelity.ts';
import { scoreCandidate, type OpenEvaluator } from './score.ts';
import type { CandidateScore, SlotSpec, WorkerData } from './types.ts';

/** The slots of `--gpus` (one per id, in order), or `count` slots without a GPU. */
export function slotSpecs(gpus: readonly string[] | null | undefined, count: number): SlotSpec[] {
  if (gpus && gpus.length > 0) {
    const seen = new Map<string, number>();
    return gpus.map((gpu) => {
      const n = seen.get(gpu) ?? 0;
      seen.set(gpu, n + 1);
      return { name: n === 0 ? `gpu${gpu}` : `gpu${gpu}.${n}`, gpu };
    });
  }
  return Array.from({ length: count }, (_, i) => ({ name: `slot${i}`, gpu: null }));
}

interface Slot {
  spec: SlotSpec;
  evaluators: OpenEvaluator[];
  busyMs: number;
}

export interface SlotScore {
  score: CandidateScore;
  slot: string;
  scoreStart: number;
  scoreEnd: number;
}

export class EvaluationSlots {
  private readonly slots: Slot[];
  private readonly free: number[];
  private readonly waiting: Array<(slot: number) => void> = [];
  private readonly startedAt = performance.now();
  private closed = false;

  constructor(private readonly data: Pick<WorkerData, 'evaluators' | 'allowTestSplit' | 'objective' | 'baseCheckpoint'>, specs: readonly SlotSpec[], o: { logDir: string | null; graceMs?: number }) {
    this.slots = specs.map((spec) => ({
      spec,
      busyMs: 0,
      evaluators: data.evaluators.map((e) => ({
        spec: e,
        ev: createEvaluator(loadManifest(e.manifest), {
          purpose: 'search', allowTestSplit: data.allowTestSplit,
          command: { placement: { gpu: spec.gpu, base: data.baseCheckpoint ?? null }, log: o.logDir ? join(o.logDir, `${e.id}.${spec.name}.log`) : null, graceMs: o.graceMs },
        }),
      })),
    }));
    this.free = this.slots.map((_, i) => i);
    // persistent programs start now, while the first candidates are merged
    for (const s of this.slots) for (const e of s.evaluators) e.ev.prestart?.();
  }

  get count(): number {
    return this.slots.length;
  }

  /** Scores a candidate's folder on the first free slot with every evaluator of the stage. */
  async score(folder: string, o: { candidateId?: number; fidelity?: FidelityTask }): Promise<SlotScore> {
    const i = await this.acquire();
    const slot = this.slots[i]!;
    const scoreStart = epochMs();
    try {
      const score = await scoreCandidate(slot.evaluators, { model: null, modelDir: () => folder }, {
        backend: null, objective: this.data.objective, fidelity: o.fidelity, ...(o.candidateId !== undefined ? { requestId: String(o.candidateId) } : {}),
      });
      return { score, slot: slot.spec.name, scoreStart, scoreEnd: epochMs() };
    } catch (err) {
      throw Object.assign(err instanceof Error ? err : new Error(String(err)), { slot: slot.spec.name, scoreStart, scoreEnd: epochMs() });
    } finally {
      slot.busyMs += epochMs() - scoreStart;
      this.release(i);
    }
  }

  /** Fraction of the slots' time spent scoring since they opened. */
  utilisation(): number {
    const elapsed = performance.now() - this.startedAt;
    const busy = this.slots.reduce((n, s) => n + s.busyMs, 0);
    return elapsed > 0 ? Math.min(1, busy / (elapsed * this.slots.length)) : 0;
  }

  /** The pids of the slots' persistent programs now running. */
  pids(): number[] {
    return this.slots.flatMap((s) => s.evaluators.map((e) => (e.ev as { pid?: number | null }).pid ?? null)).filter((p): p is number => p !== null);
  }

  /** Stops every slot's programs (SIGTERM, SIGKILL after the grace period) and waits for them. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.flatMap((s) => s.evaluators.map((e) => e.ev.close?.() ?? e.ev.dispose())));
  }

  private acquire(): Promise<number> {
    if (this.closed) return Promise.reject(new Error('the evaluation slots are closed'));
    const i = this.free.shift();
    if (i !== undefined) return Promise.resolve(i);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(i: number): void {
    const next = this.waiting.shift();
    if (next) next(i);
    else this.free.push(i);
  }
}

/** Free bytes of the file system holding `dir` (Infinity when unknown). */
export function freeBytes(dir: string): number {
  try {
    const st = statfsSync(dir);
    return st.bavail * st.bsize;
  } catch {
    return Infinity;
  }
}

/** The tmpfs candidate folders go to when it has room: /dev/shm where it exists and is writable. */
export function tmpfsDir(): string | null {
  const dir = '/dev/shm';
  try {
    if (!existsSync(dir)) return null;
    accessSync(dir, constants.W_OK);
    return dir;
  } catch {
    return null;
  }
}

/** The statfs type of tmpfs (Linux's TMPFS_MAGIC, linux/magic.h): its files live in memory. */
const TMPFS_MAGIC = 0x01021994;

/** Whether `dir` is on a tmpfs (its files take memory, not disk). */
export function onTmpfs(dir: string): boolean {
  try {
    return statfsSync(dir).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}

export interface CandidateDirChoice {
  dir: string;
  /** Its files live in memory (count them in the memory plan). */
  tmpfs: boolean;
  free: number;
}

/**
 * Where candidate folders go: `override` (--candidate-dir) when given; else /dev/shm when
 * `folders` folders of `folderBytes` fit both in its free space and in `memoryLeft` (what the
 * memory plan leaves; a tmpfs holds its files in memory); else the system's temporary folder.
 */
export function chooseCandidateDir(o: { override?: string | null; folderBytes: number; folders: number; memoryLeft?: number }): CandidateDirChoice {
  if (o.override) return { dir: o.override, tmpfs: onTmpfs(o.override), free: freeBytes(o.override) };
  const need = o.folderBytes * o.folders;
  const shm = tmpfsDir();
  if (shm) {
    const free = freeBytes(shm);
    if (need <= free && need <= (o.memoryLeft ?? freemem())) return { dir: shm, tmpfs: true, free };
  }
  const dir = tmpdir();
  return { dir, tmpfs: onTmpfs(dir), free: freeBytes(dir) };
}

/**
 * Removes the candidate folders under `dir` that a process of this host left behind when it
 * died (a kill, a crash): their names carry host and pid (src/candidate/build.ts
 * candidateFolderPrefix). Folders of live processes are left alone. Returns how many it removed.
 */
export function sweepCandidateFolders(dir: string): number {
  let removed = 0;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  const mine = new RegExp(`^evomerge-candidate-${hostTag()}-(\\d+)-`);
  for (const name of names) {
    const m = mine.exec(name);
    if (!m || Number(m[1]) === process.pid || processAlive(Number(m[1]))) continue;
    rmSync(join(dir, name), { recursive: true, force: true });
    removed++;
  }
  return removed;
}
