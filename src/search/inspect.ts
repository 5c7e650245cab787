/** Reading runs back: status, best candidates, lineage, the list of runs. Pure reads of the store. */
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InputError } from '../errors.ts';
import { runState, RunStore, type CandidateRow, type MetricValue, type RunRow, type RunSettings, type RunState } from '../store/index.ts';
import { defaultDbPath } from './engine.ts';
import { chosenCandidate, SELECTION, selectionSettings } from './select.ts';

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
  /**
   * With the space's `select`: the chosen candidate (what export --best writes), its search
   * fitness and selection score, and the optimism of the search (./select.ts Chosen); null
   * without select, or before any candidate succeeded.
   */
  selected: { id: number; stage: number; rule: string; pool: number; searchFitness: number; selectionFitness: number | null; selectionSE: number | null; optimism: number | null; reference: { id: number; searchFitness: number; selectionFitness: number } | null } | null;
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
  const chosen = selectionSettings(run.space) ? chosenCandidate(store, run) : null;
  return {
    run: run.name, db: dbPath, status: runState(run), reason: run.status === 'running' ? null : run.stopReason, error: run.error,
    owner: run.owner ? { pid: run.owner.pid, host: run.owner.host, startedAt: run.owner.startedAt, heartbeatAt: run.heartbeatAt } : null,
    settings: run.settings, createdAt: run.createdAt, updatedAt: run.updatedAt, counts: store.counts(run.id),
    evaluationsPerMinute: spanMin > 0 ? (finished.length - 1) / spanMin : null,
    best: best ? { id: best.id, stage: best.stage, generation: best.generation, fitness: best.fitness! } : null,
    selected: chosen ? { id: chosen.candidate.id, stage: chosen.candidate.stage, rule: chosen.rule, pool: chosen.pool, searchFitness: chosen.searchFitness, selectionFitness: chosen.selectionFitness, selectionSE: chosen.selectionSE, optimism: chosen.optimism, reference: chosen.reference } : null,
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
  /** The candidate's score on the selection split (space select); null when it was not scored there, absent for a run without select. */
  selection?: number | null;
  /** The run's chosen candidate (space select): listed first. */
  chosen?: boolean;
  recipeHash: string;
  recipe: unknown;
  metrics: MetricValue[];
}

/**
 * The run's best candidates by fitness; with `select` the chosen candidate (./select.ts) first,
 * then the best others by fitness, each with its selection score.
 */
export function bestCandidates(store: RunStore, run: RunRow, top: number): BestEntry[] {
  const settings = selectionSettings(run.space);
  const chosen = settings ? chosenCandidate(store, run)?.candidate ?? null : null;
  const rows = chosen ? [chosen, ...store.best(run.id, top).filter((c) => c.id !== chosen.id)].slice(0, top) : store.best(run.id, top);
  return rows.map((c: CandidateRow) => {
    const metrics = store.metrics(c.id);
    const selection = settings?.evaluators ? { selection: metrics.find((m) => m.evaluator === SELECTION && m.metric === 'fitness')?.value ?? null } : {};
    return { id: c.id, stage: c.stage, generation: c.generation, fitness: c.fitness!, ...selection, ...(chosen ? { chosen: c.id === chosen.id } : {}), recipeHash: c.recipeHash, recipe: c.recipe, metrics };
  });
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
