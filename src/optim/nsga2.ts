/**
 * NSGA-II: K. Deb, A. Pratap, S. Agarwal and T. Meyarivan, "A Fast and Elitist Multiobjective
 * Genetic Algorithm: NSGA-II", IEEE Trans. Evolutionary Computation 6(2), 2002. Fast
 * non-dominated sorting (section III-A), crowding distance (III-B), the crowded-comparison
 * binary tournament and (mu + lambda) survival of the merged parents and children (III-C), with
 * SBX and polynomial mutation as in the paper's experiments.
 *
 * Every objective is maximised (the search loop's convention). An outcome's `objectives` default
 * to `[fitness]`; a failed outcome (no finite objectives) is dominated by every successful one.
 * The current Pareto front (rank 0 of the population) is part of the state.
 */
import { z } from 'zod';
import { Rng } from '../tensor/rng.ts';
import {
  type AskResult, type BaseState, type Optimizer, type Outcome, type Proposal,
  OutcomeMismatchError, betterBest, checkDim, checkKind, initialPoints, initialPointsSchema, isFailed, parseOptions,
} from './types.ts';
import { boundsSchema, resolveBounds } from './bounds.ts';
import { makeChild, randomGene, snapGene, type GeneType } from './variation.ts';

export const nsga2OptionsSchema = z.strictObject({
  bounds: boundsSchema.optional(),
  popsize: z.number().int().min(4).default(40),
  crossoverRate: z.number().min(0).max(1).default(0.9),
  sbxEta: z.number().nonnegative().default(15),
  polyEta: z.number().nonnegative().default(20),
  mutationRate: z.number().min(0).max(1).optional(),
  maxEvaluations: z.number().int().positive().optional(),
  maxGenerations: z.number().int().positive().optional(),
  /**
   * Genomes that replace the first individuals of the initial population (each of length dim;
   * values outside the box are clamped into it); more points than popsize make the initial
   * population that large (survival then keeps popsize).
   */
  initial: initialPointsSchema(),
});
export type Nsga2Options = z.output<typeof nsga2OptionsSchema>;

export interface Nsga2Member {
  id: string;
  genome: number[];
  /** Maximised objectives; null for a failed evaluation. */
  objectives: number[] | null;
  fitness: number | null;
  rank: number;
  /** Crowding distance; null stands for infinity (JSON has no Infinity). */
  crowding: number | null;
}

export interface Nsga2State extends BaseState {
  kind: 'nsga2';
  options: Nsga2Options;
  lo: number[];
  hi: number[];
  population: Nsga2Member[];
  pending: Proposal[];
  offspring: Nsga2Member[];
  paretoFront: Nsga2Member[];
  generation: number;
  counter: number;
  done: string | null;
}

/** a dominates b (maximisation): no worse in every objective, better in one. Failures are dominated by everything. */
export function dominates(a: readonly number[] | null, b: readonly number[] | null): boolean {
  if (a === null) return false;
  if (b === null) return true;
  let strictly = false;
  for (let i = 0; i < a.length; i++) {
    if (a[i]! < b[i]!) return false;
    if (a[i]! > b[i]!) strictly = true;
  }
  return strictly;
}

/** Fast non-dominated sort (Deb et al. 2002, III-A): the fronts as lists of indices. */
export function nonDominatedSort(objs: ReadonlyArray<readonly number[] | null>): number[][] {
  const n = objs.length;
  const dominated: number[][] = Array.from({ length: n }, () => []);
  const count = new Array<number>(n).fill(0);
  const fronts: number[][] = [[]];
  for (let p = 0; p < n; p++) {
    for (let q = 0; q < n; q++) {
      if (p === q) continue;
      if (dominates(objs[p]!, objs[q]!)) dominated[p]!.push(q);
      else if (dominates(objs[q]!, objs[p]!)) count[p]!++;
    }
    if (count[p] === 0) fronts[0]!.push(p);
  }
  let i = 0;
  while (fronts[i]!.length > 0) {
    const next: number[] = [];
    for (const p of fronts[i]!) {
      for (const q of dominated[p]!) {
        if (--count[q]! === 0) next.push(q);
      }
    }
    i++;
    fronts.push(next.sort((a, b) => a - b));
  }
  fronts.pop();
  return fronts;
}

/** Crowding distances of one front (III-B); boundary points get Infinity. */
export function crowdingDistance(objs: ReadonlyArray<readonly number[] | null>, front: readonly number[]): number[] {
  const d = new Array<number>(front.length).fill(0);
  const m = objs[front[0]!]?.length ?? 0;
  if (front.length <= 2 || m === 0 || objs[front[0]!] === null) return d.fill(Infinity);
  for (let k = 0; k < m; k++) {
    const order = front.map((_, i) => i).sort((a, b) => objs[front[a]!]![k]! - objs[front[b]!]![k]! || a - b);
    const fmin = objs[front[order[0]!]!]![k]!;
    const fmax = objs[front[order[order.length - 1]!]!]![k]!;
    d[order[0]!] = Infinity;
    d[order[order.length - 1]!] = Infinity;
    if (fmax === fmin) continue;
    for (let j = 1; j < order.length - 1; j++) {
      d[order[j]!] = d[order[j]!]! + (objs[front[order[j + 1]!]!]![k]! - objs[front[order[j - 1]!]!]![k]!) / (fmax - fmin);
    }
  }
  return d;
}

/** Survival (III-C): fill by fronts, the last front by decreasing crowding distance. Sets rank and crowding. */
function survive(members: Nsga2Member[], size: number): Nsga2Member[] {
  const objs = members.map((m) => m.objectives);
  const fronts = nonDominatedSort(objs);
  const out: Nsga2Member[] = [];
  for (let r = 0; r < fronts.length && out.length < size; r++) {
    const front = fronts[r]!;
    const cd = crowdingDistance(objs, front);
    const ranked = front.map((idx, i) => ({ ...members[idx]!, rank: r, crowding: Number.isFinite(cd[i]!) ? cd[i]! : null }));
    if (out.length + ranked.length <= size) out.push(...ranked);
    else {
      const byCrowd = ranked.map((m, i) => [m, i] as const).sort((a, b) => crowd(b[0]) - crowd(a[0]) || a[1] - b[1]);
      out.push(...byCrowd.slice(0, size - out.length).map((p) => p[0]));
    }
  }
  return out;
}

function crowd(m: Nsga2Member): number {
  return m.crowding === null ? Infinity : m.crowding;
}

/** Crowded comparison operator (III-B): lower rank wins, then larger crowding distance. */
function crowdedBetter(a: Nsga2Member, b: Nsga2Member): boolean {
  return a.rank < b.rank || (a.rank === b.rank && crowd(a) > crowd(b));
}

function init(dim: number, options: unknown, seed: string | number): Nsga2State {
  checkDim('nsga2', dim);
  const o = parseOptions('nsga2', nsga2OptionsSchema, options);
  const box = resolveBounds('nsga2', dim, o.bounds, [0, 1])!;
  initialPoints('nsga2', dim, o.initial, box); // refuse a point of the wrong length now, not at the first ask
  return {
    kind: 'nsga2', dim, rng: Rng.seeded(seed).state(), evaluations: 0, best: null, options: o, lo: box.lo, hi: box.hi,
    population: [], pending: [], offspring: [], paretoFront: [], generation: 0, counter: 0, done: null,
  };
}

function ask(prev: Nsga2State): AskResult<Nsga2State> {
  checkKind('nsga2', prev);
  if (prev.done || prev.pending.length > 0) return { proposals: [], state: prev };
  const s: Nsga2State = { ...prev };
  const rng = Rng.fromState(s.rng);
  const N = s.options.popsize;
  const proposals: Proposal[] = [];
  const types: GeneType[] = new Array<GeneType>(s.dim).fill('real');
  if (s.population.length === 0) {
    for (const genome of initialPoints('nsga2', s.dim, s.options.initial, { lo: s.lo, hi: s.hi })) {
      proposals.push({ id: `nsga2-${s.counter++}`, genome, operator: 'init', parentIds: [] });
    }
    for (let k = proposals.length; k < N; k++) {
      const genome = types.map((t, i) => snapGene(randomGene(rng, t, s.lo[i]!, s.hi[i]!), t, s.lo[i]!, s.hi[i]!));
      proposals.push({ id: `nsga2-${s.counter++}`, genome, operator: 'init', parentIds: [] });
    }
  } else {
    const pop = s.population;
    const pick = () => {
      // binary tournament with the crowded-comparison operator
      const a = pop[rng.int(pop.length)]!;
      const b = pop[rng.int(pop.length)]!;
      return crowdedBetter(b, a) ? b : a;
    };
    const v = {
      crossover: 'sbx' as const, crossoverRate: s.options.crossoverRate, sbxEta: s.options.sbxEta, mutation: 'polynomial' as const,
      mutationRate: s.options.mutationRate ?? 1 / s.dim, mutationSigma: 0.1, polyEta: s.options.polyEta,
    };
    for (let k = 0; k < N; k++) {
      const a = pick();
      const b = pick();
      const c = makeChild(rng, a.genome, b.genome, types, s.lo, s.hi, v);
      proposals.push({ id: `nsga2-${s.counter++}`, genome: c.genome, operator: c.operator, parentIds: c.operator === 'crossover' ? [a.id, b.id] : [a.id] });
    }
  }
  s.pending = proposals;
  s.rng = rng.state();
  return { proposals, state: s };
}

function objectivesOf(o: Outcome): number[] | null {
  const v = o.objectives ?? (isFailed(o.fitness) ? null : [o.fitness as number]);
  if (!v || v.length === 0 || v.some((x) => !Number.isFinite(x))) return null;
  return v.slice();
}

function tell(prev: Nsga2State, outcomes: readonly Outcome[]): Nsga2State {
  checkKind('nsga2', prev);
  if (outcomes.length === 0) return prev;
  const s: Nsga2State = { ...prev, pending: prev.pending.slice(), offspring: prev.offspring.slice() };
  for (const o of outcomes) {
    const k = s.pending.findIndex((p) => p.id === o.id);
    if (k < 0) throw new OutcomeMismatchError('nsga2', `outcome '${o.id}' is not a pending proposal`);
    const p = s.pending[k]!;
    s.pending.splice(k, 1);
    const objectives = objectivesOf(o);
    const fitness = isFailed(o.fitness) ? null : (o.fitness as number);
    s.offspring.push({ id: p.id, genome: p.genome, objectives, fitness, rank: 0, crowding: null });
    s.evaluations++;
    s.best = betterBest(s.best, p.id, p.genome, fitness);
  }
  if (s.pending.length === 0) {
    // merge parents and children in a fixed order (parents, then children by id order of asking)
    const children = s.offspring.slice().sort((a, b) => idIndex(a.id) - idIndex(b.id));
    s.population = survive([...s.population, ...children], s.options.popsize);
    s.offspring = [];
    s.paretoFront = s.population.filter((m) => m.rank === 0 && m.objectives !== null);
    s.generation++;
  }
  const o = s.options;
  if (o.maxEvaluations !== undefined && s.evaluations >= o.maxEvaluations) s.done = 'maxfevals';
  else if (o.maxGenerations !== undefined && s.generation >= o.maxGenerations) s.done = 'maxgenerations';
  return s;
}

function idIndex(id: string): number {
  return Number(id.slice(id.lastIndexOf('-') + 1));
}

function isDone(s: Nsga2State): string | null {
  checkKind('nsga2', s);
  return s.done;
}

export const nsga2: Optimizer<Nsga2Options, Nsga2State> = {
  id: 'nsga2',
  title: 'NSGA-II (non-dominated sorting, crowding distance, several objectives)',
  reference: 'Deb, Pratap, Agarwal and Meyarivan, IEEE TEVC 6(2), 2002',
  optionsSchema: nsga2OptionsSchema,
  defaultOptions: {},
  init,
  ask,
  tell,
  isDone,
};
