/**
 * CMA-ES: the covariance matrix adaptation evolution strategy, with active (negative)
 * recombination weights, a separable (diagonal) variant, box bounds by a smooth transform,
 * and IPOP / BIPOP restarts, as pure ask/tell over a plain-JSON state.
 *
 * References:
 * - N. Hansen, "The CMA Evolution Strategy: A Tutorial", arXiv:1604.00772 (2016); equation
 *   numbers below are the tutorial's.
 * - pycma 4.x (github.com/CMA-ES/pycma): default strategy parameters in
 *   `evolution_strategy._CMAParameters.set`, negative weights in
 *   `recombination_weights.RecombinationWeights.finalize_negative_weights`, step size in
 *   `sigma_adaptation.CMAAdaptSigmaCSA`, the covariance update and lazy eigendecomposition in
 *   `sampler.GaussFullSampler`, termination in `evolution_strategy._CMAStopDict`, the bound
 *   transform in `transformations.BoxConstraintsLinQuadTransformation`.
 * - R. Ros and N. Hansen, "A Simple Modification in CMA-ES Achieving Linear Time and Space
 *   Complexity", PPSN 2008 (separable CMA-ES).
 * - A. Auger and N. Hansen, "A Restart CMA Evolution Strategy With Increasing Population Size",
 *   CEC 2005 (IPOP); N. Hansen, "Benchmarking a BI-Population CMA-ES on the BBOB-2009 Function
 *   Testbed", GECCO 2009 (BIPOP).
 *
 * Internally CMA-ES minimises f = -fitness (failed evaluations: f = Number.MAX_VALUE, ranked last;
 * not Infinity, which JSON would turn into null and a restored state would read as "not told").
 * The flat-fitness and f-value termination tests and the f histories see real values only, and a
 * generation in which every point failed leaves the distribution unchanged (see `update`).
 * Each asked point is sampled as x_k = m + sigma * B (D . z_k), z_k ~ N(0, I) (eq. 38-40); with
 * bounds the genome is the transform of x_k, which lies in the box by construction.
 */
import { z } from 'zod';
import { Rng } from '../tensor/rng.ts';
import { symmetricEigen } from './linalg.ts';
import {
  type AskResult, type BaseState, type Optimizer, type Outcome, type Proposal,
  OptimizerOptionsError, OutcomeMismatchError, betterBest, checkDim, checkKind, initialPoints, initialPointsSchema, isFailed, parseOptions, resolveBounds,
} from './types.ts';

const boundsSchema = z.union([
  z.tuple([z.number(), z.number()]),
  z.array(z.tuple([z.number(), z.number()])),
]);

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
   * clipped in Mahalanobis norm, so a far-away point cannot blow up sigma or C (see `update`).
   */
  initial: initialPointsSchema(),
});
export type CmaesOptions = z.output<typeof cmaesOptionsSchema>;

/** Strategy parameters of one run (depend on n and lambda only). */
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

interface Pending {
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

export interface CmaesState extends BaseState {
  kind: 'cmaes';
  options: CmaesOptions;
  bounds: { lo: number[]; hi: number[] } | null;
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
  bipop: { largeEvals: number; smallEvals: number; largeLambda: number; regime: 'large' | 'small' };
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

/** Default population size, tutorial eq. (48). */
export function defaultPopsize(n: number): number {
  return 4 + Math.floor(3 * Math.log(n));
}

/**
 * Strategy parameters as pycma computes them (`_CMAParameters.set`, `CMAAdaptSigmaCSA.initialize`,
 * `RecombinationWeights`); the separable ones from the same file (c1_sep, cmu_sep, cc_sep).
 */
export function cmaesParams(n: number, lambda: number, separable: boolean, active = true): CmaesParams {
  // raw weights w'_i = ln((lambda+1)/2) - ln i, i = 1..lambda (tutorial eq. 49)
  const raw = Array.from({ length: lambda }, (_, i) => Math.log((lambda + 1) / 2) - Math.log(i + 1));
  let mu = 0;
  while (mu < lambda && raw[mu]! > 0) mu++;
  const sumPos = raw.slice(0, mu).reduce((a, b) => a + b, 0);
  const weights = raw.map((w) => (w > 0 ? w / sumPos : w));
  const mueff = 1 / weights.slice(0, mu).reduce((a, w) => a + w * w, 0); // eq. (8), positive weights sum to 1
  const neg = raw.slice(mu);
  const sumNegRaw = neg.reduce((a, b) => a + b, 0);
  const mueffMinus = sumNegRaw === 0 ? 0 : (sumNegRaw * sumNegRaw) / neg.reduce((a, w) => a + w * w, 0);

  let c1: number;
  let cmu: number;
  let cc: number;
  if (!separable) {
    // pycma: c1 = min(1, lambda/6) * 2 / ((n+1.3)^2 + mueff)  (tutorial eq. 57, alpha_cov = 2)
    c1 = (Math.min(1, lambda / 6) * 2) / ((n + 1.3) ** 2 + mueff);
    // pycma: cmu = min(1 - c1, 2 (0.25 + mueff + 1/mueff - 2) / ((n+2)^2 + mueff))  (eq. 58 with offset 1/4)
    cmu = Math.min(1 - c1, (2 * (0.25 + mueff + 1 / mueff - 2)) / ((n + 2) ** 2 + mueff));
    // cc = (4 + mueff/n) / (n + 4 + 2 mueff/n)  (eq. 56)
    cc = (4 + mueff / n) / (n + 4 + (2 * mueff) / n);
  } else {
    // pycma: c1_sep = 1 / (n + 2 sqrt(n) + mueff/n)  (conedf with df = n)
    c1 = 1 / (n + 2 * Math.sqrt(n) + mueff / n);
    // pycma: cmu_sep = min(1 - c1_sep, (0.25 + mueff + 1/mueff - 2) / (n + 4 sqrt(n) + mueff/2))  (cmudf)
    cmu = Math.min(1 - c1, (0.25 + mueff + 1 / mueff - 2) / (n + 4 * Math.sqrt(n) + mueff / 2));
    // pycma: cc_sep = (1 + 1/n + mueff/n) / (sqrt(n) + 1/n + 2 mueff/n)
    cc = (1 + 1 / n + mueff / n) / (Math.sqrt(n) + 1 / n + (2 * mueff) / n);
  }
  // Every learning rate capped so no decay factor can turn negative, also with the huge
  // populations of late IPOP restarts (CyberAgent cmaes 0.9.1 leaves the sep rates uncapped).
  c1 = Math.min(c1, 1);
  cmu = Math.max(0, Math.min(cmu, 1 - c1));
  cc = Math.min(cc, 1);

  // Negative weights (pycma finalize_negative_weights): sum |w-| = 1 + c1/cmu, then limited
  // by (1 - c1 - cmu)/(cmu n) (positive definiteness, full CMA only) and 1 + 2 mueff-/(mueff+2).
  if (active && lambda > mu && cmu > 0) {
    const setSum = 1 + c1 / cmu;
    let factor = setSum / Math.abs(sumNegRaw);
    let sumNeg = setSum;
    const limits = [1 + (2 * mueffMinus) / (mueff + 2)];
    if (!separable) limits.unshift((1 - c1 - cmu) / cmu / n);
    for (const lim of limits) {
      if (sumNeg > lim) {
        factor *= lim / sumNeg;
        sumNeg = lim;
      }
    }
    for (let i = mu; i < lambda; i++) weights[i] = raw[i]! * factor;
  } else {
    for (let i = mu; i < lambda; i++) weights[i] = 0;
  }

  // CSA (pycma CMAAdaptSigmaCSA.initialize): cs = (mueff + 2) / (n + mueff + 3),
  // damps = 1 + 2 max(0, sqrt((mueff-1)/(n+1)) - 1) + cs  (tutorial eq. 55 with pycma's +3)
  const cs = Math.min(1, (mueff + 2) / (n + mueff + 3));
  const damps = 1 + 2 * Math.max(0, Math.sqrt((mueff - 1) / (n + 1)) - 1) + cs;
  // E||N(0,I)|| ~ sqrt(n)(1 - 1/(4n) + 1/(21 n^2))  (tutorial, after eq. 44)
  const chiN = Math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n));
  // pycma: lazy_update_gap = 1 / (c1 + cmu) / n / 10 iterations
  const lazyGap = 1 / (c1 + cmu + 1e-23) / n / 10;
  return { lambda, mu, weights, mueff, cc, cs, c1, cmu, damps, chiN, lazyGap };
}

// ---------------------------------------------------------------------------------------------
// Box bounds: pycma's BoxConstraintsLinQuadTransformation. The transform is the identity in the
// interior, quadratic within a margin of each bound, and periodic (reflecting) beyond, so the
// internal Gaussian lives on R^n while every genome lies in [lo, hi].

function margins(lo: number, hi: number): [number, number] {
  // pycma: al = min((u - l)/20, (1 + |l|)/20), au likewise with |u|
  return [Math.min((hi - lo) / 20, (1 + Math.abs(lo)) / 20), Math.min((hi - lo) / 20, (1 + Math.abs(hi)) / 20)];
}

export function boxTransform(x: number, lo: number, hi: number): number {
  const [al, au] = margins(lo, hi);
  let y = x;
  // fold into [lo - al, hi + au] by reflection with period 2 (hi - lo + al + au)
  const xlow = lo - 2 * al - (hi - lo) / 2;
  const xup = hi + 2 * au + (hi - lo) / 2;
  const r = 2 * (hi - lo + al + au);
  if (y < xlow) y += r * (1 + Math.floor((xlow - y) / r));
  if (y > xup) y -= r * (1 + Math.floor((y - xup) / r));
  if (y < lo - al) y += 2 * (lo - al - y);
  if (y > hi + au) y -= 2 * (y - hi - au);
  if (y < lo + al) y = lo + (y - (lo - al)) ** 2 / 4 / al;
  else if (y > hi - au) y = hi - (y - (hi + au)) ** 2 / 4 / au;
  return Math.min(hi, Math.max(lo, y));
}

/** Inverse of `boxTransform` on [lo, hi] (used to start the internal mean at x0). */
export function boxTransformInverse(y: number, lo: number, hi: number): number {
  const [al, au] = margins(lo, hi);
  if (y < lo + al) return lo - al + 2 * Math.sqrt(al * Math.max(0, y - lo));
  if (y > hi - au) return hi + au - 2 * Math.sqrt(au * Math.max(0, hi - y));
  return y;
}

// ---------------------------------------------------------------------------------------------

function startRun(s: CmaesState, lambda: number, sigma0: number, mean: number[]): void {
  const n = s.dim;
  s.params = cmaesParams(n, lambda, s.separable, s.options.active);
  s.runLambda = lambda;
  s.runSigma0 = sigma0;
  s.sigma = sigma0;
  s.mean = s.bounds ? mean.map((v, i) => boxTransformInverse(v, s.bounds!.lo[i]!, s.bounds!.hi[i]!)) : mean.slice();
  if (s.separable) {
    s.C = new Array<number>(n).fill(1);
    s.B = [];
  } else {
    const c = new Array<number>(n * n).fill(0);
    for (let i = 0; i < n; i++) c[i * n + i] = 1;
    s.C = c;
    s.B = c.slice();
  }
  s.D = new Array<number>(n).fill(1);
  s.pc = new Array<number>(n).fill(0);
  s.ps = new Array<number>(n).fill(0);
  if (s.tpa) s.tpa = { s: 0, dir: [] };
  s.iteration = 0;
  s.eigenAt = 0;
  s.runEvaluations = 0;
  s.histFit = [];
  s.histBest = [];
  s.histMedian = [];
  s.flatCount = 0;
  s.runStop = null;
  s.pending = null;
}

function init(dim: number, options: unknown, seed: string | number): CmaesState {
  checkDim('cmaes', dim);
  const o = parseOptions('cmaes', cmaesOptionsSchema, options);
  const bounds = o.bounds === null ? null : resolveBounds('cmaes', dim, o.bounds, [0, 1]);
  if (o.x0 && o.x0.length !== dim) throw new OptimizerOptionsError('cmaes', `x0 has ${o.x0.length} values but the genome has ${dim} dimensions`);
  const x0 = o.x0 ? o.x0.slice() : bounds ? bounds.lo.map((l, i) => (l + bounds.hi[i]!) / 2) : new Array<number>(dim).fill(0);
  if (bounds) {
    for (let i = 0; i < dim; i++) {
      if (!(x0[i]! >= bounds.lo[i]! && x0[i]! <= bounds.hi[i]!)) {
        throw new OptimizerOptionsError('cmaes', `x0[${i}] = ${x0[i]} is outside bounds [${bounds.lo[i]}, ${bounds.hi[i]}]`);
      }
    }
  }
  const sigma0 = o.sigma0 ?? (bounds ? (0.25 * bounds.hi.reduce((a, h, i) => a + h - bounds.lo[i]!, 0)) / dim : 1);
  const lambda = o.popsize ?? defaultPopsize(dim);
  const inject = initialPoints('cmaes', dim, o.initial, bounds);
  const rng = Rng.seeded(seed);
  const s: CmaesState = {
    kind: 'cmaes', dim, rng: rng.state(), evaluations: 0, best: null,
    options: { ...o, x0 }, bounds, separable: o.separable, generation: 0, run: 0,
    runEvaluations: 0, runLambda: lambda, defaultLambda: lambda, sigma0, runSigma0: sigma0,
    bipop: { largeEvals: 0, smallEvals: 0, largeLambda: lambda, regime: 'large' },
    params: cmaesParams(dim, lambda, o.separable, o.active),
    mean: [], sigma: sigma0, C: [], B: [], D: [], pc: [], ps: [], iteration: 0, eigenAt: 0,
    pending: null, inject, lastParents: [], firstOfRun: true, histFit: [], histBest: [], histMedian: [],
    flatCount: 0, runStop: null, done: null,
  };
  // pycma (CMAEvolutionStrategy.__init__, AdaptSigma=True): TPA when CMA_diagonal is True and N > 299
  if (o.stepSize === 'tpa' || (o.stepSize === 'auto' && o.separable && dim > 299)) s.tpa = { s: 0, dir: [] };
  startRun(s, lambda, sigma0, x0);
  return s;
}

/** pycma GaussFullSampler.update_now: decompose unless fewer than lazyGap tells since the last one. */
function maybeDecompose(s: CmaesState): void {
  if (s.separable) return;
  const gap = s.params.lazyGap;
  if (s.iteration < s.eigenAt + gap || s.iteration === s.eigenAt) return;
  const n = s.dim;
  const c = Float64Array.from(s.C);
  // symmetrise as pycma does before eigh
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const v = (c[i * n + j]! + c[j * n + i]!) / 2;
      c[i * n + j] = v;
      c[j * n + i] = v;
    }
  }
  const { values, vectors } = symmetricEigen(c, n);
  const floor = Math.max(values[n - 1]! * 1e-300, Number.MIN_VALUE);
  s.D = Array.from(values, (v) => Math.sqrt(Math.max(v, floor)));
  s.B = toArray(vectors);
  s.C = toArray(c);
  s.eigenAt = s.iteration;
}

function ask(prev: CmaesState): AskResult<CmaesState> {
  checkKind('cmaes', prev);
  if (prev.done || prev.pending) return { proposals: [], state: prev };
  const s: CmaesState = { ...prev };
  maybeDecompose(s);
  const n = s.dim;
  const lambda = s.params.lambda;
  const rng = Rng.fromState(s.rng);
  // one lambda x n block of standard normals, then y = Z diag(D) B (rows of B are eigenvectors)
  const Z = rng.fillNormal(new Float64Array(lambda * n));
  const D = s.D;
  const injected = s.tpa && s.tpa.dir.length === n && lambda >= 2 ? mirrorMeanShift(s, Z) : 0;
  // separable: y = D . z needs no buffer of its own
  const Y = s.separable ? Z : rotateSamples(s.B, D, Z, lambda, n);
  const ids: string[] = [];
  const xs: number[][] = [];
  const z2: number[] = [];
  const proposals: Proposal[] = [];
  const operator = s.firstOfRun ? (s.run === 0 ? 'init' : 'restart') : 'sample';
  // points of the `initial` option take the slots after TPA's pair (slots 0 and 1 with TPA, also
  // in a run's first generation, where TPA compares two plain samples), at most lambda of them
  const queue = s.inject ?? [];
  const at = s.tpa ? Math.min(2, lambda) : 0;
  const nInit = Math.max(0, Math.min(queue.length, lambda - at));
  if (nInit > 0) s.inject = queue.slice(nInit);
  // every proposal of a generation has the same parents: one frozen array, shared
  const parentIds = Object.freeze(s.lastParents.slice()) as string[];
  for (let k = 0; k < lambda; k++) {
    const x = new Array<number>(n);
    let zz = 0;
    const sep = s.separable;
    for (let i = 0; i < n; i++) {
      const zi = Z[k * n + i]!;
      x[i] = s.mean[i]! + s.sigma * (sep ? D[i]! * zi : Y[k * n + i]!);
      zz += zi * zi;
    }
    const id = `g${s.generation}-${k}`;
    const j = k - at;
    if (j >= 0 && j < nInit) {
      // an initial point: asked as given; its internal point is the inverse box transform
      const g = queue[j]!.slice();
      const xi = s.bounds ? g.map((v, i) => boxTransformInverse(v, s.bounds!.lo[i]!, s.bounds!.hi[i]!)) : g.slice();
      ids.push(id);
      xs.push(xi);
      z2.push(mahalanobis2(s, xi));
      proposals.push({ id, genome: g, parentIds, operator: 'init' });
      continue;
    }
    const g = genomeOf(s, x);
    ids.push(id);
    xs.push(x);
    z2.push(zz);
    proposals.push({ id, genome: g, parentIds, operator });
  }
  s.pending = { ids, x: xs, z2, f: new Array<number | null>(lambda).fill(null), told: 0 };
  if (injected) s.pending.injected = injected;
  if (nInit) {
    s.pending.initial = nInit;
    s.pending.initialAt = at;
  }
  s.rng = rng.state();
  return { proposals, state: s };
}

/**
 * Y = Z diag(D) B for the full variant: row k is sum_j D_j z_kj b_j, with b_j the eigenvector
 * rows of B. Four eigenvectors are added per pass over a row of Y, which loads and stores Y a
 * quarter as often as one at a time (2.5x faster at n = 200; measured with /tmp scratch code
 * against the one-at-a-time loop, see the commit message).
 */
function rotateSamples(B: readonly number[], D: readonly number[], Z: Float64Array, lambda: number, n: number): Float64Array {
  const Y = new Float64Array(lambda * n);
  for (let k = 0; k < lambda; k++) {
    const ko = k * n;
    let j = 0;
    for (; j + 3 < n; j += 4) {
      const a0 = D[j]! * Z[ko + j]!;
      const a1 = D[j + 1]! * Z[ko + j + 1]!;
      const a2 = D[j + 2]! * Z[ko + j + 2]!;
      const a3 = D[j + 3]! * Z[ko + j + 3]!;
      const b0 = j * n;
      const b1 = b0 + n;
      const b2 = b1 + n;
      const b3 = b2 + n;
      for (let i = 0; i < n; i++) Y[ko + i] = Y[ko + i]! + a0 * B[b0 + i]! + a1 * B[b1 + i]! + a2 * B[b2 + i]! + a3 * B[b3 + i]!;
    }
    for (; j < n; j++) {
      const a = D[j]! * Z[ko + j]!;
      const bj = j * n;
      for (let i = 0; i < n; i++) Y[ko + i] = Y[ko + i]! + a * B[bj + i]!;
    }
  }
  return Y;
}

/**
 * C <- decay C + sum_v coef_v y_v y_v^T on the upper triangle (row-major n x n). Four vectors
 * are added per pass over a row, for the same reason as in `rotateSamples`.
 */
function symmetricRankUpdate(C: number[], n: number, decay: number, vecs: Float64Array[], coefs: number[]): void {
  for (let i = 0; i < n; i++) {
    const row = i * n;
    for (let j = i; j < n; j++) C[row + j] = decay * C[row + j]!;
    let v = 0;
    for (; v + 3 < vecs.length; v += 4) {
      const y0 = vecs[v]!;
      const y1 = vecs[v + 1]!;
      const y2 = vecs[v + 2]!;
      const y3 = vecs[v + 3]!;
      const a0 = coefs[v]! * y0[i]!;
      const a1 = coefs[v + 1]! * y1[i]!;
      const a2 = coefs[v + 2]! * y2[i]!;
      const a3 = coefs[v + 3]! * y3[i]!;
      for (let j = i; j < n; j++) C[row + j] = C[row + j]! + a0 * y0[j]! + a1 * y1[j]! + a2 * y2[j]! + a3 * y3[j]!;
    }
    for (; v < vecs.length; v++) {
      const y = vecs[v]!;
      const a = coefs[v]! * y[i]!;
      for (let j = i; j < n; j++) C[row + j] = C[row + j]! + a * y[j]!;
    }
  }
}

/**
 * TPA's two test points (pycma `ask_geno` with `mean_shift_samples`, which injects
 * `_prepare_injection_directions` = [m - m_old, m_old - m]): rows 0 and 1 of Z become
 * +/- the last mean shift, rescaled to the Mahalanobis length of a standard normal sample.
 * The lengths come from the rows' own fresh draws (each |z| is a chi_n sample, which is
 * what pycma's `_random_rescaling_factor_to_mahalanobis_size` draws). On the run's second
 * iteration pycma rescales the two directions independently; from the third on the second
 * is the exact mirror of the first. Returns the number of injected rows (2).
 */
function mirrorMeanShift(s: CmaesState, Z: Float64Array): number {
  const n = s.dim;
  // w = D^-1 B^T (m - m_old): the shift in the coordinates where the sample is standard normal
  const w = whiten(s, s.tpa!.dir);
  let ww = 0;
  for (let i = 0; i < n; i++) ww += w[i]! * w[i]!;
  if (!(ww > 0) || !Number.isFinite(ww)) return 0; // no shift: sample as usual
  let r0 = 0;
  let r1 = 0;
  for (let i = 0; i < n; i++) {
    r0 += Z[i]! * Z[i]!;
    r1 += Z[n + i]! * Z[n + i]!;
  }
  const a0 = Math.sqrt(r0 / ww);
  const a1 = s.iteration === 1 ? Math.sqrt(r1 / ww) : a0;
  for (let i = 0; i < n; i++) {
    Z[i] = a0 * w[i]!;
    Z[n + i] = -a1 * w[i]!;
  }
  return 2;
}

/** D^-1 B^T v: a step in the coordinates where a sample of N(0, C) is standard normal (separable: v / D). */
function whiten(s: CmaesState, v: readonly number[]): Float64Array {
  const n = s.dim;
  const w = new Float64Array(n);
  if (s.separable) {
    for (let i = 0; i < n; i++) w[i] = v[i]! / s.D[i]!;
    return w;
  }
  for (let j = 0; j < n; j++) {
    let t = 0;
    for (let i = 0; i < n; i++) t += s.B[j * n + i]! * v[i]!;
    w[j] = t / s.D[j]!;
  }
  return w;
}

/** ||C^{-1/2} (x - m) / sigma||^2, the squared Mahalanobis norm of an internal point's step. */
function mahalanobis2(s: CmaesState, x: readonly number[]): number {
  const w = whiten(s, x.map((v, i) => v - s.mean[i]!));
  let r = 0;
  for (let i = 0; i < s.dim; i++) r += (w[i]! / s.sigma) ** 2;
  return r;
}

/** TPA damping, pycma `CMAAdaptSigmaTPA.initialize_settings`: 0.7 + 2 ln n + 2 ln max(1, lambda - n). */
export function tpaDamping(n: number, lambda: number): number {
  return 0.7 + 2 * Math.log(n) + 2 * Math.log(Math.max(1, lambda - n));
}

/** Typed array to a plain array for the JSON state (Array.from on a typed array is ~10x slower). */
function toArray(a: Float64Array): number[] {
  const r = new Array<number>(a.length);
  for (let i = 0; i < a.length; i++) r[i] = a[i]!;
  return r;
}

/** The genome of an internal point: the box transform of x, or x itself without bounds. */
function genomeOf(s: CmaesState, x: readonly number[]): number[] {
  return s.bounds ? x.map((v, i) => boxTransform(v, s.bounds!.lo[i]!, s.bounds!.hi[i]!)) : x.slice();
}

function median(a: readonly number[]): number {
  const b = a.slice().sort((x, y) => x - y);
  const m = b.length >> 1;
  return b.length % 2 ? b[m]! : (b[m - 1]! + b[m]!) / 2;
}

/** f of a failed evaluation: worse than any real value, and representable in JSON. */
const FAILED_F = Number.MAX_VALUE;

function tell(prev: CmaesState, outcomes: readonly Outcome[]): CmaesState {
  checkKind('cmaes', prev);
  if (outcomes.length === 0) return prev;
  if (!prev.pending) throw new OutcomeMismatchError('cmaes', `got ${outcomes.length} outcomes but no proposals are pending`);
  const p: Pending = { ...prev.pending, f: prev.pending.f.slice() };
  const s: CmaesState = { ...prev, pending: p };
  const slot = new Map(p.ids.map((id, k) => [id, k]));
  for (const o of outcomes) {
    const k = slot.get(o.id) ?? -1;
    if (k < 0) throw new OutcomeMismatchError('cmaes', `outcome '${o.id}' is not one of the pending proposals`);
    if (p.f[k] !== null) throw new OutcomeMismatchError('cmaes', `outcome '${o.id}' was told twice`);
    p.f[k] = isFailed(o.fitness) ? FAILED_F : -(o.fitness as number);
    p.told++;
    s.evaluations++;
    s.runEvaluations++;
    // the genome (a copy, transformed into the box) is only built for a new best
    if (!isFailed(o.fitness) && (s.best === null || (o.fitness as number) > s.best.fitness)) {
      s.best = betterBest(null, o.id, genomeOf(s, p.x[k]!), o.fitness);
    }
  }
  if (p.told < p.ids.length) return s;
  update(s);
  return s;
}

/** One generation's update (tutorial Fig. 6 with pycma's variants). Mutates `s` (a fresh copy). */
function update(s: CmaesState): void {
  const n = s.dim;
  const P = s.params;
  const pend = s.pending!;
  const lambda = P.lambda;
  const injected = pend.injected ?? 0;
  const f = pend.f as number[];
  const order = Array.from({ length: lambda }, (_, i) => i).sort((a, b) => f[a]! - f[b]! || a - b);
  s.iteration++;
  s.generation++;
  s.firstOfRun = false;
  // The real f-values, sorted; failures sort last, so they are a prefix of the sorted f.
  const sorted = order.map((k) => f[k]!);
  let nReal = 0;
  while (nReal < lambda && sorted[nReal] !== FAILED_F) nReal++;
  const real = nReal === lambda ? sorted : sorted.slice(0, nReal);
  if (nReal === 0) {
    // Every point failed: the ranking is only the index order, so recombination would move the
    // mean toward the first mu samples (with TPA, along the last mean shift, as points 0 and 1
    // are its mirrors) and CSA and the covariance would learn from that arbitrary selection.
    // Leave the distribution as it was, so the next ask resamples it: what pycma's fmin does
    // for infeasible (None / NaN) values, which `ask_and_eval` resamples. The iteration still
    // counts toward maxiter, so an evaluator that always fails ends the run there.
    s.pending = null;
    s.runStop = runTermination(s, real, 0);
    if (s.runStop) finishRun(s);
    return;
  }
  const sigma = s.sigma;
  const mOld = s.mean;
  // Points of the `initial` option were not sampled from N(m, sigma^2 C): as pycma's `tell`
  // does for injected solutions, their step y = (x - m) / sigma is shortened to Mahalanobis
  // norm at most sqrt(n) + 2n/(n+2) before it enters the mean, the paths (so CSA sees the
  // clipped mean shift) and C; and, as pycma's default CMA_active_injected = 0, they get no
  // negative weight (below). `pend.x` keeps the point itself (it is the genome told).
  const nInit = pend.initial ?? 0;
  const at = pend.initialAt ?? 0;
  let xsUpd = pend.x;
  if (nInit > 0) {
    xsUpd = pend.x.slice();
    const maxNorm = Math.sqrt(n) + (2 * n) / (n + 2);
    for (let k = at; k < at + nInit; k++) {
      const norm = Math.sqrt(pend.z2[k]!);
      if (norm > maxNorm) {
        const c = maxNorm / norm;
        xsUpd[k] = pend.x[k]!.map((v, i) => mOld[i]! + c * (v - mOld[i]!));
      }
    }
  }
  // TPA's mirrors and the initial points get no negative weight
  const noNeg = (k: number) => k < injected || (k >= at && k < at + nInit);
  // mean, eq. (41): m = sum_{i<=mu} w_i x_{i:lambda}
  const mean = new Float64Array(n);
  for (let r = 0; r < P.mu; r++) {
    const x = xsUpd[order[r]!]!;
    const w = P.weights[r]!;
    for (let i = 0; i < n; i++) mean[i] = mean[i]! + w * x[i]!;
  }
  const dm = new Float64Array(n); // (m - m_old) / sigma = <y>_w
  for (let i = 0; i < n; i++) dm[i] = (mean[i]! - mOld[i]!) / sigma;
  // C^{-1/2} <y>_w = B D^{-1} B^T <y>_w
  const invSqrt = new Float64Array(n);
  const D = s.D;
  if (s.separable) {
    for (let i = 0; i < n; i++) invSqrt[i] = dm[i]! / D[i]!;
  } else {
    const B = s.B;
    for (let j = 0; j < n; j++) {
      let t = 0;
      const bj = j * n;
      for (let i = 0; i < n; i++) t += B[bj + i]! * dm[i]!;
      t /= D[j]!;
      for (let i = 0; i < n; i++) invSqrt[i] = invSqrt[i]! + t * B[bj + i]!;
    }
  }
  // p_sigma, eq. (43)
  const ps = new Array<number>(n);
  const cps = Math.sqrt(P.cs * (2 - P.cs) * P.mueff);
  let ps2 = 0;
  for (let i = 0; i < n; i++) {
    ps[i] = (1 - P.cs) * s.ps[i]! + cps * invSqrt[i]!;
    ps2 += ps[i]! * ps[i]!;
  }
  // h_sigma as pycma's CMAAdaptSigmaBase.hsig: ||ps||^2 / (1 - (1-cs)^(2t)) / n < 2 + 4/(n+1)
  const hsig = ps2 / (1 - (1 - P.cs) ** (2 * s.iteration)) / n < 2 + 4 / (n + 1) ? 1 : 0;
  // p_c, eq. (45)
  const pc = new Array<number>(n);
  const cpc = hsig * Math.sqrt(P.cc * (2 - P.cc) * P.mueff);
  // separable: p_c lives in the coordinates normalised by the diagonal scaling (pycma tell)
  if (s.separable) for (let i = 0; i < n; i++) pc[i] = (1 - P.cc) * s.pc[i]! + (cpc * dm[i]!) / D[i]!;
  else for (let i = 0; i < n; i++) pc[i] = (1 - P.cc) * s.pc[i]! + cpc * dm[i]!;
  // covariance, eq. (47) with pycma's c1a = c1 (1 - (1 - hsig) cc (2 - cc)) and negative
  // weights rescaled by n / ||C^{-1/2} y_i||^2 (eq. 46; pycma sampler.update)
  const c1a = P.c1 * (1 - (1 - hsig) * P.cc * (2 - P.cc));
  let sumW = 0;
  for (let r = 0; r < lambda; r++) sumW += P.weights[r]!;
  const decay = 1 - c1a - P.cmu * sumW;
  if (s.separable) {
    // pycma tell with CMA_diagonal=True: sigma_vec.update(vectors, ln 2 * sampler_weights), and
    // DiagonalDecoding.update multiplies each standard deviation by exp((sum_k w_k z_ki^2 -
    // sum_k w_k) / 2), i.e. each variance by exp(ln 2 (c1a pc_i^2 + cmu sum_k w_k z_ki^2 - c1a -
    // cmu sum_k w_k)), with z_k the standard normal samples and no rescaling of the negative
    // weights; the exponential form keeps every variance positive with any rate. (pycma's clip of
    // large factors assigns into a temporary copy, so it has no effect there and none here.)
    const E = new Float64Array(n);
    let wsum = c1a;
    for (let i = 0; i < n; i++) E[i] = c1a * pc[i]! * pc[i]!;
    for (let r = 0; r < lambda; r++) {
      const w = P.cmu * P.weights[r]!;
      if (w === 0) continue;
      const k = order[r]!;
      if (w < 0 && (f[k] === FAILED_F || noNeg(k))) continue;
      const x = xsUpd[k]!;
      for (let i = 0; i < n; i++) {
        const z = (x[i]! - mOld[i]!) / sigma / D[i]!;
        E[i] = E[i]! + w * z * z;
      }
      wsum += w;
    }
    const C = new Array<number>(n);
    for (let i = 0; i < n; i++) C[i] = s.C[i]! * Math.exp(Math.LN2 * (E[i]! - wsum));
    s.C = C;
    s.D = C.map((v) => Math.sqrt(v));
  } else {
    // the rank-one vector p_c and the rank-mu vectors y_k with their coefficients
    const vecs: Float64Array[] = [Float64Array.from(pc)];
    const coefs: number[] = [P.c1];
    for (let r = 0; r < lambda; r++) {
      let w = P.weights[r]!;
      if (w === 0) continue;
      const k = order[r]!;
      if (w < 0) {
        if (f[k] === FAILED_F) continue; // a failed point carries no information about f
        if (noNeg(k)) continue; // pycma CMA_active_injected = 0: no negative update from TPA's mirrors or initial points
        w *= n / (pend.z2[k]! + 1e-9);
      }
      const x = xsUpd[k]!;
      const y = new Float64Array(n);
      for (let i = 0; i < n; i++) y[i] = (x[i]! - mOld[i]!) / sigma;
      vecs.push(y);
      coefs.push(P.cmu * w);
    }
    const C = s.C.slice();
    symmetricRankUpdate(C, n, decay, vecs, coefs);
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) C[j * n + i] = C[i * n + j]!;
    s.C = C;
  }
  if (s.tpa) {
    // TPA (pycma CMAAdaptSigmaTPA.update2): z = rank difference of the first two asked points,
    // (#{f < f_1} - #{f < f_0}) / (lambda - 1) in [-1, 1], positive when the point along the last
    // mean shift won; s <- (1 - c) s + c sign(z) |z|^(1/2) with c = 0.3; sigma *= exp(s / damp).
    // pycma applies it from the first iteration on, when the first two points are not yet mirrors.
    let below0 = 0;
    let below1 = 0;
    for (let k = 0; k < lambda; k++) {
      if (f[k]! < f[0]!) below0++;
      if (f[k]! < f[1]!) below1++;
    }
    const zr = (below1 - below0) / (lambda - 1);
    const ts = 0.7 * s.tpa.s + 0.3 * Math.sign(zr) * Math.sqrt(Math.abs(zr));
    s.sigma = sigma * Math.exp(ts / tpaDamping(n, lambda));
    s.tpa = { s: ts, dir: Array.from(mean, (v, i) => v - mOld[i]!) };
  } else {
    // step size, eq. (44) with pycma's clip of the exponent to [-1, 1]
    const delta = (P.cs / P.damps) * (Math.sqrt(ps2) / P.chiN - 1);
    s.sigma = sigma * Math.exp(Math.max(-1, Math.min(1, delta)));
  }
  s.mean = toArray(mean);
  s.ps = ps;
  s.pc = pc;
  s.lastParents = order.slice(0, P.mu).filter((k) => f[k] !== FAILED_F).map((k) => pend.ids[k]!);

  // pycma flat-fitness handling (CMAEvolutionStrategy.tell: if the best and the
  // ceil(0.1 + lambda/4)-th best f are equal, sigma *= exp(0.2 + cs/damps) and
  // fit.flatfit_iterations counts toward tolflatfitness), taken over the real f-values only:
  // failures are stored as equal constants, and counting them as a plateau would inflate sigma
  // and stop a run for flat fitness that no evaluation showed. (pycma's own tell replaces None
  // and NaN by the median of the other values, which can fake a plateau the same way.) With
  // fewer real values than the test needs, the generation says nothing about flatness and
  // leaves the count as it is. Without failures, `real` is `sorted` and this is pycma's test.
  const flatIdx = Math.min(lambda - 1, Math.ceil(0.1 + lambda / 4));
  if (nReal > flatIdx) {
    if (real[0] === real[flatIdx]) {
      s.flatCount++;
      s.sigma *= Math.exp(0.2 + P.cs / P.damps);
    } else {
      s.flatCount = 0;
    }
  }
  // The histories hold real f-values only (so tolfun, tolfunhist and tolstagnation compare real
  // values); the filters drop the FAILED_F entries that states saved before this rule may hold.
  const histLen = Math.floor(10 + (30 * n) / lambda);
  s.histFit = [...s.histFit.filter(isReal), real[0]!].slice(-histLen);
  const stagLen = s.options.tolstagnation ?? Math.floor(100 + (100 * n ** 1.5) / lambda);
  // pycma tell: best and median f recorded every 5th iteration, at most 20000 entries
  if (s.iteration % 5 === 0) {
    s.histBest = [...s.histBest.filter(isReal), real[0]!].slice(-20000);
    s.histMedian = [...s.histMedian.filter(isReal), median(real)].slice(-20000);
  }
  s.pending = null;
  s.runStop = runTermination(s, real, stagLen);
  if (s.runStop) finishRun(s);
}

/** A stored f that is not the failure constant. */
function isReal(v: number): boolean {
  return v !== FAILED_F;
}

/**
 * pycma `_CMAStopDict` tests, in pycma's order; returns the first reason that holds. `sorted`
 * holds this generation's real f-values (failures left out), sorted. The f-value tests
 * (tolfun, tolfunhist, tolstagnation) need real values: tolfun at least two in this
 * generation, tolfunhist and tolstagnation at least one (their histories grow only then).
 */
function runTermination(s: CmaesState, sorted: number[], stagLen: number): string | null {
  const o = s.options;
  const n = s.dim;
  const P = s.params;
  if (o.targetFitness !== undefined && s.best && s.best.fitness >= o.targetFitness) return 'ftarget';
  if (o.maxEvaluations !== undefined && s.evaluations >= o.maxEvaluations) return 'maxfevals';
  const maxiter = o.maxiter ?? Math.floor(100 + (150 * (n + 3) ** 2) / Math.sqrt(P.lambda));
  if (s.iteration >= maxiter) return 'maxiter';
  const fresh = sorted.length > 0;
  const hist = s.histFit;
  const hmax = fresh ? Math.max(...hist) : 0;
  const hmin = fresh ? Math.min(...hist) : 0;
  if (sorted.length >= 2 && sorted[sorted.length - 1]! - sorted[0]! < o.tolfun && hmax - hmin < o.tolfun) return 'tolfun';
  if (fresh && hist.length > 9 && hmax - hmin < o.tolfunhist) return 'tolfunhist';
  const diagC = (i: number) => (s.separable ? s.C[i]! : s.C[i * n + i]!);
  let tolx = true;
  for (let i = 0; i < n && tolx; i++) {
    const pcI = s.separable ? s.pc[i]! * s.D[i]! : s.pc[i]!;
    if (s.sigma * Math.abs(pcI) >= o.tolx || s.sigma * Math.sqrt(diagC(i)) >= o.tolx) tolx = false;
  }
  if (tolx) return 'tolx';
  const dmax = Math.max(...s.D);
  const dmin = Math.min(...s.D);
  if (s.separable) {
    let cmax = 0;
    let cmin = Infinity;
    for (let i = 0; i < n; i++) {
      cmax = Math.max(cmax, s.C[i]!);
      cmin = Math.min(cmin, s.C[i]!);
    }
    if (cmax / cmin > o.tolconditioncov) return 'tolconditioncov';
  } else if ((dmax / dmin) ** 2 > o.tolconditioncov) return 'tolconditioncov';
  // pycma: the step size grew by tolfacupx in some coordinate (sigma0 was far too small)
  let maxStd = 0;
  for (let i = 0; i < n; i++) maxStd = Math.max(maxStd, Math.sqrt(diagC(i)));
  if (s.sigma * maxStd > o.tolfacupx * s.runSigma0) return 'tolfacupx';
  if (s.sigma / s.runSigma0 > o.tolupsigma * dmax) return 'tolupsigma';
  // stagnation (pycma _CMAStopDict): with l = max(tolstagnation / 5 / 2, len / 10) recorded
  // entries, the medians of the newest l best and median f-values are no better than those of
  // the l entries before them
  const hb = s.histBest;
  const len = hb.length;
  const l = Math.floor(Math.max(stagLen / 5 / 2, len / 10));
  if (fresh && stagLen > 0 && s.iteration > n * (5 + 100 / P.lambda) && len > 100 && 2 * l < len) {
    const hm = s.histMedian;
    if (median(hm.slice(len - l)) >= median(hm.slice(len - 2 * l, len - l)) && median(hb.slice(len - l)) >= median(hb.slice(len - 2 * l, len - l))) {
      return 'tolstagnation';
    }
  }
  if (s.flatCount > o.tolflatfitness) return 'tolflatfitness';
  // no effect of a principal axis (cycling through axes) or of a coordinate step
  const m = s.mean;
  const axis = s.iteration % n;
  if (s.separable) {
    // B = I: the axis is a coordinate
    if (m[axis] === m[axis]! + 0.1 * s.sigma * s.D[axis]!) return 'noeffectaxis';
  } else {
    const a = 0.1 * s.sigma * s.D[axis]!;
    let all = true;
    for (let k = 0; k < n && all; k++) if (m[k] !== m[k]! + a * s.B[axis * n + k]!) all = false;
    if (all) return 'noeffectaxis';
  }
  for (let i = 0; i < n; i++) if (m[i] === m[i]! + 0.2 * s.sigma * Math.sqrt(diagC(i))) return 'noeffectcoord';
  return null;
}

/** A run has stopped: restart (IPOP / BIPOP) or finish. */
function finishRun(s: CmaesState): void {
  const o = s.options;
  const reason = s.runStop!;
  const global = reason === 'ftarget' || reason === 'maxfevals';
  if (global || o.restarts === 'none' || s.run >= o.maxRestarts) {
    s.done = reason;
    return;
  }
  const rng = Rng.fromState(s.rng);
  let lambda: number;
  let sigma0 = s.sigma0;
  const bp = { ...s.bipop };
  if (o.restarts === 'ipop') {
    lambda = Math.round(s.runLambda * o.incPopsize);
  } else {
    // BIPOP (Hansen 2009): count the finished run into its regime, then run the regime that has
    // used fewer evaluations; the small regime draws lambda and sigma0 log-uniformly.
    if (bp.regime === 'large') bp.largeEvals += s.runEvaluations;
    else bp.smallEvals += s.runEvaluations;
    if (s.run === 0 || bp.smallEvals >= bp.largeEvals) {
      bp.regime = 'large';
      bp.largeLambda = Math.round(bp.largeLambda * o.incPopsize);
      lambda = bp.largeLambda;
    } else {
      bp.regime = 'small';
      const u = rng.next();
      lambda = Math.max(2, Math.floor(s.defaultLambda * (0.5 * bp.largeLambda / s.defaultLambda) ** (u * u)));
      sigma0 = s.sigma0 * 10 ** (-2 * rng.next());
    }
  }
  s.bipop = bp;
  s.inject = []; // initial points belong to the first run only
  let x0 = o.x0!;
  if (o.restartFromRandom && s.bounds) x0 = s.bounds.lo.map((l, i) => l + (s.bounds!.hi[i]! - l) * rng.next());
  s.run++;
  s.firstOfRun = true;
  s.lastParents = [];
  startRun(s, lambda, sigma0, x0);
  s.rng = rng.state();
}

function isDone(s: CmaesState): string | null {
  checkKind('cmaes', s);
  return s.done;
}

export const cmaes: Optimizer<CmaesOptions, CmaesState> = {
  id: 'cmaes',
  title: 'CMA-ES (active, full or separable covariance; IPOP/BIPOP restarts)',
  reference: 'Hansen 2016, arXiv:1604.00772; pycma 4.x defaults',
  optionsSchema: cmaesOptionsSchema,
  init,
  ask,
  tell,
  isDone,
};

/** The same optimizer with `separable: true` as default (sep-CMA-ES, Ros and Hansen 2008). */
export const sepCmaes: Optimizer<CmaesOptions, CmaesState> = {
  ...cmaes,
  id: 'sep-cmaes',
  title: 'sep-CMA-ES (diagonal covariance, linear time per sample)',
  reference: 'Ros and Hansen, PPSN 2008; pycma CMA_diagonal=True',
  init: (dim, options, seed) => init(dim, { separable: true, ...((options as object | undefined) ?? {}) }, seed),
};
