/**
 * Genetic algorithm for real, integer and binary genes (D. E. Goldberg, "Genetic Algorithms in
 * Search, Optimization and Machine Learning", 1989; operators in ./variation.ts), in two modes:
 *
 * - `generational`: a whole population of children per generation; the `elitism` best of the
 *   previous population survive unchanged (De Jong 1975).
 * - `steady-state`: after the initial population, every finished evaluation earns one new child
 *   at the next `ask`, and each told child replaces the worst member (Whitley's GENITOR, 1989),
 *   so workers never wait for a generation barrier. Outcomes may arrive in any order and in
 *   partial batches.
 *
 * Fitness is maximised; failed outcomes (null, NaN) rank below everything and never become best.
 */
import { z } from 'zod';
import { Rng } from '../tensor/rng.ts';
import {
  type AskResult, type BaseState, type Optimizer, type Outcome, type Proposal,
  OptimizerOptionsError, OutcomeMismatchError, betterBest, checkDim, checkKind, initialPoints, initialPointsSchema, isFailed, parseOptions, usableFitness,
} from './types.ts';
import { boundsSchema, resolveBounds } from './bounds.ts';
import { type GeneType, type VariationSettings, makeChild, randomGene, snapGene, tournament } from './variation.ts';

const geneType = z.enum(['real', 'integer', 'binary']);

export const gaOptionsSchema = z.strictObject({
  /** Box of the genes; default [0, 1] for every gene. */
  bounds: boundsSchema.optional(),
  /** One type for all genes or one per gene. */
  geneTypes: z.union([geneType, z.array(geneType)]).default('real'),
  popsize: z.number().int().min(2).default(32),
  mode: z.enum(['generational', 'steady-state']).default('generational'),
  tournamentSize: z.number().int().min(1).default(2),
  crossover: z.enum(['uniform', 'sbx']).default('sbx'),
  crossoverRate: z.number().min(0).max(1).default(0.9),
  sbxEta: z.number().nonnegative().default(15),
  mutation: z.enum(['gaussian', 'polynomial']).default('polynomial'),
  /** Per-gene mutation probability; default 1/n. */
  mutationRate: z.number().min(0).max(1).optional(),
  mutationSigma: z.number().positive().default(0.1),
  polyEta: z.number().nonnegative().default(20),
  /** Survivors carried unchanged into the next generation (generational mode). */
  elitism: z.number().int().min(0).default(1),
  maxEvaluations: z.number().int().positive().optional(),
  maxGenerations: z.number().int().positive().optional(),
  targetFitness: z.number().optional(),
  /**
   * Genomes that replace the first individuals of the initial population (each of length dim;
   * values outside the box are clamped into it, integer and binary genes snapped as sampled
   * ones are); more points than popsize make the initial population that large.
   */
  initial: initialPointsSchema(),
});
export type GaOptions = z.output<typeof gaOptionsSchema>;

export interface GaMember {
  id: string;
  genome: number[];
  fitness: number | null;
}

export interface GaState extends BaseState {
  kind: 'ga';
  options: GaOptions;
  lo: number[];
  hi: number[];
  types: GeneType[];
  population: GaMember[];
  /** Asked and not yet told. */
  pending: Proposal[];
  /** Told children of the current generation (generational mode). */
  offspring: GaMember[];
  generation: number;
  /** Next proposal index (ids are `ga-<index>`). */
  counter: number;
  /** Steady state: children owed for finished evaluations. */
  credits: number;
  done: string | null;
}

function init(dim: number, options: unknown, seed: string | number): GaState {
  checkDim('ga', dim);
  const o = parseOptions('ga', gaOptionsSchema, options);
  const box = resolveBounds('ga', dim, o.bounds, [0, 1])!;
  const types: GeneType[] = typeof o.geneTypes === 'string' ? new Array<GeneType>(dim).fill(o.geneTypes) : o.geneTypes.slice();
  if (types.length !== dim) throw new OptimizerOptionsError('ga', `geneTypes has ${types.length} entries but the genome has ${dim} genes`);
  for (let i = 0; i < dim; i++) {
    if (types[i] === 'integer' && Math.floor(box.hi[i]!) < Math.ceil(box.lo[i]!)) {
      throw new OptimizerOptionsError('ga', `integer gene ${i} has no integer in [${box.lo[i]}, ${box.hi[i]}]`);
    }
  }
  initialPoints('ga', dim, o.initial, box); // refuse a point of the wrong length now, not at the first ask
  if (o.elitism >= o.popsize) throw new OptimizerOptionsError('ga', `elitism (${o.elitism}) must be smaller than popsize (${o.popsize})`);
  return {
    kind: 'ga', dim, rng: Rng.seeded(seed).state(), evaluations: 0, best: null, options: o, lo: box.lo, hi: box.hi, types,
    population: [], pending: [], offspring: [], generation: 0, counter: 0, credits: 0, done: null,
  };
}

/** Ranks by usable fitness, failures last; ties keep the earlier member first. */
function better(a: GaMember, b: GaMember): boolean {
  return usableFitness(a.fitness) > usableFitness(b.fitness);
}

function settings(s: GaState): VariationSettings {
  const o = s.options;
  return {
    crossover: o.crossover, crossoverRate: o.crossoverRate, sbxEta: o.sbxEta, mutation: o.mutation,
    mutationRate: o.mutationRate ?? 1 / s.dim, mutationSigma: o.mutationSigma, polyEta: o.polyEta,
  };
}

function children(s: GaState, rng: Rng, count: number): Proposal[] {
  const pop = s.population;
  const v = settings(s);
  const out: Proposal[] = [];
  const pick = () => pop[tournament(rng, pop.length, s.options.tournamentSize, (a, b) => better(pop[a]!, pop[b]!))]!;
  for (let k = 0; k < count; k++) {
    const a = pick();
    const b = pick();
    const c = makeChild(rng, a.genome, b.genome, s.types, s.lo, s.hi, v);
    out.push({
      id: `ga-${s.counter++}`, genome: c.genome, operator: c.operator,
      parentIds: c.operator === 'crossover' ? [a.id, b.id] : [a.id],
    });
  }
  return out;
}

function randomProposals(s: GaState, rng: Rng, count: number): Proposal[] {
  const out: Proposal[] = [];
  const box = { lo: s.lo, hi: s.hi };
  for (const p of initialPoints('ga', s.dim, s.options.initial, box)) {
    const genome = s.types.map((t, i) => snapGene(p[i]!, t, s.lo[i]!, s.hi[i]!));
    out.push({ id: `ga-${s.counter++}`, genome, operator: 'init', parentIds: [] });
  }
  for (let k = out.length; k < count; k++) {
    const genome = s.types.map((t, i) => snapGene(randomGene(rng, t, s.lo[i]!, s.hi[i]!), t, s.lo[i]!, s.hi[i]!));
    out.push({ id: `ga-${s.counter++}`, genome, operator: 'init', parentIds: [] });
  }
  return out;
}

function ask(prev: GaState): AskResult<GaState> {
  checkKind('ga', prev);
  if (prev.done) return { proposals: [], state: prev };
  const s: GaState = { ...prev };
  const rng = Rng.fromState(s.rng);
  let proposals: Proposal[] = [];
  const started = s.population.length > 0 || s.pending.length > 0 || s.offspring.length > 0;
  if (!started) {
    proposals = randomProposals(s, rng, s.options.popsize);
  } else if (s.options.mode === 'steady-state') {
    if (s.credits > 0 && s.population.length > 0) {
      proposals = children(s, rng, s.credits);
      s.credits = 0;
    }
  } else if (s.pending.length === 0) {
    proposals = children(s, rng, s.options.popsize - Math.min(s.options.elitism, s.population.length));
  }
  s.pending = [...s.pending, ...proposals];
  s.rng = rng.state();
  return { proposals, state: s };
}

function sortMembers(m: GaMember[]): GaMember[] {
  return m.map((x, i) => [x, i] as const).sort((p, q) => usableFitness(q[0].fitness) - usableFitness(p[0].fitness) || p[1] - q[1]).map((p) => p[0]);
}

function tell(prev: GaState, outcomes: readonly Outcome[]): GaState {
  checkKind('ga', prev);
  if (outcomes.length === 0) return prev;
  const s: GaState = { ...prev, pending: prev.pending.slice(), population: prev.population.slice(), offspring: prev.offspring.slice() };
  const o = s.options;
  for (const out of outcomes) {
    const k = s.pending.findIndex((p) => p.id === out.id);
    if (k < 0) throw new OutcomeMismatchError('ga', `outcome '${out.id}' is not a pending proposal`);
    const p = s.pending[k]!;
    s.pending.splice(k, 1);
    const fitness = isFailed(out.fitness) ? null : (out.fitness as number);
    const member: GaMember = { id: p.id, genome: p.genome, fitness };
    s.evaluations++;
    s.best = betterBest(s.best, p.id, p.genome, fitness);
    if (o.mode === 'steady-state') {
      s.credits++;
      s.population.push(member);
      if (s.population.length > o.popsize) {
        // GENITOR: the worst member (failures first, then the oldest among equals) leaves
        let worst = 0;
        for (let i = 1; i < s.population.length; i++) {
          if (usableFitness(s.population[i]!.fitness) < usableFitness(s.population[worst]!.fitness)) worst = i;
        }
        s.population.splice(worst, 1);
      }
      if (s.evaluations % o.popsize === 0) s.generation++;
    } else {
      s.offspring.push(member);
    }
  }
  if (o.mode === 'generational' && s.pending.length === 0) {
    const elites = sortMembers(s.population).slice(0, Math.min(o.elitism, s.population.length));
    s.population = sortMembers([...elites, ...s.offspring]).slice(0, o.popsize);
    s.offspring = [];
    s.generation++;
  }
  s.done = doneReason(s);
  return s;
}

function doneReason(s: GaState): string | null {
  const o = s.options;
  if (o.targetFitness !== undefined && s.best && s.best.fitness >= o.targetFitness) return 'ftarget';
  if (o.maxEvaluations !== undefined && s.evaluations >= o.maxEvaluations) return 'maxfevals';
  if (o.maxGenerations !== undefined && s.generation >= o.maxGenerations) return 'maxgenerations';
  return null;
}

function isDone(s: GaState): string | null {
  checkKind('ga', s);
  return s.done;
}

export const ga: Optimizer<GaOptions, GaState> = {
  id: 'ga',
  title: 'Genetic algorithm (tournament selection, SBX/uniform crossover, polynomial/Gaussian/bit-flip mutation; generational or steady-state)',
  reference: 'Goldberg 1989; Deb and Agrawal 1995 (SBX); Deb and Goyal 1996 (polynomial mutation); Whitley 1989 (steady state)',
  optionsSchema: gaOptionsSchema,
  defaultOptions: {},
  init,
  ask,
  tell,
  isDone,
};
