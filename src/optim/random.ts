/**
 * Random search: independent uniform points in the box (J. Bergstra and Y. Bengio, "Random
 * Search for Hyper-Parameter Optimization", JMLR 13, 2012). The baseline every other optimizer
 * must beat on the same budget.
 */
import { z } from 'zod';
import { Rng } from '../tensor/rng.ts';
import {
  type AskResult, type BaseState, type Optimizer, type Outcome, type Proposal,
  OutcomeMismatchError, betterBest, checkDim, checkKind, isFailed, initialPoints, initialPointsSchema, parseOptions,
} from './types.ts';
import { boundsSchema, resolveBounds } from './bounds.ts';

export const randomOptionsSchema = z.strictObject({
  bounds: boundsSchema.optional(),
  /** Proposals per ask. */
  batch: z.number().int().min(1).default(16),
  maxEvaluations: z.number().int().positive().optional(),
  targetFitness: z.number().optional(),
  /**
   * Genomes proposed first (each of length dim; values outside the box are clamped into it),
   * before any random point: the first asks return them in order, with operator 'init'.
   */
  initial: initialPointsSchema(),
});
export type RandomOptions = z.output<typeof randomOptionsSchema>;

export interface RandomState extends BaseState {
  kind: 'random';
  options: RandomOptions;
  lo: number[];
  hi: number[];
  /** Ids and genomes asked and not yet told. */
  pending: Array<{ id: string; genome: number[] }>;
  counter: number;
  /** Initial points not yet proposed (absent in states saved before `initial` existed). */
  queue?: number[][];
  done: string | null;
}

function init(dim: number, options: unknown, seed: string | number): RandomState {
  checkDim('random', dim);
  const o = parseOptions('random', randomOptionsSchema, options);
  const box = resolveBounds('random', dim, o.bounds, [0, 1])!;
  const queue = initialPoints('random', dim, o.initial, box);
  return { kind: 'random', dim, rng: Rng.seeded(seed).state(), evaluations: 0, best: null, options: o, lo: box.lo, hi: box.hi, pending: [], counter: 0, queue, done: null };
}

function ask(prev: RandomState): AskResult<RandomState> {
  checkKind('random', prev);
  if (prev.done) return { proposals: [], state: prev };
  const rng = Rng.fromState(prev.rng);
  let counter = prev.counter;
  let count = prev.options.batch;
  if (prev.options.maxEvaluations !== undefined) count = Math.min(count, prev.options.maxEvaluations - prev.evaluations - prev.pending.length);
  const proposals: Proposal[] = [];
  const queue = (prev.queue ?? []).slice();
  for (let k = 0; k < count; k++) {
    const injected = queue.shift();
    if (injected) {
      proposals.push({ id: `random-${counter++}`, genome: injected.slice(), parentIds: [], operator: 'init' });
      continue;
    }
    const genome = prev.lo.map((l, i) => l + (prev.hi[i]! - l) * rng.next());
    proposals.push({ id: `random-${counter++}`, genome, parentIds: [], operator: 'sample' });
  }
  const pending = [...prev.pending, ...proposals.map((p) => ({ id: p.id, genome: p.genome }))];
  return { proposals, state: { ...prev, rng: rng.state(), counter, pending, queue } };
}

function tell(prev: RandomState, outcomes: readonly Outcome[]): RandomState {
  checkKind('random', prev);
  const s: RandomState = { ...prev, pending: prev.pending.slice() };
  for (const o of outcomes) {
    const k = s.pending.findIndex((p) => p.id === o.id);
    if (k < 0) throw new OutcomeMismatchError('random', `outcome '${o.id}' is not a pending proposal`);
    const p = s.pending[k]!;
    s.pending.splice(k, 1);
    s.evaluations++;
    s.best = betterBest(s.best, p.id, p.genome, isFailed(o.fitness) ? null : o.fitness);
  }
  const opt = s.options;
  if (opt.targetFitness !== undefined && s.best && s.best.fitness >= opt.targetFitness) s.done = 'ftarget';
  else if (opt.maxEvaluations !== undefined && s.evaluations >= opt.maxEvaluations) s.done = 'maxfevals';
  return s;
}

function isDone(s: RandomState): string | null {
  checkKind('random', s);
  return s.done;
}

export const randomSearch: Optimizer<RandomOptions, RandomState> = {
  id: 'random',
  title: 'Random search (uniform in the box)',
  reference: 'Bergstra and Bengio, JMLR 13, 2012',
  optionsSchema: randomOptionsSchema,
  defaultOptions: {},
  init,
  ask,
  tell,
  isDone,
};
