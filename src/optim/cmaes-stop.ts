/**
 * When a CMA-ES run stops: pycma 4.x's termination tests (`evolution_strategy._CMAStopDict`,
 * github.com/CMA-ES/pycma, with the tolerances of `CMAOptions`) and the f-value histories they
 * read (`CMAEvolutionStrategy.tell`: `fit.hist`, `fit.histbest`, `fit.histmedian`). A stopped run
 * is restarted or ends the search (./restarts.ts). The tests see real f-values only: failed
 * evaluations (stored as FAILED_F) are left out, so a run told only failures never reads as
 * converged, flat or stagnating.
 */
import { type CmaesState, FAILED_F } from './cmaes-state.ts';

/** A stored f that is not the failure constant. */
function isReal(v: number): boolean {
  return v !== FAILED_F;
}

export function median(a: readonly number[]): number {
  const b = a.slice().sort((x, y) => x - y);
  const m = b.length >> 1;
  return b.length % 2 ? b[m]! : (b[m - 1]! + b[m]!) / 2;
}

/**
 * Appends a generation to the histories: its best f to `histFit` (the last 10 + 30 n / lambda
 * iterations), and every 5th iteration its best and median f to `histBest` and `histMedian` (at
 * most 20000 entries), as pycma's tell does. `real` holds the generation's real f-values,
 * sorted, at least one. The filters drop the FAILED_F entries that states saved before this
 * rule may hold.
 */
export function recordHistories(s: CmaesState, real: readonly number[]): void {
  const n = s.dim;
  const lambda = s.params.lambda;
  const histLen = Math.floor(10 + (30 * n) / lambda);
  s.histFit = [...s.histFit.filter(isReal), real[0]!].slice(-histLen);
  if (s.iteration % 5 === 0) {
    s.histBest = [...s.histBest.filter(isReal), real[0]!].slice(-20000);
    s.histMedian = [...s.histMedian.filter(isReal), median(real)].slice(-20000);
  }
}

/**
 * pycma `_CMAStopDict` tests, in pycma's order; returns the first reason that holds. `sorted`
 * holds this generation's real f-values (failures left out), sorted. The f-value tests
 * (tolfun, tolfunhist, tolstagnation) need real values: tolfun at least two in this
 * generation, tolfunhist and tolstagnation at least one (their histories grow only then).
 */
export function runTermination(s: CmaesState, sorted: readonly number[]): string | null {
  const o = s.options;
  const n = s.dim;
  const P = s.params;
  if (o.targetFitness !== undefined && s.best && s.best.fitness >= o.targetFitness) return 'ftarget';
  if (o.maxEvaluations !== undefined && s.evaluations >= o.maxEvaluations) return 'maxfevals';
  const maxiter = o.maxiter ?? Math.floor(100 + (150 * (n + 3) ** 2) / Math.sqrt(P.lambda));
  if (s.iteration >= maxiter) return 'maxiter';
  const fresh = sorted.length > 0;
  const stagLen = o.tolstagnation ?? Math.floor(100 + (100 * n ** 1.5) / P.lambda);
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
