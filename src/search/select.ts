/**
 * Selection on a second split (space `select`): at the end of each stage its `top` candidates on
 * the search's fitness are scored by the selection evaluators, data the search never tuned on,
 * and the run's chosen candidate (what `best`, `export --best`, `status`, the report and the
 * model card call the run's result) is the best there by the space's rule (./noise.ts). The
 * search's maximum carries the luckiest draw of its split's noise; a second split's score of the
 * same candidates does not, and the difference between the two is the search's optimism.
 *
 * Storage: the selection scores are metrics of the candidates (no table of their own), under
 * evaluator names apart from the search's: `select:<id>` per selection evaluator (its metrics,
 * `fitness`, `fitness_se`) and `select` for the weighted sum (`fitness`, `fitness_se`; a null
 * `fitness` records a candidate whose selection scoring failed, with the error in the run's
 * events). A candidate's selection score is a function of its recipe alone, and which candidates
 * are scored is a function of the stage's stored candidates, so a run stopped or killed during
 * selection resumes to the same selection: the candidates already scored are kept and the rest
 * scored.
 *
 * Without `select.evaluators`, `select.rule` (lcb, shrink) applies to the search's own scores of
 * the same candidates. A run without `select` chooses the search's maximum, as before.
 */
import { FITNESS_SE, type CandidateOutcome, type CandidateTask, type EvaluatorSpec } from '../candidate/index.ts';
import { isFullFidelity, type CandidateRow, type MetricValue, type RunRow, type RunStore } from '../store/index.ts';
import { choose, fitnessSE, ruleValues, type ChoiceRule, type PoolEntry, type ScorePart } from './noise.ts';

/** The evaluator name of a selection's weighted sum. */
export const SELECTION = 'select';

/** The evaluator name a selection evaluator's metrics are stored under. */
export function selectionEvaluator(id: string): string {
  return `${SELECTION}:${id}`;
}

/** Whether a stored metric is a selection score (not one of the search's evaluators). */
export function isSelectionMetric(m: Pick<MetricValue, 'evaluator'>): boolean {
  return m.evaluator === SELECTION || m.evaluator.startsWith(`${SELECTION}:`);
}

/** A run's selection, as its resolved space records it. */
export interface SelectionSettings {
  /** The second split's evaluators; null: the rule applies to the search's own scores. */
  evaluators: EvaluatorSpec[] | null;
  top: number;
  rule: ChoiceRule;
  z: number;
}

/** The run's selection settings from its resolved space (src/search/resolve.ts), or null when the space has no `select`. */
export function selectionSettings(resolved: unknown): SelectionSettings | null {
  const r = resolved as { space?: { select?: { top?: number; rule?: ChoiceRule; z?: number } }; selectEvaluators?: EvaluatorSpec[] } | null;
  const s = r?.space?.select;
  if (!s) return null;
  return { evaluators: r!.selectEvaluators?.length ? r!.selectEvaluators : null, top: s.top ?? 10, rule: s.rule ?? 'max', z: s.z ?? 1 };
}

/** The search's evaluators of a run (their ids and weights), from its resolved space. */
function searchEvaluators(resolved: unknown): EvaluatorSpec[] {
  return ((resolved as { evaluators?: EvaluatorSpec[] } | null)?.evaluators ?? []);
}

/** A stage's top `top` candidates on the search's fitness: finished, full-fidelity, best first (ties: lower id). */
export function stagePool(rows: readonly CandidateRow[], stage: number, top: number): CandidateRow[] {
  return rows
    .filter((c) => c.stage === stage && c.state === 'done' && c.fitness !== null && Number.isFinite(c.fitness) && isFullFidelity(c))
    .sort((a, b) => b.fitness! - a.fitness! || a.id - b.id)
    .slice(0, top);
}

/**
 * A candidate's per-evaluator parts under `prefix` (`''` for the search's evaluators,
 * `select:` for the selection's): its fitness and standard error per evaluator, null when some
 * evaluator's fitness is missing (not scored yet) or null (failed).
 */
export function partsOf(metrics: readonly MetricValue[], evaluators: readonly EvaluatorSpec[], prefix = ''): ScorePart[] | null {
  const parts: ScorePart[] = [];
  for (const e of evaluators) {
    const name = `${prefix}${e.id}`;
    const f = metrics.find((m) => m.evaluator === name && m.metric === 'fitness');
    if (!f || f.value === null) return null;
    const se = metrics.find((m) => m.evaluator === name && m.metric === FITNESS_SE)?.value ?? null;
    parts.push({ id: e.id, weight: e.weight, fitness: f.value, se });
  }
  return parts;
}

/** Whether a candidate's selection was recorded (scored, or failed). */
export function hasSelection(metrics: readonly MetricValue[]): boolean {
  return metrics.some((m) => m.evaluator === SELECTION && m.metric === 'fitness');
}

/**
 * The best fixed recipe a stage was warm-started from (space init: baselines; the 'warm-start'
 * event, src/search/engine.ts recordWarmStart): the reference a gain is measured from. Null when
 * the stage had none or none of them succeeded.
 */
export function warmStartReference(store: RunStore, run: RunRow, stage: number, rows: readonly CandidateRow[]): CandidateRow | null {
  const hashes = new Set<string>();
  for (const e of store.events(run.id, 1_000_000)) {
    const d = e.data as { stage?: number; recipes?: Array<{ recipeHash?: string }> } | null;
    if (e.kind === 'warm-start' && (d?.stage ?? 0) === stage) for (const r of d?.recipes ?? []) if (r.recipeHash) hashes.add(r.recipeHash);
  }
  const fixed = rows.filter((c) => c.stage === stage && hashes.has(c.recipeHash) && c.state === 'done' && c.fitness !== null && isFullFidelity(c));
  return fixed.sort((a, b) => b.fitness! - a.fitness! || a.id - b.id)[0] ?? null;
}

/** The candidates a stage's selection scores: its pool, and its warm-start reference (for the optimism). */
export function selectionTargets(store: RunStore, run: RunRow, stage: number, top: number): CandidateRow[] {
  const rows = store.candidates(run.id, { stage, state: 'done' });
  const pool = stagePool(rows, stage, top);
  const ref = warmStartReference(store, run, stage, rows);
  return ref && !pool.some((c) => c.id === ref.id) ? [...pool, ref] : pool;
}

/** The run's chosen candidate, with both its scores. */
export interface Chosen {
  candidate: CandidateRow;
  /** The search's fitness of the chosen candidate. */
  searchFitness: number;
  /** Its weighted score on the selection split (null: the run selects on the search's scores, or none is scored yet). */
  selectionFitness: number | null;
  selectionSE: number | null;
  rule: ChoiceRule;
  /** The rule's value for the chosen candidate (its estimate of the candidate's fitness). */
  value: number;
  /** Candidates the choice was made among. */
  pool: number;
  /** The search's own best (store.best): the chosen one when nothing else won. */
  searchBest: CandidateRow;
  /**
   * The optimism of the search: its fitness minus the selection split's score, both measured as
   * gains over the best fixed recipe the stage started from when there is one (so a split that
   * is simply harder or easier does not count), else as raw scores. Null without a selection split.
   */
  optimism: number | null;
  /** The fixed recipe the gains are measured from. */
  reference: { id: number; searchFitness: number; selectionFitness: number } | null;
}

/**
 * The candidate a run exports, among the pools of `stages` (default every stage of the run):
 * with `select.evaluators`, the best selection score by the rule among the pools' scored
 * candidates; with only a rule, the rule over the search's scores of the pools; without
 * `select`, the search's maximum (store.best). Null when nothing succeeded; the search's best
 * (selectionFitness null) while no pool candidate has a selection score yet.
 */
export function chosenCandidate(store: RunStore, run: RunRow, o: { stages?: readonly number[] } = {}): Chosen | null {
  const rows = store.candidates(run.id, { state: 'done' });
  const stages = o.stages ?? [...new Set(rows.map((c) => c.stage))].sort((a, b) => a - b);
  const inStages = rows.filter((c) => stages.includes(c.stage) && c.fitness !== null && isFullFidelity(c)).sort((a, b) => b.fitness! - a.fitness! || a.id - b.id);
  const searchBest = inStages[0];
  if (!searchBest) return null;
  const settings = selectionSettings(run.space);
  const plain: Chosen = { candidate: searchBest, searchFitness: searchBest.fitness!, selectionFitness: null, selectionSE: null, rule: 'max', value: searchBest.fitness!, pool: 1, searchBest, optimism: null, reference: null };
  if (!settings) return plain;
  const pool = stages.flatMap((s) => stagePool(rows, s, settings.top));
  const entries: Array<PoolEntry & { row: CandidateRow }> = [];
  const evaluators = settings.evaluators ?? searchEvaluators(run.space);
  for (const c of pool) {
    const parts = partsOf(store.metrics(c.id), evaluators, settings.evaluators ? `${SELECTION}:` : '');
    if (parts) entries.push({ id: c.id, parts, searchFitness: c.fitness!, row: c });
  }
  if (entries.length === 0) return { ...plain, rule: settings.rule, pool: 0 };
  const i = choose(entries, settings.rule, settings.z);
  const chosen = entries[i]!;
  const value = ruleValues(entries, settings.rule, settings.z)[i]!;
  if (!settings.evaluators) return { ...plain, candidate: chosen.row, searchFitness: chosen.searchFitness, rule: settings.rule, value, pool: entries.length };
  const selectionFitness = chosen.parts.reduce((a, p) => a + p.weight * p.fitness, 0);
  // the reference: the best fixed recipe of the chosen candidate's stage, scored on both splits
  const refRow = warmStartReference(store, run, chosen.row.stage, rows);
  const refParts = refRow ? partsOf(store.metrics(refRow.id), evaluators, `${SELECTION}:`) : null;
  const reference = refRow && refParts ? { id: refRow.id, searchFitness: refRow.fitness!, selectionFitness: refParts.reduce((a, p) => a + p.weight * p.fitness, 0) } : null;
  const optimism = reference
    ? (chosen.searchFitness - reference.searchFitness) - (selectionFitness - reference.selectionFitness)
    : chosen.searchFitness - selectionFitness;
  return { candidate: chosen.row, searchFitness: chosen.searchFitness, selectionFitness, selectionSE: fitnessSE(chosen.parts), rule: settings.rule, value, pool: entries.length, searchBest, optimism, reference };
}

/** The metrics a selection result is stored as (see the module comment), or a failure's. */
export function selectionMetrics(outcome: CandidateOutcome, evaluators: readonly EvaluatorSpec[]): { metrics: MetricValue[]; error: string | null } {
  if (!outcome.ok || outcome.value.fitness === null || !Number.isFinite(outcome.value.fitness)) {
    const error = outcome.ok ? outcome.value.error ?? 'the selection evaluators returned no usable fitness' : `${outcome.kind}: ${outcome.error}`;
    return { metrics: [{ evaluator: SELECTION, metric: 'fitness', value: null }], error };
  }
  const s = outcome.value;
  const metrics: MetricValue[] = s.metrics.map((m) => ({ ...m, evaluator: selectionEvaluator(m.evaluator) }));
  const parts = partsOf(s.metrics, evaluators);
  const se = parts ? fitnessSE(parts) : null;
  metrics.push({ evaluator: SELECTION, metric: 'fitness', value: s.fitness });
  if (se !== null) metrics.push({ evaluator: SELECTION, metric: FITNESS_SE, value: se });
  return { metrics, error: null };
}

/**
 * Scores a stage's selection targets that have no selection score yet on `runner` (set up with
 * the selection evaluators), `threads` at a time, each result stored as it arrives (its order
 * does not matter: each is a function of its recipe). Returns 'stopped' when `signal` fired
 * before every target was scored (a resume scores the rest).
 */
export async function scoreSelection(o: {
  store: RunStore;
  run: RunRow;
  stage: number;
  settings: SelectionSettings;
  runner: { threads: number; run(task: CandidateTask, candidate: { id: number; proposalId: string }): Promise<CandidateOutcome> };
  task: (c: CandidateRow) => CandidateTask;
  signal?: AbortSignal;
  onLog?: (line: string) => void;
}): Promise<{ reason: 'done' | 'stopped'; scored: number }> {
  const evaluators = o.settings.evaluators!;
  const todo = selectionTargets(o.store, o.run, o.stage, o.settings.top).filter((c) => !hasSelection(o.store.metrics(c.id)));
  let scored = 0;
  const inFlight = new Set<Promise<void>>();
  for (const c of todo) {
    if (o.signal?.aborted) break;
    const p: Promise<void> = o.runner.run(o.task(c), { id: c.id, proposalId: `select-${c.proposalId}` }).then((outcome) => {
      const { metrics, error } = selectionMetrics(outcome, evaluators);
      o.store.addMetrics(c.id, metrics);
      if (error !== null) {
        o.store.event(o.run.id, 'select-failed', `selection scoring of candidate ${c.id} failed: ${error}`, { candidate: c.id, error });
        o.onLog?.(`selection: candidate ${c.id} failed: ${error}`);
      }
      scored++;
    }).finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= o.runner.threads) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  const left = todo.filter((c) => !hasSelection(o.store.metrics(c.id))).length;
  return { reason: left > 0 ? 'stopped' : 'done', scored };
}
