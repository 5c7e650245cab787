/**
 * Variation and selection operators shared by the genetic algorithm and NSGA-II.
 *
 * - Simulated binary crossover (SBX): K. Deb and R. B. Agrawal, "Simulated Binary Crossover for
 *   Continuous Search Space", Complex Systems 9 (1995); the bounded form of Deb's NSGA-II
 *   reference code (`realcross`, K. Deb et al. 2002), where the spread factor's distribution is
 *   truncated so both children stay in [lo, hi].
 * - Polynomial mutation: K. Deb and M. Goyal, "A Combined Genetic Adaptive Search (GeneAS)",
 *   Computer Science and Informatics 26 (1996); the bounded form of the same reference code
 *   (`real_mutate_ind`).
 * - Tournament selection: D. E. Goldberg and K. Deb, "A Comparative Analysis of Selection Schemes
 *   Used in Genetic Algorithms", FOGA 1991.
 *
 * The functions take their uniform draws as arguments so each formula can be checked by hand.
 */
import type { Rng } from '../tensor/rng.ts';

export type GeneType = 'real' | 'integer' | 'binary';

/** SBX spread factor beta_q for one bound side (Deb's bounded SBX), given u in [0, 1). */
export function sbxBetaQ(u: number, beta: number, eta: number): number {
  const alpha = 2 - beta ** -(eta + 1);
  return u <= 1 / alpha ? (u * alpha) ** (1 / (eta + 1)) : (1 / (2 - u * alpha)) ** (1 / (eta + 1));
}

/**
 * Bounded SBX of two parent values with one uniform u: children
 * c1 = ((y1 + y2) - beta_q1 (y2 - y1)) / 2 and c2 = ((y1 + y2) + beta_q2 (y2 - y1)) / 2, with
 * y1 <= y2 and beta = 1 + 2 (y1 - lo)/(y2 - y1) (resp. 1 + 2 (hi - y2)/(y2 - y1)).
 */
export function sbxPair(x1: number, x2: number, lo: number, hi: number, eta: number, u: number): [number, number] {
  if (Math.abs(x1 - x2) <= 1e-14) return [x1, x2];
  const y1 = Math.min(x1, x2);
  const y2 = Math.max(x1, x2);
  const bq1 = sbxBetaQ(u, 1 + (2 * (y1 - lo)) / (y2 - y1), eta);
  const bq2 = sbxBetaQ(u, 1 + (2 * (hi - y2)) / (y2 - y1), eta);
  const c1 = 0.5 * (y1 + y2 - bq1 * (y2 - y1));
  const c2 = 0.5 * (y1 + y2 + bq2 * (y2 - y1));
  return [Math.min(hi, Math.max(lo, c1)), Math.min(hi, Math.max(lo, c2))];
}

/** Bounded polynomial mutation of y with one uniform u (Deb and Goyal 1996). */
export function polynomialMutation(y: number, lo: number, hi: number, eta: number, u: number): number {
  const d1 = (y - lo) / (hi - lo);
  const d2 = (hi - y) / (hi - lo);
  const pow = 1 / (eta + 1);
  let dq: number;
  if (u <= 0.5) {
    const val = 2 * u + (1 - 2 * u) * (1 - d1) ** (eta + 1);
    dq = val ** pow - 1;
  } else {
    const val = 2 * (1 - u) + 2 * (u - 0.5) * (1 - d2) ** (eta + 1);
    dq = 1 - val ** pow;
  }
  return Math.min(hi, Math.max(lo, y + dq * (hi - lo)));
}

/** Snap a gene to its type: integers round, binary genes are 0 or 1; always inside [lo, hi]. */
export function snapGene(v: number, type: GeneType, lo: number, hi: number): number {
  if (type === 'binary') return v >= 0.5 ? 1 : 0;
  const c = Math.min(hi, Math.max(lo, v));
  if (type === 'integer') return Math.min(Math.floor(hi), Math.max(Math.ceil(lo), Math.round(c)));
  return c;
}

export function randomGene(rng: Rng, type: GeneType, lo: number, hi: number): number {
  if (type === 'binary') return rng.next() < 0.5 ? 0 : 1;
  if (type === 'integer') {
    const a = Math.ceil(lo);
    const b = Math.floor(hi);
    return a + rng.int(b - a + 1);
  }
  return lo + (hi - lo) * rng.next();
}

/** Index of the tournament winner among `size` uniform draws (with replacement); `better(a, b)` is true when a beats b. */
export function tournament(rng: Rng, count: number, size: number, better: (a: number, b: number) => boolean): number {
  let best = rng.int(count);
  for (let k = 1; k < size; k++) {
    const c = rng.int(count);
    if (better(c, best)) best = c;
  }
  return best;
}

export interface VariationSettings {
  crossover: 'uniform' | 'sbx';
  crossoverRate: number;
  sbxEta: number;
  mutation: 'gaussian' | 'polynomial';
  /** Per-gene probability; default 1/n. */
  mutationRate: number;
  /** Gaussian step as a fraction of the gene's range. */
  mutationSigma: number;
  polyEta: number;
}

/**
 * One child from two parents: crossover with probability crossoverRate, then per-gene mutation
 * (bit flip for binary genes). A child identical to its first parent gets one forced mutation so
 * no evaluation is spent on a copy. Returns the genome and the operator that dominated.
 */
export function makeChild(
  rng: Rng, a: readonly number[], b: readonly number[], types: readonly GeneType[], lo: readonly number[], hi: readonly number[],
  v: VariationSettings,
): { genome: number[]; operator: 'crossover' | 'mutation' } {
  const n = a.length;
  let child = a.slice();
  let crossed = false;
  if (rng.next() < v.crossoverRate) {
    crossed = true;
    for (let i = 0; i < n; i++) {
      if (v.crossover === 'sbx' && types[i] !== 'binary') {
        // Deb's SBX treats each variable with probability 1/2, then keeps one child at random
        if (rng.next() < 0.5) {
          const [c1, c2] = sbxPair(a[i]!, b[i]!, lo[i]!, hi[i]!, v.sbxEta, rng.next());
          child[i] = rng.next() < 0.5 ? c1 : c2;
        }
      } else if (rng.next() < 0.5) {
        child[i] = b[i]!;
      }
    }
  }
  const mutateGene = (i: number): void => {
    const t = types[i]!;
    if (t === 'binary') child[i] = 1 - child[i]!;
    else if (v.mutation === 'polynomial') child[i] = polynomialMutation(child[i]!, lo[i]!, hi[i]!, v.polyEta, rng.next());
    else {
      const span = v.mutationSigma * (hi[i]! - lo[i]!);
      let x = child[i]! + span * rng.normal();
      // reflect into the box so the step distribution is not piled up on the bound
      for (let k = 0; k < 4 && (x < lo[i]! || x > hi[i]!); k++) x = x < lo[i]! ? 2 * lo[i]! - x : 2 * hi[i]! - x;
      child[i] = x;
    }
    if (t === 'integer' && Math.round(child[i]!) === Math.round(a[i]!)) {
      // an integer step that rounds back to the parent is no mutation: move one unit
      child[i] = a[i]! + (rng.next() < 0.5 ? -1 : 1);
    }
  };
  for (let i = 0; i < n; i++) {
    if (rng.next() < v.mutationRate) {
      mutateGene(i);
    }
  }
  child = child.map((x, i) => snapGene(x, types[i]!, lo[i]!, hi[i]!));
  if (child.every((x, i) => x === a[i])) {
    mutateGene(rng.int(n));
    child = child.map((x, i) => snapGene(x, types[i]!, lo[i]!, hi[i]!));
  }
  return { genome: child, operator: crossed ? 'crossover' : 'mutation' };
}
