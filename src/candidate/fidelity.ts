/**
 * Multi-fidelity evaluation (space `fidelity`): a candidate is scored on a growing, nested
 * subset of each evaluator's items and stops as soon as it cannot beat the score it was
 * proposed against. This is racing (Maron & Moore 1994, "Hoeffding races"; Birattari et al. 2002,
 * F-Race) against one incumbent, on the rungs of successive halving (Jamieson & Talwalkar 2016,
 * "Non-stochastic best arm identification and hyperparameter optimization"): a cheap subset
 * first, the whole set only for candidates that can still be best.
 *
 * Exact resume: everything that decides a candidate's fidelity is fixed when it is proposed.
 * The threshold is the best full-fidelity fitness among the candidates told before the proposal
 * (committed state, stored with the candidate); the items of a rung are a prefix of a permutation
 * seeded by the evaluator id, the same for every candidate, worker and session; and the stop
 * rule depends on the candidate's own scores only. So the candidate's fidelity and score are a
 * function of (recipe, threshold), whatever else runs beside it.
 */
import type { EvalResult, Evaluator, PartialScore } from '../eval/types.ts';
import { Rng, deriveSeed } from '../tensor/rng.ts';

/** The space's option as a worker task carries it. */
export interface FidelityTask {
  /** Fractions of each evaluator's items, increasing, the last 1. */
  rungs: number[];
  /** z of the upper confidence bound. */
  confidence: number;
  /** The full-fidelity fitness to beat; null: score every item. */
  threshold: number | null;
}

/** The items of a rung-scored evaluator in the order rungs take them: a Fisher-Yates shuffle seeded by the evaluator id. */
export function itemOrder(evaluatorId: string, n: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  const rng = Rng.seeded(deriveSeed('fidelity', evaluatorId));
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/** How many items (of n) each rung scores: ceil(fraction n), at least 1, never fewer than the rung before; the last all n. */
export function rungSizes(rungs: readonly number[], n: number): number[] {
  const out: number[] = [];
  for (const [i, r] of rungs.entries()) {
    const k = i === rungs.length - 1 ? n : Math.min(n, Math.max(1, Math.ceil(r * n - 1e-9)));
    out.push(Math.max(k, out[i - 1] ?? 0));
  }
  return out;
}

/** Adds partial sums of disjoint item sets (nothing is scored twice: a rung adds only its new items). */
export function addPartial(a: PartialScore | null, b: PartialScore): PartialScore {
  if (!a) return { count: b.count, sums: { ...b.sums }, primary: { ...b.primary } };
  const sums = { ...a.sums };
  for (const [k, v] of Object.entries(b.sums)) sums[k] = (sums[k] ?? 0) + v;
  return { count: a.count + b.count, sums, primary: { sum: a.primary.sum + b.primary.sum, sumSq: a.primary.sumSq + b.primary.sumSq } };
}

/**
 * The standard error of the mean of the primary metric over n items drawn without replacement
 * from N (a prefix of a uniform permutation is a simple random sample): sqrt((s^2 / n)(1 - n/N))
 * with s^2 the items' sample variance (Cochran 1977, "Sampling Techniques", 3rd ed., theorem
 * 2.2 and eq. 2.8 for s^2). For 0/1 items s^2 = p(1-p) n/(n-1). Zero once every item is scored;
 * infinite below 2 items (no variance estimate: never stop on one item).
 */
export function standardError(p: PartialScore, total: number): number {
  const n = p.count;
  if (n >= total) return 0;
  if (n < 2) return Infinity;
  const mean = p.primary.sum / n;
  const s2 = Math.max(0, (p.primary.sumSq - n * mean * mean) / (n - 1));
  return Math.sqrt((s2 / n) * (1 - n / total));
}

/**
 * The upper confidence bound of a weighted sum of evaluator fitnesses: sum w_i f_i + z
 * sqrt(sum w_i^2 se_i^2), the evaluators' item samples being independent (the variance of a sum
 * of independent estimates is the weighted sum of their variances). Hoeffding races use a
 * distribution-free bound; this is the normal-approximation bound racing also uses (Maron &
 * Moore 1994, section 2).
 */
export function upperBound(parts: ReadonlyArray<{ weight: number; fitness: number; se: number }>, z: number): number {
  let f = 0;
  let v = 0;
  for (const p of parts) {
    f += p.weight * p.fitness;
    v += p.weight * p.weight * p.se * p.se;
  }
  return f + z * Math.sqrt(v);
}

/** An evaluator of a candidate with its weight, able to score a subset of its items or not. */
export interface RacedEvaluator {
  id: string;
  weight: number;
  ev: Evaluator;
}

export interface RaceResult {
  /** Per evaluator (in the given order), its result at the fidelity reached. */
  results: EvalResult[];
  /** The rung fraction reached (1: every item). */
  fidelity: number;
  /** Items scored, over all evaluators. */
  itemEvals: number;
  /** The rung index reached. */
  rung: number;
}

/**
 * Scores one candidate by racing: evaluators that cannot score a subset of their items
 * (a command without `subset`, generate, perplexity, a per-class metric) first, on all items;
 * then the others rung by rung, each rung scoring only its new items (a command of subset form
 * `first` rescores its prefix), stopping when the upper bound of the fitness falls below the
 * threshold. With no threshold every item is scored in one go. Items spent counts every item
 * scored, a rescored one each time.
 */
export async function race(evaluators: readonly RacedEvaluator[], f: FidelityTask, score: {
  whole(e: RacedEvaluator): Promise<EvalResult>;
  items(e: RacedEvaluator, indices: readonly number[]): Promise<PartialScore>;
}): Promise<RaceResult> {
  const results: Array<EvalResult | null> = evaluators.map(() => null);
  let itemEvals = 0;
  const raced: Array<{ i: number; n: number; order: number[]; sizes: number[]; partial: PartialScore | null; first: boolean; spent: number }> = [];
  for (const [i, e] of evaluators.entries()) {
    const n = e.ev.itemCount?.() ?? null;
    if (n === null || !e.ev.scoreItems || !e.ev.resultOf) {
      const r = await score.whole(e);
      results[i] = r;
      itemEvals += r.samples;
    } else {
      // a program with its own order (a command's subset) is given positions in it, not the seeded order
      const own = e.ev.subset ?? null;
      raced.push({ i, n, order: own ? Array.from({ length: n }, (_, k) => k) : itemOrder(e.id, n), sizes: rungSizes(f.rungs, n), partial: null, first: own === 'first', spent: 0 });
    }
  }
  const last = f.rungs.length - 1;
  let rung = f.threshold === null || raced.length === 0 ? last : 0;
  for (;;) {
    for (const r of raced) {
      const from = r.partial?.count ?? 0;
      const to = r.sizes[rung]!;
      if (to > from && r.first) {
        // a tool that takes only its first N items (lm-eval --limit) scores the rung's whole prefix again
        r.partial = await score.items(evaluators[r.i]!, r.order.slice(0, to));
        r.spent += to;
      } else if (to > from) {
        r.partial = addPartial(r.partial, await score.items(evaluators[r.i]!, r.order.slice(from, to)));
        r.spent += to - from;
      } else r.partial ??= { count: 0, sums: {}, primary: { sum: 0, sumSq: 0 } };
    }
    if (rung === last) break;
    const parts = evaluators.map((e, i) => {
      const r = raced.find((x) => x.i === i);
      if (!r) return { weight: e.weight, fitness: results[i]!.fitness, se: 0 };
      const res = e.ev.resultOf!(r.partial!);
      // the fitness is the primary metric with its sign set: its standard error is the metric's
      return { weight: e.weight, fitness: res.fitness, se: standardError(r.partial!, r.n) };
    });
    if (upperBound(parts, f.confidence) < f.threshold!) break;
    rung++;
  }
  for (const r of raced) {
    results[r.i] = evaluators[r.i]!.ev.resultOf!(r.partial!);
    itemEvals += r.spent;
  }
  return { results: results as EvalResult[], fidelity: raced.length === 0 ? 1 : f.rungs[rung]!, itemEvals, rung };
}
