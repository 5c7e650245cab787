/**
 * The numbers behind each chart of the report, computed from the store apart from any drawing
 * (as optuna's visualization module computes plot data apart from rendering), so they are
 * tested as plain data. Evaluation number n counts finished candidates (scored, reused or
 * failed) in the order they finished.
 */
import { isFullFidelity, runState, type CandidateRow, type RunRow, type RunStore } from '../store/index.ts';
import { isDfsRecipe, type DfsRecipe } from './dfs.ts';
import { lineageChain } from './card.ts';
import type { SourceBaseline } from './scores.ts';
import { isMultiObjective, modelLabel, paretoFront, spaceOf } from './select.ts';
import type { ParamSetting, Recipe } from '../recipe/index.ts';
import { FITNESS_SE } from '../candidate/index.ts';
import { chosenCandidate, isSelectionMetric, SELECTION } from '../search/select.ts';

export interface FitnessPoint { n: number; id: number; stage: number; fitness: number }

export interface ReportData {
  run: {
    name: string; status: string; mode: string; objective: string; evaluators: Array<{ id: string; weight: number }>; counts: Record<string, number>;
    /** Items the evaluators scored, over all candidates; with `fidelity`, finished candidates by the fraction of items their score rests on. */
    items: ReturnType<RunStore['itemEvaluations']>;
  };
  /** Chart 1: with the source models' fitness and the fixed recipes the search started from (their best is drawn). */
  fitness: { points: FitnessPoint[]; bestSoFar: Array<{ n: number; id: number; fitness: number }>; baselines: Array<{ label: string; fitness: number }>; fixedRecipes: FixedRecipe[] };
  /** Chart 2: one series per evaluator, the best-so-far candidate's metric at each evaluation where the best changed. */
  evaluatorTrend: Array<{ evaluator: string; metric: string; points: Array<{ n: number; id: number; value: number | null }> }>;
  /** Chart 3. */
  parameters: { candidate: number; groups: string[]; series: Array<{ label: string; values: Array<number | null> }> } | null;
  /** Chart 4. */
  dfsPath: { candidate: number; sources: string[]; steps: Array<{ step: number; source: number; sourceName: string; layer: number; scale: number }> } | null;
  /** Chart 5: the best candidate's chain of fittest parents, oldest first, and the other ancestors. */
  lineage: { candidate: number; chain: Array<{ id: number; generation: number; stage: number; operator: string; fitness: number | null }>; ancestors: Array<{ id: number; generation: number; stage: number; operator: string; fitness: number | null }> } | null;
  /** Chart 6. */
  pareto: { objectives: string[]; points: Array<{ id: number; x: number; y: number; front: boolean }> } | null;
  /** Chart 7. */
  timing: { points: Array<{ n: number; id: number; seconds: number | null; failed: boolean; reused: boolean }>; failures: Array<{ n: number; count: number }> };
  /** The HTML tables; `selection`: the candidate's score on the selection split (space select), null when not scored. */
  top: Array<{ id: number; stage: number; generation: number; operator: string; fitness: number; selection: number | null; metrics: Record<string, number | null> }>;
  /**
   * The run's chosen candidate when its space has `select` (src/search/select.ts): both its
   * scores and the optimism of the search; null for a run that exports the search's maximum.
   */
  selection: {
    candidate: number; rule: string; pool: number; searchFitness: number; selectionFitness: number | null; optimism: number | null;
    searchBest: { id: number; fitness: number }; reference: { id: number; searchFitness: number; selectionFitness: number } | null;
  } | null;
  baselines: SourceBaseline[];
}

/** A fixed recipe of `evomerge baselines` that a PS stage was warm-started from, and its candidate's full score. */
export interface FixedRecipe { label: string; stage: number; id: number; fitness: number }

/**
 * The fixed recipes the run's PS stages started from (space init: baselines), best first: the
 * engine lists them, with the hash of each one's recipe, in an event of kind 'warm-start'
 * (src/search/engine.ts recordWarmStart); each is matched to the first candidate of its stage
 * with that recipe hash that was scored on every item. A recipe whose candidate failed, or a run
 * started without the event (another init, or an older version), gives none.
 */
export function fixedRecipes(store: RunStore, run: RunRow, all: readonly CandidateRow[]): FixedRecipe[] {
  const out: FixedRecipe[] = [];
  const seen = new Set<string>();
  for (const e of store.events(run.id, 1_000_000)) {
    if (e.kind !== 'warm-start') continue;
    const data = e.data as { stage?: number; recipes?: Array<{ label?: string; recipeHash?: string }> } | null;
    const stage = data?.stage ?? 0;
    for (const r of data?.recipes ?? []) {
      if (!r.label || !r.recipeHash || seen.has(`${stage}/${r.recipeHash}`)) continue;
      seen.add(`${stage}/${r.recipeHash}`);
      const c = all.filter((x) => x.stage === stage && x.recipeHash === r.recipeHash && x.state === 'done' && x.fitness !== null && Number.isFinite(x.fitness) && isFullFidelity(x)).sort((a, b) => a.id - b.id)[0];
      if (c) out.push({ label: r.label, stage, id: c.id, fitness: c.fitness! });
    }
  }
  return out.sort((a, b) => b.fitness - a.fitness || a.id - b.id);
}

/** Finished candidates in the order they finished (ties by id), numbered from 1. */
export function evaluationOrder(rows: readonly CandidateRow[]): Array<CandidateRow & { n: number }> {
  return rows
    .filter((c) => c.state === 'done' || c.state === 'failed')
    .sort((a, b) => (a.finishedAt ?? '').localeCompare(b.finishedAt ?? '') || a.id - b.id)
    .map((c, i) => ({ ...c, n: i + 1 }));
}


/** The fitness of each scored candidate and the best-so-far line (failures and partial-fidelity estimates never count). */
export function fitnessSeries(ordered: ReadonlyArray<CandidateRow & { n: number }>): { points: FitnessPoint[]; bestSoFar: Array<{ n: number; id: number; fitness: number }> } {
  const points: FitnessPoint[] = [];
  const bestSoFar: Array<{ n: number; id: number; fitness: number }> = [];
  let best: { id: number; fitness: number } | null = null;
  for (const c of ordered) {
    if (c.state === 'done' && c.fitness !== null && Number.isFinite(c.fitness)) {
      points.push({ n: c.n, id: c.id, stage: c.stage, fitness: c.fitness });
      if (isFullFidelity(c) && (!best || c.fitness > best.fitness)) best = { id: c.id, fitness: c.fitness };
    }
    if (best) bestSoFar.push({ n: c.n, ...best });
  }
  return { points, bestSoFar };
}

/** The primary metric of an evaluator: its first metric other than `fitness` (fitness when it has none). */
export function primaryMetric(metrics: ReadonlyArray<{ evaluator: string; metric: string }>, evaluator: string): string {
  return metrics.find((m) => m.evaluator === evaluator && m.metric !== 'fitness' && m.metric !== FITNESS_SE)?.metric ?? 'fitness';
}

function numericSetting(s: ParamSetting | undefined): Array<{ filter: string | null; value: number | null }> {
  if (s === undefined) return [];
  if (typeof s === 'number') return [{ filter: null, value: s }];
  if (typeof s === 'boolean') return [{ filter: null, value: s ? 1 : 0 }];
  if (typeof s === 'string') return [{ filter: null, value: null }];
  if (Array.isArray(s)) {
    // a gradient is drawn at its mean (mergekit interpolates it over the slice's layers)
    if (s.every((x) => typeof x === 'number')) return [{ filter: null, value: (s as number[]).reduce((a, b) => a + b, 0) / s.length }];
    if (s.every((x) => typeof x !== 'object' || x === null)) return [{ filter: null, value: null }];
    return (s as Array<{ filter?: string | null; value: ParamSetting }>).map((c) => ({ filter: c.filter && c.filter !== '*' ? c.filter : null, value: numericSetting(c.value)[0]?.value ?? null }));
  }
  return numericSetting([s]);
}

/** A PS recipe's parameters by layer group: one series per (model, parameter, filter). */
export function parameterSeries(run: RunRow, recipe: Recipe): { groups: string[]; series: Array<{ label: string; values: Array<number | null> }> } {
  const slices = recipe.slices ?? [{ sources: (recipe.sources ?? []).map((s) => ({ model: s.model, layer_range: [0, 0] as [number, number], parameters: s.parameters })), parameters: undefined }];
  const groups = slices.map((s) => {
    const r = s.sources[0]!.layer_range;
    return recipe.slices ? (r[1] - r[0] === 1 ? `layer ${r[0]}` : `layers ${r[0]}-${r[1] - 1}`) : 'all layers';
  });
  // what the search evolved: kept tensors' pinned settings and fixed parameters are not drawn
  const resolved = run.space as { space?: { ps?: { evolve?: unknown } }; keep?: Record<string, string> } | null;
  const kept = new Set(Object.keys(resolved?.keep ?? {}));
  const evolve = resolved?.space?.ps?.evolve;
  const evolved = evolve ? new Set(Array.isArray(evolve) ? (evolve as string[]) : Object.keys(evolve as object)) : null;
  const collect = (onlyEvolved: boolean) => {
    const series = new Map<string, Array<number | null>>();
    const put = (k: string, filter: string | null | undefined, label: string, g: number, v: number | null) => {
      if (onlyEvolved && ((filter && kept.has(filter)) || (evolved && !evolved.has(k)))) return;
      if (!series.has(label)) series.set(label, new Array(slices.length).fill(null));
      series.get(label)![g] = v;
    };
    slices.forEach((s, g) => {
      for (const src of s.sources) {
        for (const [k, v] of Object.entries(src.parameters ?? {})) {
          for (const e of numericSetting(v)) put(k, e.filter, `${modelLabel(run, src.model)} ${k}${e.filter ? ` [${e.filter}]` : ''}`, g, e.value);
        }
      }
      for (const [k, v] of [...Object.entries(s.parameters ?? {}), ...Object.entries(recipe.parameters ?? {})]) {
        for (const e of numericSetting(v)) put(k, e.filter, `${k}${e.filter ? ` [${e.filter}]` : ''}`, g, e.value);
      }
    });
    return [...series].map(([label, values]) => ({ label, values }));
  };
  const series = collect(true);
  return { groups, series: series.length > 0 ? series : collect(false) };
}

/** Everything the report draws, from the store (and source baselines scored apart). */
export function reportData(store: RunStore, run: RunRow, baselines: readonly SourceBaseline[] = [], topK = 10): ReportData {
  const s = spaceOf(run);
  const all = store.candidates(run.id);
  const ordered = evaluationOrder(all);
  const { points, bestSoFar } = fitnessSeries(ordered);

  // chart 2: at each change of the best-so-far, its metrics
  const metricsOf = new Map<number, ReturnType<RunStore['metrics']>>();
  const metrics = (id: number) => {
    if (!metricsOf.has(id)) metricsOf.set(id, store.metrics(id));
    return metricsOf.get(id)!;
  };
  const changes = bestSoFar.filter((b, i) => i === 0 || bestSoFar[i - 1]!.id !== b.id);
  const evaluatorIds = s.evaluators.length ? s.evaluators.map((e) => e.id) : [...new Set(changes.flatMap((c) => metrics(c.id).map((m) => m.evaluator)))];
  const last = bestSoFar[bestSoFar.length - 1];
  const evaluatorTrend = evaluatorIds.map((ev) => {
    const metric = primaryMetric(changes.flatMap((c) => metrics(c.id)), ev);
    const pts = changes.map((c) => ({ n: c.n, id: c.id, value: metrics(c.id).find((m) => m.evaluator === ev && m.metric === metric)?.value ?? null }));
    // carry the last value to the final evaluation so the line spans the run
    if (last && pts.length && pts[pts.length - 1]!.n !== last.n) pts.push({ ...pts[pts.length - 1]!, n: last.n });
    return { evaluator: ev, metric, points: pts };
  });

  const done = all.filter((c) => c.state === 'done' && c.fitness !== null && isFullFidelity(c)).sort((a, b) => b.fitness! - a.fitness! || a.id - b.id);
  // the run's result: with select the chosen candidate, drawn in place of the search's maximum
  const chosen = (run.space as { space?: { select?: unknown } } | null)?.space?.select ? chosenCandidate(store, run) : null;
  const first = chosen ? [chosen.candidate, ...done.filter((c) => c.id !== chosen.candidate.id)] : done;
  const bestPs = first.find((c) => !isDfsRecipe(c.recipe));
  let parameters: ReportData['parameters'] = null;
  if (bestPs) {
    try {
      parameters = { candidate: bestPs.id, ...parameterSeries(run, bestPs.recipe as Recipe) };
    } catch {
      parameters = null;
    }
  }
  const bestDfs = first.find((c) => isDfsRecipe(c.recipe));
  const dfsPath: ReportData['dfsPath'] = bestDfs
    ? (() => {
        const r = bestDfs.recipe as DfsRecipe;
        return { candidate: bestDfs.id, sources: r.sources.map((x) => x.name), steps: r.steps.map((x, step) => ({ step, source: x.source, sourceName: r.sources[x.source]?.name ?? String(x.source), layer: x.layer, scale: x.scale })) };
      })()
    : null;

  const best = first[0];
  let lineage: ReportData['lineage'] = null;
  if (best) {
    const { chain } = lineageChain(store, best.id, Infinity);
    const node = (c: CandidateRow) => ({ id: c.id, generation: c.generation, stage: c.stage, operator: c.operator, fitness: c.fitness });
    const inChain = new Set(chain.map((e) => e.candidate.id));
    lineage = {
      candidate: best.id,
      chain: chain.map((e) => node(e.candidate)).reverse(),
      ancestors: store.lineage(best.id).filter((e) => !inChain.has(e.candidate.id)).map((e) => node(e.candidate)),
    };
  }

  let pareto: ReportData['pareto'] = null;
  if (isMultiObjective(run)) {
    const front = new Set(paretoFront(all).map((c) => c.id));
    const names = s.evaluators.map((e) => e.id);
    pareto = {
      objectives: [names[0] ?? 'objective 1', names[1] ?? 'objective 2'],
      points: all.filter((c) => c.state === 'done' && c.objectives && c.objectives.length >= 2).map((c) => ({ id: c.id, x: c.objectives![0]!, y: c.objectives![1]!, front: front.has(c.id) })),
    };
  }

  let failed = 0;
  const failures: Array<{ n: number; count: number }> = [];
  const timingPoints = ordered.map((c) => {
    if (c.state === 'failed') failed++;
    failures.push({ n: c.n, count: failed });
    return { n: c.n, id: c.id, seconds: c.evalMs === null ? null : c.evalMs / 1000, failed: c.state === 'failed', reused: c.reusedFrom !== null };
  });

  const top = done.slice(0, topK).map((c) => ({
    id: c.id, stage: c.stage, generation: c.generation, operator: c.operator, fitness: c.fitness!,
    selection: metrics(c.id).find((m) => m.evaluator === SELECTION && m.metric === 'fitness')?.value ?? null,
    metrics: Object.fromEntries(metrics(c.id).filter((m) => m.metric !== 'fitness' && m.metric !== FITNESS_SE && !isSelectionMetric(m)).map((m) => [`${m.evaluator} ${m.metric}`, m.value])),
  }));

  return {
    run: { name: run.name, status: runState(run), mode: s.space.mode ?? 'ps', objective: s.space.objective ?? 'weighted-sum', evaluators: s.evaluators.map((e) => ({ id: e.id, weight: e.weight })), counts: store.counts(run.id), items: store.itemEvaluations(run.id) },
    fitness: { points, bestSoFar, baselines: baselines.filter((b) => b.fitness !== null).map((b) => ({ label: b.label, fitness: b.fitness! })), fixedRecipes: fixedRecipes(store, run, all) },
    evaluatorTrend,
    parameters,
    dfsPath,
    lineage,
    pareto,
    timing: { points: timingPoints, failures },
    top,
    baselines: [...baselines],
    selection: chosen ? {
      candidate: chosen.candidate.id, rule: chosen.rule, pool: chosen.pool, searchFitness: chosen.searchFitness, selectionFitness: chosen.selectionFitness,
      optimism: chosen.optimism, searchBest: { id: chosen.searchBest.id, fitness: chosen.searchBest.fitness! }, reference: chosen.reference,
    } : null,
  };
}
