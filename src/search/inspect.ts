/** Reading runs back: status, best candidates, lineage, the list of runs. Pure reads of the store. */
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InputError } from '../errors.ts';
import { runState, RunStore, type CandidateRow, type MetricValue, type RunRow, type RunSettings, type RunState } from '../store/index.ts';
import { defaultDbPath } from './engine.ts';

export function openRun(runName: string, dbPath?: string): { store: RunStore; run: RunRow; dbPath: string } {
  const path = dbPath ? resolve(dbPath) : defaultDbPath(runName);
  if (!existsSync(path)) throw new InputError('E_NO_RUN_DB', `no run database at ${path}; check the run name (evomerge runs lists them) or pass --db`);
  const store = RunStore.open(path, { readonly: true });
  const run = store.run(runName);
  if (!run) {
    const names = store.runs().map((r) => r.name);
    store.close();
    throw new InputError('E_NO_RUN', `${path} has no run named '${runName}' (it has: ${names.join(', ') || 'none'})`);
  }
  return { store, run, dbPath: path };
}

export interface RunStatus {
  run: string;
  db: string;
  /** 'running' only while a live process holds the run; 'interrupted' when its owner died without a word. */
  status: RunState;
  /** Why the run ended (null while running, or for an interrupted run). */
  reason: string | null;
  /** The error a failed run ended with. */
  error: string | null;
  /** The process holding (or that last held) the run. */
  owner: { pid: number; host: string; startedAt: string; heartbeatAt: string | null } | null;
  /** The run's effective settings (null for a run started before they were stored). */
  settings: RunSettings | null;
  createdAt: string;
  updatedAt: string;
  counts: Record<string, number>;
  evaluationsPerMinute: number | null;
  best: { id: number; stage: number; generation: number; fitness: number } | null;
  failures: Array<{ id: number; error: string }>;
  stages: number[];
  /** Items the evaluators scored (all candidates); with `fidelity`, finished candidates by the fraction of items their score rests on. */
  items: { evaluations: number; byFidelity: Array<{ fidelity: number; candidates: number }> };
}

export function runStatus(store: RunStore, run: RunRow, dbPath: string): RunStatus {
  const all = store.candidates(run.id);
  const finished = all.filter((c) => c.finishedAt && c.reusedFrom === null).map((c) => Date.parse(c.finishedAt!)).sort((a, b) => a - b);
  const spanMin = finished.length >= 2 ? (finished[finished.length - 1]! - finished[0]!) / 60_000 : 0;
  const best = store.best(run.id, 1)[0];
  return {
    run: run.name, db: dbPath, status: runState(run), reason: run.status === 'running' ? null : run.stopReason, error: run.error,
    owner: run.owner ? { pid: run.owner.pid, host: run.owner.host, startedAt: run.owner.startedAt, heartbeatAt: run.heartbeatAt } : null,
    settings: run.settings, createdAt: run.createdAt, updatedAt: run.updatedAt, counts: store.counts(run.id),
    evaluationsPerMinute: spanMin > 0 ? (finished.length - 1) / spanMin : null,
    best: best ? { id: best.id, stage: best.stage, generation: best.generation, fitness: best.fitness! } : null,
    failures: all.filter((c) => c.state === 'failed').slice(-5).map((c) => ({ id: c.id, error: c.error ?? '' })),
    stages: [...new Set(all.map((c) => c.stage))],
    items: (({ items, byFidelity }) => ({ evaluations: items, byFidelity }))(store.itemEvaluations(run.id)),
  };
}

export interface BestEntry {
  id: number;
  stage: number;
  generation: number;
  fitness: number;
  recipeHash: string;
  recipe: unknown;
  metrics: MetricValue[];
}

export function bestCandidates(store: RunStore, run: RunRow, top: number): BestEntry[] {
  return store.best(run.id, top).map((c: CandidateRow) => ({
    id: c.id, stage: c.stage, generation: c.generation, fitness: c.fitness!, recipeHash: c.recipeHash, recipe: c.recipe, metrics: store.metrics(c.id),
  }));
}

/** Every run database under a folder (default runs/): runs/<name>/run.sqlite. */
export function listRuns(root = 'runs'): Array<{ db: string; run: string; status: RunState; reason: string | null; candidates: number; best: number | null; updatedAt: string }> {
  const dir = resolve(root);
  if (!existsSync(dir)) return [];
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const db = join(dir, entry.name, 'run.sqlite');
    if (!entry.isDirectory() || !existsSync(db)) continue;
    let store: RunStore | null = null;
    try {
      store = RunStore.open(db, { readonly: true });
      for (const r of store.runs()) {
        const counts = store.counts(r.id);
        out.push({ db, run: r.name, status: runState(r), reason: r.status === 'running' ? null : r.stopReason, candidates: counts.done + counts.failed + counts.pending + counts.running, best: store.best(r.id, 1)[0]?.fitness ?? null, updatedAt: r.updatedAt });
      }
    } catch {
      // not a run database: skip it
    } finally {
      store?.close();
    }
  }
  return out;
}
