/**
 * Karcher mean: Hermann Karcher, "Riemannian center of mass and mollifier smoothing",
 * Communications on Pure and Applied Mathematics 30(5), 1977,
 * https://en.wikipedia.org/wiki/Karcher_mean; follows mergekit/merge_methods/karcher.py, with
 * norms and dot products accumulated in float64 (vector.ts).
 */
import type { MergeMethod } from './types.ts';
import { alloc, norm } from './vector.ts';

/**
 * mergekit/merge_methods/karcher.py: the Riemannian (Karcher) mean of the unit directions with
 * equal weights, by fixed-point iteration (at most `max_iter`, stopping when the tangent norm is
 * below `tol`), scaled by the mean of the norms.
 */
export const karcher: MergeMethod = {
  id: 'karcher',
  title: 'Karcher Mean',
  reference: 'https://en.wikipedia.org/wiki/Karcher_mean (Karcher 1977; mergekit karcher.py)',
  requiresBase: 'none',
  minModels: 1,
  maxModels: Infinity,
  mergekitId: 'karcher',
  random: false,
  params: [
    { name: 'max_iter', scope: 'global', type: 'number', range: [0, 10000], default: 10, doc: 'maximum iterations' },
    { name: 'tol', scope: 'global', type: 'number', range: [0, 1], default: 1e-5, doc: 'convergence tolerance' },
  ],
  merge(input, g, _pm, _ctx, outArg) {
    const xs = input.models;
    const m = xs.length;
    const n = xs[0]!.length;
    const out = alloc(n, outArg);
    if (m === 1) {
      out.set(xs[0]!);
      return out;
    }
    const tol = g.tol as number;
    const maxIter = g.max_iter as number;
    const alphas = xs.map(() => 1 / m);
    const norms = xs.map((x) => norm(x));
    const valid = norms.map((v, i) => (v > tol ? i : -1)).filter((i) => i >= 0);
    if (valid.length === 0) {
      out.fill(0);
      return out;
    }
    const asum = valid.reduce((s, i) => s + alphas[i]!, 0);
    const na = valid.map((i) => alphas[i]! / asum);
    const unit = (j: number, i: number): number => xs[j]![i]! / norms[j]!;
    const u = new Float64Array(n);
    for (let k = 0; k < valid.length; k++) for (let i = 0; i < n; i++) u[i] += na[k]! * unit(valid[k]!, i);
    let nu = 0;
    for (let i = 0; i < n; i++) nu += u[i]! * u[i]!;
    nu = Math.sqrt(nu);
    if (nu < tol) for (let i = 0; i < n; i++) u[i] = unit(valid[0]!, i);
    else for (let i = 0; i < n; i++) u[i] = u[i]! / nu;
    const T = new Float64Array(n);
    for (let it = 0; it < maxIter; it++) {
      T.fill(0);
      for (let k = 0; k < valid.length; k++) {
        const j = valid[k]!;
        let d = 0;
        for (let i = 0; i < n; i++) d += u[i]! * unit(j, i);
        d = Math.min(1, Math.max(-1, d));
        const theta = Math.acos(d);
        if (theta < tol) continue;
        const c = (na[k]! * theta) / Math.sin(theta);
        for (let i = 0; i < n; i++) T[i] += c * (unit(j, i) - d * u[i]!);
      }
      let nT = 0;
      for (let i = 0; i < n; i++) nT += T[i]! * T[i]!;
      nT = Math.sqrt(nT);
      if (nT < tol) break;
      const c = Math.cos(nT);
      const s = Math.sin(nT) / nT;
      let un = 0;
      for (let i = 0; i < n; i++) {
        u[i] = c * u[i]! + s * T[i]!;
        un += u[i]! * u[i]!;
      }
      un = Math.sqrt(un);
      if (un > tol) for (let i = 0; i < n; i++) u[i] = u[i]! / un;
    }
    let scale = 0;
    for (let j = 0; j < m; j++) scale += alphas[j]! * norms[j]!;
    for (let i = 0; i < n; i++) out[i] = scale * u[i]!;
    return out;
  },
};
