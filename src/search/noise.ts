/**
 * Noise in a search's fitness, and choosing a final candidate that allows for it. Pure functions
 * over candidates' stored per-evaluator scores and standard errors (src/eval/stderr.ts).
 *
 * A search that scores N candidates on one split and keeps the maximum keeps, besides the best
 * merge, the luckiest draw of the split's noise: for N independent Gaussian errors of standard
 * deviation s, E[max] <= s sqrt(2 ln N) (the maximal inequality for sub-Gaussian variables, e.g.
 * Boucheron, Lugosi and Massart 2013, "Concentration Inequalities", section 2.5), the "winner's
 * curse" of model selection. Candidates of one search share most of their items' outcomes, so
 * their errors are correlated and the bound is pessimistic; it says when a split is too small to
 * tell apart the gains one hopes for.
 *
 * Final-choice rules (space `choose`), each over a pool of candidates:
 * - `max`: the raw maximum (the default);
 * - `lcb`: the maximum of the lower confidence bound fitness - z se (a pessimistic estimate, as
 *   in the confidence bounds of bandit best-arm selection, e.g. Kaufmann and Kalyanakrishnan 2013,
 *   "Information complexity in bandit subset selection", LUCB);
 * - `shrink`: each evaluator's scores shrunk toward the pool's mean on that evaluator by the
 *   positive-part James-Stein factor B = min(1, (k - 3) / (k - 1) x mean(se^2) / var(scores))
 *   (Efron and Morris 1975, "Data analysis using Stein's estimator and its generalizations",
 *   JASA 70, eq. 2.2 with an estimated mean; Morris 1983, "Parametric empirical Bayes inference",
 *   section 2): an evaluator whose differences between candidates are mostly its noise counts
 *   little in the choice, one whose differences are real counts fully.
 */

/** One evaluator's part of a candidate's fitness. */
export interface ScorePart {
  id: string;
  weight: number;
  fitness: number;
  /** Its standard error; null when the evaluator cannot know it. */
  se: number | null;
}

/** The standard error of a weighted sum of independent evaluators' scores: sqrt(sum w^2 se^2); null when some se is unknown. */
export function fitnessSE(parts: readonly ScorePart[]): number | null {
  let v = 0;
  for (const p of parts) {
    if (p.se === null) return null;
    v += p.weight * p.weight * p.se * p.se;
  }
  return Math.sqrt(v);
}

/** The bound s sqrt(2 ln n) on the expected maximum of n independent N(0, s^2) errors (0 for a single draw). */
export function expectedMaxNoise(se: number, n: number): number {
  return n < 2 ? 0 : se * Math.sqrt(2 * Math.log(n));
}

/** What the noise check of a stage says about each evaluator and about the whole fitness. */
export interface NoiseCheck {
  candidates: number;
  gain: number;
  /**
   * Per evaluator with a known standard error: its expected maximum noise in the fitness, whether
   * that alone reaches the gain, and by how much its items would have to grow for it not to
   * (se scales as 1 / sqrt(n), so the factor is (maxNoise / gain)^2).
   */
  evaluators: Array<{ id: string; weight: number; se: number; maxNoise: number; tooSmall: boolean; itemsFactor: number }>;
  /** The whole fitness (null when some evaluator's se is unknown). */
  total: { se: number; maxNoise: number; tooSmall: boolean } | null;
}

/**
 * For N planned candidates: each evaluator's expected maximum noise in the fitness (|weight| x se
 * x sqrt(2 ln N)) against `gain`, the smallest fitness gain the search is meant to tell apart.
 */
export function noiseCheck(parts: readonly ScorePart[], candidates: number, gain: number): NoiseCheck {
  const evaluators = parts.filter((p) => p.se !== null).map((p) => {
    const maxNoise = Math.abs(p.weight) * expectedMaxNoise(p.se!, candidates);
    return { id: p.id, weight: p.weight, se: p.se!, maxNoise, tooSmall: maxNoise >= gain, itemsFactor: (maxNoise / gain) ** 2 };
  });
  const se = fitnessSE(parts);
  const max = se === null ? 0 : expectedMaxNoise(se, candidates);
  return { candidates, gain, evaluators, total: se === null ? null : { se, maxNoise: max, tooSmall: max >= gain } };
}

/** The search log's lines on a noise check: one summary, and a warning per evaluator too small for the plan. */
export function noiseLines(c: NoiseCheck): string[] {
  const pts = (x: number) => x.toPrecision(2);
  const lines: string[] = [];
  if (c.total) lines.push(`noise: the fitness's standard error is ${pts(c.total.se)}; the best of ${c.candidates} candidates may lie up to about ${pts(c.total.maxNoise)} above its true score by chance (se x sqrt(2 ln N)), against a gain to tell apart of ${c.gain} (space noise.gain)`);
  for (const e of c.evaluators.filter((x) => x.tooSmall)) {
    lines.push(`warning: evaluator ${e.id} is too small for ${c.candidates} candidates: its noise alone (se ${pts(e.se)}, weight ${pts(e.weight)}) may add ${pts(e.maxNoise)} to the best fitness, at least the gain of ${c.gain} the search is meant to find; about ${Math.ceil(e.itemsFactor)}x its items would bring it below. Score the top candidates on a second split (space select) or give it more items`);
  }
  return lines;
}

export type ChoiceRule = 'max' | 'lcb' | 'shrink';

/** A candidate of a choice: its id, its per-evaluator parts, and (as a tie-break) its search fitness. */
export interface PoolEntry {
  id: number;
  parts: ScorePart[];
  /** The search's fitness, the tie-break after the rule's value (then the lower id). */
  searchFitness: number;
}

/** The weighted sum of parts. */
export function weightedSum(parts: readonly ScorePart[]): number {
  return parts.reduce((a, p) => a + p.weight * p.fitness, 0);
}

/**
 * Per evaluator (by id), the positive-part James-Stein factor B of a pool (see the module
 * comment): 0 keeps the scores, 1 replaces them by the pool's mean. Evaluators with an unknown
 * se, or pools of fewer than 4 candidates (the estimator needs k >= 4), keep their scores.
 */
export function shrinkFactors(pool: readonly PoolEntry[]): Map<string, { mean: number; factor: number }> {
  const out = new Map<string, { mean: number; factor: number }>();
  const k = pool.length;
  const ids = [...new Set(pool.flatMap((c) => c.parts.map((p) => p.id)))];
  for (const id of ids) {
    const xs = pool.map((c) => c.parts.find((p) => p.id === id)).filter((p): p is ScorePart => p !== undefined);
    const mean = xs.reduce((a, p) => a + p.fitness, 0) / Math.max(1, xs.length);
    if (xs.length !== k || k < 4 || xs.some((p) => p.se === null)) {
      out.set(id, { mean, factor: 0 });
      continue;
    }
    const v = xs.reduce((a, p) => a + (p.fitness - mean) ** 2, 0) / (k - 1);
    const s2 = xs.reduce((a, p) => a + p.se! ** 2, 0) / k;
    out.set(id, { mean, factor: v <= 0 ? 1 : Math.min(1, ((k - 3) / (k - 1)) * (s2 / v)) });
  }
  return out;
}

/** The value a rule ranks a pool's candidates by (its estimate of each candidate's fitness). */
export function ruleValues(pool: readonly PoolEntry[], rule: ChoiceRule, z = 1): number[] {
  if (rule === 'max') return pool.map((c) => weightedSum(c.parts));
  if (rule === 'lcb') return pool.map((c) => weightedSum(c.parts) - z * (fitnessSE(c.parts) ?? 0));
  const f = shrinkFactors(pool);
  return pool.map((c) => c.parts.reduce((a, p) => {
    const s = f.get(p.id)!;
    return a + p.weight * (s.mean + (1 - s.factor) * (p.fitness - s.mean));
  }, 0));
}

/** The index of the candidate a rule chooses (ties: higher search fitness, then lower id); -1 for an empty pool. */
export function choose(pool: readonly PoolEntry[], rule: ChoiceRule, z = 1): number {
  const v = ruleValues(pool, rule, z);
  let best = -1;
  for (let i = 0; i < pool.length; i++) {
    if (!Number.isFinite(v[i]!)) continue;
    if (best < 0) {
      best = i;
      continue;
    }
    const a = pool[i]!;
    const b = pool[best]!;
    if (v[i]! > v[best]! || (v[i] === v[best] && (a.searchFitness > b.searchFitness || (a.searchFitness === b.searchFitness && a.id < b.id)))) best = i;
  }
  return best;
}
