/**
 * CMA-ES: the covariance matrix adaptation evolution strategy, with active (negative)
 * recombination weights and a separable (diagonal) variant, as pure ask/tell over a plain-JSON
 * state. This file is the core, organised by the equations of
 *
 *   N. Hansen, "The CMA Evolution Strategy: A Tutorial", arXiv:1604.00772 (2016), whose
 *   equation numbers the comments give: sampling (38)-(40), recombination (41)-(42), step-size
 *   adaptation by CSA (43)-(44), covariance adaptation (45)-(47),
 *
 * with pycma 4.x's defaults and variants (github.com/CMA-ES/pycma): step size in
 * `sigma_adaptation.CMAAdaptSigmaCSA`, the covariance update and lazy eigendecomposition in
 * `sampler.GaussFullSampler`. The separable variant: R. Ros and N. Hansen, "A Simple
 * Modification in CMA-ES Achieving Linear Time and Space Complexity", PPSN 2008.
 *
 * Beside the core: the strategy parameters (./cmaes-params.ts, eq. 48-58), the options and the
 * state (./cmaes-state.ts), two-point step-size adaptation (./tpa.ts), pycma's termination
 * tests (./cmaes-stop.ts), IPOP / BIPOP restarts (./restarts.ts), box bounds (./bounds.ts), the
 * linear algebra (./linalg.ts).
 *
 * Internally CMA-ES minimises f = -fitness (failed evaluations: f = FAILED_F, ranked last). The
 * flat-fitness and f-value termination tests and the f histories see real values only, and a
 * generation in which every point failed leaves the distribution unchanged (see `update`).
 * Each asked point is sampled as x_k = m + sigma * B (D . z_k), z_k ~ N(0, I) (eq. 38-40); with
 * bounds the genome is the transform of x_k, which lies in the box by construction.
 */
import { Rng } from '../tensor/rng.ts';
import { fromBox, resolveBounds, toBox } from './bounds.ts';
import { type CmaesOptions, type CmaesParams, type CmaesState, type Pending, FAILED_F, cmaesOptionsSchema } from './cmaes-state.ts';
import { cmaesParams, defaultPopsize } from './cmaes-params.ts';
import { recordHistories, runTermination } from './cmaes-stop.ts';
import { invSqrtTimes, rotateSamples, symmetricEigen, symmetricRankUpdate, toArray, whiten } from './linalg.ts';
import { endsSearch, nextRun } from './restarts.ts';
import { mirrorMeanShift, tpaStep } from './tpa.ts';
import {
  type AskResult, type Optimizer, type Outcome, type Proposal,
  OptimizerOptionsError, OutcomeMismatchError, betterBest, checkDim, checkKind, initialPoints, isFailed, parseOptions,
} from './types.ts';

export { cmaesOptionsSchema, cmaesParams, defaultPopsize };
export type { CmaesOptions, CmaesParams, CmaesState };

// ---------------------------------------------------------------------------------------------
// Initialisation: the first run, and the start of every run (also after a restart)

function startRun(s: CmaesState, lambda: number, sigma0: number, mean: number[]): void {
  const n = s.dim;
  s.params = cmaesParams(n, lambda, s.separable, s.options.active);
  s.runLambda = lambda;
  s.runSigma0 = sigma0;
  s.sigma = sigma0;
  s.mean = fromBox(s.bounds, mean);
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

// ---------------------------------------------------------------------------------------------
// Sampling (eq. 38-40)

/**
 * C = B D^2 B^T, recomputed lazily as pycma's GaussFullSampler.update_now does: not before
 * lazyGap tells since the last decomposition (and not twice in one iteration).
 */
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

/**
 * x_k = m + sigma y_k ~ N(m, sigma^2 C) (eq. 40), with y_k = B D z_k ~ N(0, C) (eq. 39; the rows
 * of Y, or D . z_k when separable) from z_k ~ N(0, I) (eq. 38; the rows of Z). Also returns
 * ||z_k||^2, the squared Mahalanobis norm of y_k.
 */
function samplePoints(s: CmaesState, Z: Float64Array, Y: Float64Array, lambda: number): { x: number[][]; z2: number[] } {
  const n = s.dim;
  const D = s.D;
  const sep = s.separable;
  const xs: number[][] = [];
  const z2: number[] = [];
  for (let k = 0; k < lambda; k++) {
    const x = new Array<number>(n);
    let zz = 0;
    for (let i = 0; i < n; i++) {
      const zi = Z[k * n + i]!;
      x[i] = s.mean[i]! + s.sigma * (sep ? D[i]! * zi : Y[k * n + i]!);
      zz += zi * zi;
    }
    xs.push(x);
    z2.push(zz);
  }
  return { x: xs, z2 };
}

/** ||C^{-1/2} (x - m) / sigma||^2, the squared Mahalanobis norm of an internal point's step. */
function mahalanobis2(s: CmaesState, x: readonly number[]): number {
  const w = whiten(s.B, s.D, s.separable, x.map((v, i) => v - s.mean[i]!), s.dim);
  let r = 0;
  for (let i = 0; i < s.dim; i++) r += (w[i]! / s.sigma) ** 2;
  return r;
}

function ask(prev: CmaesState): AskResult<CmaesState> {
  checkKind('cmaes', prev);
  if (prev.done || prev.pending) return { proposals: [], state: prev };
  const s: CmaesState = { ...prev };
  maybeDecompose(s);
  const n = s.dim;
  const lambda = s.params.lambda;
  const rng = Rng.fromState(s.rng);
  // one lambda x n block of standard normals (eq. 38); with TPA rows 0 and 1 become the
  // mirrored last mean shift, whitened (./tpa.ts)
  const Z = rng.fillNormal(new Float64Array(lambda * n));
  const injected = s.tpa && s.tpa.dir.length === n && lambda >= 2
    ? mirrorMeanShift(Z, whiten(s.B, s.D, s.separable, s.tpa.dir, n), n, s.iteration === 1)
    : 0;
  // eq. (39) as Y = Z diag(D) B (rows of B are eigenvectors); separable: y = D . z needs no buffer of its own
  const Y = s.separable ? Z : rotateSamples(s.B, s.D, Z, lambda, n);
  const { x: xs, z2 } = samplePoints(s, Z, Y, lambda);
  const operator = s.firstOfRun ? (s.run === 0 ? 'init' : 'restart') : 'sample';
  // points of the `initial` option take the slots after TPA's pair (slots 0 and 1 with TPA, also
  // in a run's first generation, where TPA compares two plain samples), at most lambda of them
  const queue = s.inject ?? [];
  const at = s.tpa ? Math.min(2, lambda) : 0;
  const nInit = Math.max(0, Math.min(queue.length, lambda - at));
  if (nInit > 0) s.inject = queue.slice(nInit);
  // every proposal of a generation has the same parents: one frozen array, shared
  const parentIds = Object.freeze(s.lastParents.slice()) as string[];
  const ids: string[] = [];
  const proposals: Proposal[] = [];
  for (let k = 0; k < lambda; k++) {
    const id = `g${s.generation}-${k}`;
    ids.push(id);
    const j = k - at;
    if (j >= 0 && j < nInit) {
      // an initial point: asked as given; its internal point is the inverse box transform
      const g = queue[j]!.slice();
      xs[k] = fromBox(s.bounds, g);
      z2[k] = mahalanobis2(s, xs[k]!);
      proposals.push({ id, genome: g, parentIds, operator: 'init' });
    } else {
      proposals.push({ id, genome: toBox(s.bounds, xs[k]!), parentIds, operator });
    }
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

// ---------------------------------------------------------------------------------------------
// Tell: outcomes in any order and in parts; the update once the generation is complete

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
      s.best = betterBest(null, o.id, toBox(s.bounds, p.x[k]!), o.fitness);
    }
  }
  if (p.told < p.ids.length) return s;
  update(s);
  return s;
}

/**
 * One generation's update (tutorial Fig. 6 / Appendix A with pycma's variants), as a sequence
 * of the tutorial's steps. Mutates `s` (a fresh copy).
 */
function update(s: CmaesState): void {
  const n = s.dim;
  const P = s.params;
  const pend = s.pending!;
  const lambda = P.lambda;
  const f = pend.f as number[];
  const { order, real } = rank(f, lambda);
  s.iteration++;
  s.generation++;
  s.firstOfRun = false;
  if (real.length === 0) {
    // Every point failed: the ranking is only the index order, so recombination would move the
    // mean toward the first mu samples (with TPA, along the last mean shift, as points 0 and 1
    // are its mirrors) and CSA and the covariance would learn from that arbitrary selection.
    // Leave the distribution as it was, so the next ask resamples it: what pycma's fmin does
    // for infeasible (None / NaN) values, which `ask_and_eval` resamples. The iteration still
    // counts toward maxiter, so an evaluator that always fails ends the run there.
    endGeneration(s, real);
    return;
  }
  // the tutorial's symbols for the stored parameters (see CmaesParams)
  const { mu, weights, mueff: mu_eff, cs: c_sigma, damps: d_sigma, cc: c_c, chiN } = P;
  const sigma = s.sigma;
  const m_old = s.mean;
  const D_old = s.D;
  const x = clipInjectedSteps(pend, m_old, n);

  const m = recombine(x, order, weights, mu, n); // eq. (41)-(42)
  const y_w = meanShift(m, m_old, sigma, n); // <y>_w = (m - m_old) / sigma
  const { p_sigma, norm2 } = sigmaPath(s.ps, invSqrtTimes(s.B, D_old, s.separable, y_w, n), c_sigma, mu_eff, n); // eq. (43)
  const h_sigma = hSigma(norm2, c_sigma, s.iteration, n);
  const p_c = covariancePath(s.pc, y_w, h_sigma, c_c, mu_eff, s.separable ? D_old : null, n); // eq. (45)
  const selected = rankMuSelection(weights, order, lambda, negativeWeightAllowed(pend, f));
  if (s.separable) {
    s.C = adaptDiagonal(s.C, p_c, selected, x, m_old, sigma, D_old, h_sigma, P, n);
    s.D = s.C.map((v) => Math.sqrt(v));
  } else {
    s.C = adaptCovariance(s.C, p_c, selected, x, m_old, sigma, pend.z2, h_sigma, P, n); // eq. (46)-(47)
  }
  if (s.tpa) {
    const t = tpaStep(f, lambda, n, s.tpa.s, sigma); // ./tpa.ts
    s.sigma = t.sigma;
    s.tpa = { s: t.s, dir: Array.from(m, (v, i) => v - m_old[i]!) };
  } else {
    s.sigma = csaStep(sigma, norm2, c_sigma, d_sigma, chiN); // eq. (44)
  }
  s.mean = toArray(m);
  s.ps = p_sigma;
  s.pc = p_c;
  s.lastParents = order.slice(0, mu).filter((k) => f[k] !== FAILED_F).map((k) => pend.ids[k]!);
  flatFitness(s, real);
  recordHistories(s, real);
  endGeneration(s, real);
}

/**
 * The ranking of a generation: `order`, the slots by f ascending (ties by slot), and `real`,
 * the real f-values sorted (failures, FAILED_F, sort last, so they are a suffix of the sorted f).
 */
function rank(f: readonly number[], lambda: number): { order: number[]; real: number[] } {
  const order = Array.from({ length: lambda }, (_, i) => i).sort((a, b) => f[a]! - f[b]! || a - b);
  const sorted = order.map((k) => f[k]!);
  let nReal = 0;
  while (nReal < lambda && sorted[nReal] !== FAILED_F) nReal++;
  return { order, real: nReal === lambda ? sorted : sorted.slice(0, nReal) };
}

/** The generation is done: run the termination tests, and restart or finish a stopped run. */
function endGeneration(s: CmaesState, real: readonly number[]): void {
  s.pending = null;
  s.runStop = runTermination(s, real);
  if (s.runStop) finishRun(s);
}

/**
 * The points the update learns from. Points of the `initial` option were not sampled from
 * N(m, sigma^2 C): as pycma's `tell` does for injected solutions, their step y = (x - m) / sigma
 * is shortened to Mahalanobis norm at most sqrt(n) + 2n/(n+2) before it enters the mean, the
 * paths (so CSA sees the clipped mean shift) and C. `pend.x` keeps the point itself (it is the
 * genome told).
 */
function clipInjectedSteps(pend: Pending, m_old: readonly number[], n: number): number[][] {
  const nInit = pend.initial ?? 0;
  const at = pend.initialAt ?? 0;
  if (nInit === 0) return pend.x;
  const x = pend.x.slice();
  const maxNorm = Math.sqrt(n) + (2 * n) / (n + 2);
  for (let k = at; k < at + nInit; k++) {
    const norm = Math.sqrt(pend.z2[k]!);
    if (norm > maxNorm) {
      const c = maxNorm / norm;
      x[k] = pend.x[k]!.map((v, i) => m_old[i]! + c * (v - m_old[i]!));
    }
  }
  return x;
}

/**
 * Whether slot k may take a negative weight: not a failed point (it carries no information about
 * f), and, as pycma's default CMA_active_injected = 0, not one of TPA's mirrors or an initial
 * point.
 */
function negativeWeightAllowed(pend: Pending, f: readonly number[]): (k: number) => boolean {
  const injected = pend.injected ?? 0;
  const nInit = pend.initial ?? 0;
  const at = pend.initialAt ?? 0;
  return (k) => f[k] !== FAILED_F && !(k < injected || (k >= at && k < at + nInit));
}

/** Recombination, eq. (41)-(42) with c_m = 1 (eq. 54): m = sum_{i<=mu} w_i x_{i:lambda}. */
function recombine(x: readonly number[][], order: readonly number[], weights: readonly number[], mu: number, n: number): Float64Array {
  const m = new Float64Array(n);
  for (let r = 0; r < mu; r++) {
    const xr = x[order[r]!]!;
    const w = weights[r]!;
    for (let i = 0; i < n; i++) m[i] = m[i]! + w * xr[i]!;
  }
  return m;
}

/** <y>_w = (m - m_old) / sigma, the mean shift in units of the step size. */
function meanShift(m: Float64Array, m_old: readonly number[], sigma: number, n: number): Float64Array {
  const y_w = new Float64Array(n);
  for (let i = 0; i < n; i++) y_w[i] = (m[i]! - m_old[i]!) / sigma;
  return y_w;
}

// ---------------------------------------------------------------------------------------------
// Step-size adaptation: CSA (eq. 43-44); TPA in ./tpa.ts

/**
 * p_sigma <- (1 - c_sigma) p_sigma + sqrt(c_sigma (2 - c_sigma) mu_eff) C^{-1/2} <y>_w (eq. 43),
 * given `whitened` = C^{-1/2} <y>_w. Also returns ||p_sigma||^2.
 */
function sigmaPath(p_sigma_old: readonly number[], whitened: Float64Array, c_sigma: number, mu_eff: number, n: number): { p_sigma: number[]; norm2: number } {
  const p_sigma = new Array<number>(n);
  const c = Math.sqrt(c_sigma * (2 - c_sigma) * mu_eff);
  let norm2 = 0;
  for (let i = 0; i < n; i++) {
    p_sigma[i] = (1 - c_sigma) * p_sigma_old[i]! + c * whitened[i]!;
    norm2 += p_sigma[i]! * p_sigma[i]!;
  }
  return { p_sigma, norm2 };
}

/**
 * h_sigma (tutorial p. 28, after eq. 45), as pycma's CMAAdaptSigmaBase.hsig:
 * ||p_sigma||^2 / (1 - (1 - c_sigma)^(2t)) / n < 2 + 4/(n+1), t the run's iteration.
 */
function hSigma(norm2: number, c_sigma: number, iteration: number, n: number): 0 | 1 {
  return norm2 / (1 - (1 - c_sigma) ** (2 * iteration)) / n < 2 + 4 / (n + 1) ? 1 : 0;
}

/** sigma <- sigma exp((c_sigma / d_sigma) (||p_sigma|| / E||N(0,I)|| - 1)) (eq. 44), pycma's exponent clipped to [-1, 1]. */
function csaStep(sigma: number, norm2: number, c_sigma: number, d_sigma: number, chiN: number): number {
  const delta = (c_sigma / d_sigma) * (Math.sqrt(norm2) / chiN - 1);
  return sigma * Math.exp(Math.max(-1, Math.min(1, delta)));
}

/**
 * pycma's flat-fitness handling (CMAEvolutionStrategy.tell: if the best and the
 * ceil(0.1 + lambda/4)-th best f are equal, sigma *= exp(0.2 + c_sigma/d_sigma) and
 * fit.flatfit_iterations counts toward tolflatfitness), taken over the real f-values only:
 * failures are stored as equal constants, and counting them as a plateau would inflate sigma
 * and stop a run for flat fitness that no evaluation showed. (pycma's own tell replaces None
 * and NaN by the median of the other values, which can fake a plateau the same way.) With
 * fewer real values than the test needs, the generation says nothing about flatness and
 * leaves the count as it is. Without failures, `real` is all f sorted and this is pycma's test.
 */
function flatFitness(s: CmaesState, real: readonly number[]): void {
  const P = s.params;
  const flatIdx = Math.min(P.lambda - 1, Math.ceil(0.1 + P.lambda / 4));
  if (real.length > flatIdx) {
    if (real[0] === real[flatIdx]) {
      s.flatCount++;
      s.sigma *= Math.exp(0.2 + P.cs / P.damps);
    } else {
      s.flatCount = 0;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Covariance adaptation (eq. 45-47)

/**
 * p_c <- (1 - c_c) p_c + h_sigma sqrt(c_c (2 - c_c) mu_eff) <y>_w (eq. 45). Separable: p_c lives
 * in the coordinates normalised by the diagonal scaling `D` (pycma tell), so <y>_w is divided by it.
 */
function covariancePath(
  p_c_old: readonly number[], y_w: Float64Array, h_sigma: number, c_c: number, mu_eff: number, D: readonly number[] | null, n: number,
): number[] {
  const p_c = new Array<number>(n);
  const c = h_sigma * Math.sqrt(c_c * (2 - c_c) * mu_eff);
  if (D) for (let i = 0; i < n; i++) p_c[i] = (1 - c_c) * p_c_old[i]! + (c * y_w[i]!) / D[i]!;
  else for (let i = 0; i < n; i++) p_c[i] = (1 - c_c) * p_c_old[i]! + c * y_w[i]!;
  return p_c;
}

/** A point that enters the rank-mu update: its slot k and weight w_i (i its rank). */
interface Selected {
  k: number;
  w: number;
}

/**
 * The points of the rank-mu update, best first: every rank with a nonzero weight, a negative
 * one only where `negativeAllowed`.
 */
function rankMuSelection(weights: readonly number[], order: readonly number[], lambda: number, negativeAllowed: (k: number) => boolean): Selected[] {
  const selected: Selected[] = [];
  for (let r = 0; r < lambda; r++) {
    const w = weights[r]!;
    if (w === 0) continue;
    const k = order[r]!;
    if (w < 0 && !negativeAllowed(k)) continue;
    selected.push({ k, w });
  }
  return selected;
}

/**
 * pycma's c1a = c1 (1 - (1 - h_sigma) c_c (2 - c_c)): the rank-one rate with the variance that
 * h_sigma = 0 removes from p_c given back (tutorial p. 28, delta(h_sigma)).
 */
function c1a(P: CmaesParams, h_sigma: number): number {
  return P.c1 * (1 - (1 - h_sigma) * P.cc * (2 - P.cc));
}

/**
 * Active weights, eq. (46): w_i° = w_i for w_i >= 0, else w_i n / ||C^{-1/2} y_{i:lambda}||^2
 * (z2 = ||z_k||^2 is that norm; pycma adds 1e-9).
 */
function activeWeight(w: number, z2: number, n: number): number {
  return w < 0 ? w * (n / (z2 + 1e-9)) : w;
}

/**
 * Full covariance, eq. (47): C <- (1 - c1a - cmu sum w_j) C + c1 p_c p_c^T
 * + cmu sum_i w_i° y_{i:lambda} y_{i:lambda}^T, with pycma's c1a in the decay (sampler.update).
 * The rank-one and rank-mu terms are added in one pass over C (./linalg.ts).
 */
function adaptCovariance(
  C_old: readonly number[], p_c: readonly number[], selected: readonly Selected[], x: readonly number[][], m_old: readonly number[],
  sigma: number, z2: readonly number[], h_sigma: number, P: CmaesParams, n: number,
): number[] {
  let sumW = 0;
  for (let r = 0; r < P.lambda; r++) sumW += P.weights[r]!;
  const decay = 1 - c1a(P, h_sigma) - P.cmu * sumW;
  // the rank-one vector p_c, then the rank-mu vectors y_k = (x_k - m_old) / sigma
  const vecs: Float64Array[] = [Float64Array.from(p_c)];
  const coefs: number[] = [P.c1];
  for (const { k, w } of selected) {
    const xk = x[k]!;
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) y[i] = (xk[i]! - m_old[i]!) / sigma;
    vecs.push(y);
    coefs.push(P.cmu * activeWeight(w, z2[k]!, n));
  }
  const C = C_old.slice();
  symmetricRankUpdate(C, n, decay, vecs, coefs);
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) C[j * n + i] = C[i * n + j]!;
  return C;
}

/**
 * Separable covariance (the n variances), as pycma's tell with CMA_diagonal=True:
 * sigma_vec.update(vectors, ln 2 * sampler_weights), and DiagonalDecoding.update multiplies each
 * standard deviation by exp((sum_k w_k z_ki^2 - sum_k w_k) / 2), i.e. each variance by
 * exp(ln 2 (c1a p_c,i^2 + cmu sum_k w_k z_ki^2 - c1a - cmu sum_k w_k)), with z_k the standard
 * normal samples and no rescaling of the negative weights (no eq. 46); the exponential form keeps
 * every variance positive with any rate. (pycma's clip of large factors assigns into a temporary
 * copy, so it has no effect there and none here.)
 */
function adaptDiagonal(
  C_old: readonly number[], p_c: readonly number[], selected: readonly Selected[], x: readonly number[][], m_old: readonly number[],
  sigma: number, D: readonly number[], h_sigma: number, P: CmaesParams, n: number,
): number[] {
  const c1 = c1a(P, h_sigma);
  const E = new Float64Array(n);
  let wsum = c1;
  for (let i = 0; i < n; i++) E[i] = c1 * p_c[i]! * p_c[i]!;
  for (const sel of selected) {
    const w = P.cmu * sel.w;
    if (w === 0) continue;
    const xk = x[sel.k]!;
    for (let i = 0; i < n; i++) {
      const z = (xk[i]! - m_old[i]!) / sigma / D[i]!;
      E[i] = E[i]! + w * z * z;
    }
    wsum += w;
  }
  const C = new Array<number>(n);
  for (let i = 0; i < n; i++) C[i] = C_old[i]! * Math.exp(Math.LN2 * (E[i]! - wsum));
  return C;
}

// ---------------------------------------------------------------------------------------------
// A run has stopped: restart (./restarts.ts) or finish

function finishRun(s: CmaesState): void {
  const o = s.options;
  const reason = s.runStop!;
  if (endsSearch(o, { reason, run: s.run })) {
    s.done = reason;
    return;
  }
  const rng = Rng.fromState(s.rng);
  const next = nextRun(o, {
    reason, run: s.run, lambda: s.runLambda, evaluations: s.runEvaluations, defaultLambda: s.defaultLambda,
    sigma0: s.sigma0, x0: o.x0!, bipop: s.bipop, bounds: s.bounds,
  }, rng);
  s.bipop = next.bipop;
  s.inject = []; // initial points belong to the first run only
  s.run++;
  s.firstOfRun = true;
  s.lastParents = [];
  startRun(s, next.lambda, next.sigma0, next.x0);
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
  defaultOptions: {},
  init,
  ask,
  tell,
  isDone,
};

const sepDefaults = { separable: true } as const;

/** The same optimizer with `separable: true` as default (sep-CMA-ES, Ros and Hansen 2008). */
export const sepCmaes: Optimizer<CmaesOptions, CmaesState> = {
  ...cmaes,
  id: 'sep-cmaes',
  title: 'sep-CMA-ES (diagonal covariance, linear time per sample)',
  reference: 'Ros and Hansen, PPSN 2008; pycma CMA_diagonal=True',
  defaultOptions: sepDefaults,
  init: (dim, options, seed) => init(dim, { ...sepDefaults, ...((options as object | undefined) ?? {}) }, seed),
};
