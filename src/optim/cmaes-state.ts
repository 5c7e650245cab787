/**
 * CMA-ES options and its plain-JSON state: the types the core (./cmaes.ts), its strategy
 * parameters (./cmaes-params.ts), the termination tests (./cmaes-stop.ts) and the restarts
 * (./restarts.ts) share. The state is stored in the run database after every tell, so its field names are a
 * file format: a run written by an older version must resume (test/optim.resume.test.ts).
 */
import { z } from 'zod';
import { boundsSchema, type Box } from './bounds.ts';
import type { BipopState } from './restarts.ts';
import { type BaseState, initialPointsSchema } from './types.ts';

export const cmaesOptionsSchema = z.strictObject({
  /** Initial step size; default a quarter of the mean box width (1 without bounds). */
  sigma0: z.number().positive().optional(),
  /** Initial mean; default the box centre (zeros without bounds). */
  x0: z.array(z.number()).optional(),
  /**
   * A common box [lo, hi] or one pair per dimension; default [0, 1] for every gene (the
   * search's normalised genome, as for the other optimizers); `null` for an unbounded search.
   */
  bounds: boundsSchema.nullable().optional(),
  /** Population size lambda; default 4 + floor(3 ln n) (tutorial eq. 48). */
  popsize: z.number().int().min(2).optional(),
  /** Diagonal covariance (sep-CMA-ES): linear time and memory, for high dimensions. */
  separable: z.boolean().default(false),
  /**
   * Step-size adaptation: cumulative (CSA, tutorial eq. 43-44) or two-point (TPA, Hansen 2008;
   * pycma `sigma_adaptation.CMAAdaptSigmaTPA`). `auto` is pycma's rule (`AdaptSigma=True`):
   * TPA for the separable variant above 299 dimensions, CSA otherwise.
   */
  stepSize: z.enum(['auto', 'csa', 'tpa']).default('auto'),
  /** Active CMA: negative weights for the worst half (tutorial section 3.6; pycma's default). */
  active: z.boolean().default(true),
  restarts: z.enum(['none', 'ipop', 'bipop']).default('none'),
  maxRestarts: z.number().int().min(0).default(9),
  /** IPOP population growth factor (Auger and Hansen 2005 use 2). */
  incPopsize: z.number().min(1).default(2),
  /** On restart, draw a fresh mean uniformly in the box (else restart from x0). */
  restartFromRandom: z.boolean().default(true),
  /** Stop (all restarts included) after this many evaluations. */
  maxEvaluations: z.number().int().positive().optional(),
  /** Stop once a fitness of at least this value is seen. */
  targetFitness: z.number().optional(),
  // pycma's termination tolerances (CMAOptions defaults)
  tolfun: z.number().nonnegative().default(1e-11),
  tolfunhist: z.number().nonnegative().default(1e-12),
  tolx: z.number().nonnegative().default(1e-11),
  tolconditioncov: z.number().positive().default(1e14),
  tolupsigma: z.number().positive().default(1e20),
  tolfacupx: z.number().positive().default(1e3),
  tolflatfitness: z.number().int().min(0).default(1),
  /** Default int(100 + 100 n^1.5 / lambda). */
  tolstagnation: z.number().int().positive().optional(),
  /** Iterations per run; default 100 + 150 (n+3)^2 / sqrt(lambda). */
  maxiter: z.number().int().positive().optional(),
  /**
   * Genomes to evaluate in the first generation(s) of the first run, as pycma's `inject(...,
   * force=True)`: they replace samples (after TPA's two mirrors), are asked verbatim with
   * operator 'init', lambda at most per generation (more spill into the next generations), and
   * are not injected again after a restart. Values outside the bounds are clamped into the box
   * (with bounds); each must have dim values. In the update their step (x - m) / sigma is
   * clipped in Mahalanobis norm, so a far-away point cannot blow up sigma or C (see
   * `clipInjectedSteps` in ./cmaes.ts).
   */
  initial: initialPointsSchema(),
});
export type CmaesOptions = z.output<typeof cmaesOptionsSchema>;

/**
 * Strategy parameters of one run (they depend on n and lambda only). The stored names are
 * pycma's; the tutorial's symbols are mu_eff = `mueff`, c_c = `cc`, c_sigma = `cs`,
 * d_sigma = `damps`, E||N(0, I)|| = `chiN`.
 */
export interface CmaesParams {
  lambda: number;
  mu: number;
  /** lambda recombination weights: positive ones sum to 1, negative ones scaled as pycma does. */
  weights: number[];
  mueff: number;
  cc: number;
  cs: number;
  c1: number;
  cmu: number;
  damps: number;
  chiN: number;
  /** Iterations between eigendecompositions (pycma's lazy_update_gap). */
  lazyGap: number;
}

/** The generation asked and not yet fully told. */
export interface Pending {
  ids: string[];
  /** Internal (untransformed) points, one per proposal. */
  x: number[][];
  /** ||z_k||^2, the squared Mahalanobis norm of y_k (needed by the active update). */
  z2: number[];
  /** TPA: the first this many points are the mean-shift mirrors (0 or 2). */
  injected?: number;
  /** Slots [initialAt, initialAt + initial) hold points of the `initial` option. */
  initial?: number;
  initialAt?: number;
  /** f = -fitness per slot once told; null while waiting. */
  f: Array<number | null>;
  told: number;
}

/**
 * The state. Paper symbols: p_sigma = `ps`, p_c = `pc`, m = `mean`; C = B D^2 B^T with `D` the
 * square roots of the eigenvalues.
 */
export interface CmaesState extends BaseState {
  kind: 'cmaes';
  options: CmaesOptions;
  bounds: Box | null;
  separable: boolean;
  /** Global generation counter (ids), across restarts. */
  generation: number;
  /** Index of the current run (0 = first). */
  run: number;
  runEvaluations: number;
  runLambda: number;
  defaultLambda: number;
  sigma0: number;
  runSigma0: number;
  bipop: BipopState;
  params: CmaesParams;
  mean: number[];
  sigma: number;
  /** Full: n*n row-major; separable: the n variances. */
  C: number[];
  /** Eigenvectors as rows (full only); empty when separable. */
  B: number[];
  /** Square roots of the eigenvalues (full) or of the variances (separable). */
  D: number[];
  pc: number[];
  ps: number[];
  /**
   * TPA state (absent with CSA, and in states saved before TPA existed, which keep CSA):
   * the smoothed rank difference `s` and the last mean shift `dir` = m - m_old (empty before
   * the first tell of a run).
   */
  tpa?: { s: number; dir: number[] };
  /** Iterations (tells) of the current run. */
  iteration: number;
  eigenAt: number;
  pending: Pending | null;
  /** Points of the `initial` option still to be asked (absent in older states: none). */
  inject?: number[][];
  lastParents: string[];
  firstOfRun: boolean;
  /** Best f of recent iterations, newest last (pycma fit.hist). */
  histFit: number[];
  histBest: number[];
  histMedian: number[];
  flatCount: number;
  runStop: string | null;
  done: string | null;
}

/**
 * f of a failed evaluation: worse than any real value, and representable in JSON (Infinity
 * would become null, which a restored state would read as "not told").
 */
export const FAILED_F = Number.MAX_VALUE;
