/**
 * The optimizer contract shared by every optimizer in evomerge (src/README.md, "Contracts").
 *
 * An optimizer is a set of pure functions over a plain-JSON state: `init` builds the state,
 * `ask` returns proposals (and the state that remembers them), `tell` consumes outcomes,
 * `isDone` says why the run should stop. The state carries the RNG state, so a state written
 * to the store and read back in another process continues with the same proposals.
 *
 * Conventions: fitness is maximised; an outcome whose fitness is `null` or NaN has failed, is
 * ranked after every real value and never becomes the best. Genomes live in a box
 * (`bounds`, ./bounds.ts), and every asked genome lies inside it.
 */
import { z } from 'zod';
import { InputError, RuntimeFailure } from '../errors.ts';
import type { RngState } from '../tensor/rng.ts';

/** How a proposal was made: the lineage the store records beside its parents. */
export type Operator = 'sample' | 'crossover' | 'mutation' | 'elite' | 'restart' | 'init';

export interface Proposal {
  /** Unique within the run and deterministic (derived from generation and index). */
  id: string;
  genome: number[];
  parentIds: string[];
  operator: Operator;
}

export interface Outcome {
  id: string;
  /** Maximised. `null` (or NaN) marks a failed evaluation. */
  fitness: number | null;
  /** For multi-objective optimizers (NSGA-II): every objective maximised. */
  objectives?: number[];
}

export interface AskResult<S> {
  proposals: Proposal[];
  state: S;
}

/** The best point seen so far, as the optimizer knows it. */
export interface Best {
  id: string;
  genome: number[];
  fitness: number;
}

/** Fields every optimizer state has, so the search loop can read them without knowing the kind. */
export interface BaseState {
  kind: string;
  dim: number;
  rng: RngState;
  /** Evaluations told so far (failed ones included). */
  evaluations: number;
  best: Best | null;
}

export interface Optimizer<O = unknown, S extends BaseState = BaseState> {
  id: string;
  title: string;
  reference: string;
  /** Validates the options a search space gives (the parsed type fills in defaults). */
  optionsSchema: z.ZodType<O>;
  /**
   * The options this id stands for before a search space's own (`{}` for most; `sep-cmaes` is
   * CMA-ES with `{ separable: true }`). The registry's schema of a space's `optimizer:` block
   * fills an absent `options` with `optionsSchema.parse(defaultOptions)`.
   */
  defaultOptions: Readonly<Record<string, unknown>>;
  init(dim: number, options: unknown, seed: string | number): S;
  ask(state: S): AskResult<S>;
  tell(state: S, outcomes: readonly Outcome[]): S;
  isDone(state: S): string | null;
}

/** Bad optimizer options (from a search space or the API). */
export class OptimizerOptionsError extends InputError {
  constructor(optimizer: string, message: string) {
    super('E_OPTIM_OPTIONS', `optimizer '${optimizer}': ${message}`);
  }
}

/** An optimizer id that is not in the registry. */
export class UnknownOptimizerError extends InputError {
  constructor(id: string, known: readonly string[]) {
    super('E_OPTIM_UNKNOWN', `unknown optimizer '${id}'; choose one of ${known.join(', ')}`);
  }
}

/** An outcome that does not belong to any pending proposal: a bug in the caller or a mixed-up state. */
export class OutcomeMismatchError extends RuntimeFailure {
  constructor(optimizer: string, message: string) {
    super('E_OPTIM_OUTCOME', `optimizer '${optimizer}': ${message}; tell only outcomes of proposals asked from this state`);
  }
}

/** A state of another optimizer, or from an incompatible version. */
export class OptimizerStateError extends RuntimeFailure {
  constructor(optimizer: string, message: string) {
    super('E_OPTIM_STATE', `optimizer '${optimizer}': ${message}`);
  }
}

/** Fitness as a sortable number: failures (null, NaN) become -Infinity, so they rank last. */
export function usableFitness(f: number | null | undefined): number {
  return f === null || f === undefined || Number.isNaN(f) ? -Infinity : f;
}

export function isFailed(f: number | null | undefined): boolean {
  return f === null || f === undefined || Number.isNaN(f);
}

/** Parses options with a zod schema, turning a zod error into an `OptimizerOptionsError`. */
export function parseOptions<O>(id: string, schema: z.ZodType<O>, options: unknown): O {
  const r = schema.safeParse(options ?? {});
  if (!r.success) {
    // option objects are strict: a misspelt key would otherwise be dropped without a word
    const shape = (schema as unknown as { shape?: Record<string, unknown> }).shape;
    const known = shape ? `; the options of '${id}' are ${Object.keys(shape).join(', ')}` : '';
    const msg = r.error.issues
      .map((i) => `${i.path.length ? i.path.join('.') : '(options)'}: ${i.message}${i.code === 'unrecognized_keys' ? known : ''}`)
      .join('; ');
    throw new OptimizerOptionsError(id, `${msg} (see the optimizer's options in the docs)`);
  }
  return r.data;
}

export function checkKind(id: string, state: BaseState): void {
  if (!state || state.kind !== id) {
    throw new OptimizerStateError(id, `state is of kind '${state?.kind}', expected '${id}'`);
  }
}

export function checkDim(id: string, dim: number): void {
  if (!Number.isInteger(dim) || dim < 1) throw new OptimizerOptionsError(id, `dimension must be a positive integer, got ${dim}`);
}

/** Updates `best` with an outcome (never with a failure). Returns the (possibly new) best. */
export function betterBest(best: Best | null, id: string, genome: readonly number[], fitness: number | null): Best | null {
  if (isFailed(fitness)) return best;
  if (best === null || (fitness as number) > best.fitness) return { id, genome: genome.slice(), fitness: fitness as number };
  return best;
}

/**
 * Schema of the `initial` option every optimizer takes: genomes to evaluate first (a warm start
 * from known-good recipes, e.g. the best fixed merge).
 */
export const initialPointsSchema = () => z.array(z.array(z.number())).optional();

/**
 * Validates and repairs the `initial` option: every point must have `dim` values (else an
 * OptimizerOptionsError naming the index); values outside the box are clamped into it (no box:
 * kept as given). Returns fresh copies.
 */
export function initialPoints(id: string, dim: number, initial: readonly (readonly number[])[] | undefined, box: { lo: number[]; hi: number[] } | null): number[][] {
  if (!initial) return [];
  return initial.map((p, k) => {
    if (p.length !== dim) throw new OptimizerOptionsError(id, `initial[${k}] has ${p.length} values but the genome has ${dim} dimensions`);
    return p.map((v, i) => {
      if (!Number.isFinite(v)) throw new OptimizerOptionsError(id, `initial[${k}][${i}] = ${v} is not a finite number`);
      return box ? Math.min(box.hi[i]!, Math.max(box.lo[i]!, v)) : v;
    });
  });
}
