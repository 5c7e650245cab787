/**
 * Which candidates an export or a report is about, and the Pareto front of a multi-objective
 * run. Pure reads of the store.
 */
import type { CandidateRow, RunRow, RunStore } from '../store/index.ts';
import { dominates } from '../optim/index.ts';
import { ExportError } from './errors.ts';
import { chosenCandidate, selectionSettings } from '../search/select.ts';

/** The resolved space a run records (src/search/resolve.ts ResolvedSpace), as far as reports read it. */
export interface RunSpaceView {
  space: { mode?: string; objective?: string; zoo?: string | null; name?: string; ps?: { method?: string } | null };
  spacePath: string | null;
  base: string | null;
  models: Array<{ name: string; path: string }>;
  evaluators: Array<{ id: string; manifest: string; weight: number }>;
}

export function spaceOf(run: RunRow): RunSpaceView {
  const s = (run.space ?? {}) as Partial<RunSpaceView>;
  return { space: s.space ?? {}, spacePath: s.spacePath ?? null, base: s.base ?? null, models: s.models ?? [], evaluators: s.evaluators ?? [] };
}

export function isMultiObjective(run: RunRow): boolean {
  return spaceOf(run).space.objective === 'multi';
}

/** A readable name for a model path of the run: its space name, `base`, or the path itself. */
export function modelLabel(run: RunRow, path: string): string {
  const s = spaceOf(run);
  if (s.base === path) return 'base';
  return s.models.find((m) => m.path === path)?.name ?? path;
}

/**
 * The non-dominated candidates among those with objectives (Deb et al. 2002, NSGA-II, section
 * III-A: the first front), best weighted fitness first. Equal objective vectors both stay.
 */
export function paretoFront(rows: readonly CandidateRow[]): CandidateRow[] {
  const scored = rows.filter((c) => c.state === 'done' && Array.isArray(c.objectives) && c.objectives.every((v) => Number.isFinite(v)));
  return scored
    .filter((c) => !scored.some((o) => o !== c && dominates(o.objectives!, c.objectives!)))
    .sort((a, b) => (b.fitness ?? -Infinity) - (a.fitness ?? -Infinity) || a.id - b.id);
}

export interface Selection {
  candidate?: number;
  best?: boolean;
  top?: number;
}

/**
 * The candidates a selection names: one id, the best (the run's chosen candidate, with the
 * space's `select`), the top K (the Pareto front, at most K, for a multi-objective run).
 */
export function selectCandidates(store: RunStore, run: RunRow, sel: Selection): CandidateRow[] {
  const given = [sel.candidate !== undefined, sel.best === true, sel.top !== undefined].filter(Boolean).length;
  if (given > 1) throw new ExportError('E_EXPORT_SELECTION', 'give only one of --candidate ID, --best or --top K');
  if (sel.candidate !== undefined) {
    const c = store.candidate(sel.candidate);
    if (!c || c.runId !== run.id) throw new ExportError('E_EXPORT_CANDIDATE', `run '${run.name}' has no candidate ${sel.candidate}; 'evomerge best ${run.name}' lists its best ones`);
    if (c.state !== 'done') throw new ExportError('E_EXPORT_CANDIDATE', `candidate ${c.id} of run '${run.name}' is ${c.state}${c.error ? ` (${c.error})` : ''}; only scored candidates can be exported`);
    return [c];
  }
  if (sel.top !== undefined) {
    if (!Number.isInteger(sel.top) || sel.top < 1) throw new ExportError('E_EXPORT_SELECTION', `--top must be a positive integer, got ${sel.top}`);
    const rows = isMultiObjective(run) ? paretoFront(store.candidates(run.id, { state: 'done' })).slice(0, sel.top) : store.best(run.id, sel.top);
    if (rows.length === 0) throw new ExportError('E_EXPORT_EMPTY', `run '${run.name}' has no scored candidate yet`);
    return rows;
  }
  // the run's chosen candidate: with the space's select, the best on the selection split (src/search/select.ts)
  const best = selectionSettings(run.space) ? [chosenCandidate(store, run)?.candidate].filter((c): c is CandidateRow => !!c) : store.best(run.id, 1);
  if (best.length === 0) throw new ExportError('E_EXPORT_EMPTY', `run '${run.name}' has no scored candidate yet`);
  return best;
}
