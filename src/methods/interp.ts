/**
 * Interpolation and averaging methods, each matching mergekit's implementation (file named per
 * method) with norms and dot products accumulated in float64 (mergekit uses float32; results agree
 * to float32 tolerance).
 */
import { MethodInputError } from './errors.ts';
import type { MergeMethod, ResolvedParams, TensorInput } from './types.ts';
import { quickselect } from '../tensor/select.ts';
import { taskVector, weightedSum } from '../tensor/kernels.ts';
import { FastRng } from '../tensor/fastrng.ts';

function alloc(n: number, out?: Float32Array): Float32Array {
  return out ?? new Float32Array(n);
}

function norm(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s);
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

// ---------------------------------------------------------------------------------------------
/** mergekit/merge_methods/linear.py: sum_i w_i x_i, divided by sum_i w_i when `normalize`. */
export const linear: MergeMethod = {
  id: 'linear',
  title: 'Linear (model soup)',
  reference: 'https://arxiv.org/abs/2203.05482 (Wortsman et al., Model soups, ICML 2022)',
  requiresBase: 'none',
  minModels: 1,
  maxModels: Infinity,
  mergekitId: 'linear',
  random: false,
  params: [
    { name: 'weight', scope: 'per-model', type: 'number', range: [-Infinity, Infinity], search: [0, 1], doc: 'weight of this model' },
    { name: 'normalize', scope: 'global', type: 'boolean', default: true, doc: 'divide by the sum of the weights' },
  ],
  notes: ['mergekit divides by a zero weight sum (NaN/Inf); evomerge refuses it with E_LINEAR_ZERO_WEIGHTS'],
  merge(input, g, pm, _ctx, outArg) {
    const n = input.models[0]!.length;
    const out = alloc(n, outArg);
    const w = pm.map((p) => p.weight as number);
    let wsum = 0;
    for (const x of w) wsum += x;
    let scale = 1;
    if (g.normalize) {
      if (wsum === 0) throw new MethodInputError('E_LINEAR_ZERO_WEIGHTS', `tensor ${input.name}: linear with normalize divides by the sum of weights, which is 0; change the weights or set normalize: false`);
      scale = 1 / wsum;
    }
    weightedSum(input.models, w.map((x) => x * scale), out);
    return out;
  },
};

// ---------------------------------------------------------------------------------------------
/**
 * mergekit/merge_methods/slerp.py (Shoemake 1985): spherical interpolation from the base (t = 0)
 * to the other model (t = 1) over the flattened tensors; plain lerp when the normalised vectors
 * are nearly colinear (|cos| > 0.9995). A vector whose norm is <= 1e-8 is used unnormalised.
 */
export function slerpVectors(t: number, v0: Float32Array, v1: Float32Array, out: Float32Array): Float32Array {
  const eps = 1e-8;
  const n0 = norm(v0);
  const n1 = norm(v1);
  const d0 = n0 > eps ? n0 : 1;
  const d1 = n1 > eps ? n1 : 1;
  const cos = dot(v0, v1) / (d0 * d1);
  let s0: number;
  let s1: number;
  if (Math.abs(cos) > 0.9995) {
    s0 = 1 - t;
    s1 = t;
  } else {
    const theta0 = Math.acos(cos);
    const sin0 = Math.sin(theta0);
    const thetaT = theta0 * t;
    s0 = Math.sin(theta0 - thetaT) / sin0;
    s1 = Math.sin(thetaT) / sin0;
  }
  for (let i = 0; i < v0.length; i++) out[i] = s0 * v0[i]! + s1 * v1[i]!;
  return out;
}

export const slerp: MergeMethod = {
  id: 'slerp',
  title: 'SLERP',
  reference: 'https://en.wikipedia.org/wiki/Slerp (Shoemake 1985; mergekit slerp.py)',
  requiresBase: 'required',
  minModels: 1,
  maxModels: 1,
  mergekitId: 'slerp',
  random: false,
  params: [{ name: 't', scope: 'global', type: 'number', range: [-Infinity, Infinity], search: [0, 1], doc: 'interpolation factor: 0 gives the base, 1 the other model' }],
  merge(input, g, _pm, _ctx, outArg) {
    const base = input.base!;
    const out = alloc(base.length, outArg);
    if (input.models.length === 0) {
      out.set(base);
      return out;
    }
    return slerpVectors(g.t as number, base, input.models[0]!, out);
  },
};

// ---------------------------------------------------------------------------------------------
/**
 * mergekit/merge_methods/nuslerp.py: slerp between two models with t = w1 / (w0 + w1), over the
 * flattened tensor (`nuslerp_flatten`, default), or per row, or per column (`nuslerp_row_wise`);
 * with a base, slerp of the two task vectors added to the base.
 */
export const nuslerp: MergeMethod = {
  id: 'nuslerp',
  title: 'NuSLERP',
  reference: 'https://github.com/arcee-ai/mergekit (mergekit nuslerp.py)',
  requiresBase: 'optional',
  minModels: 2,
  maxModels: 2,
  mergekitId: 'nuslerp',
  random: false,
  params: [
    { name: 'weight', scope: 'per-model', type: 'number', range: [-Infinity, Infinity], search: [0, 1], doc: 'relative weight; t = w1 / (w0 + w1)' },
    { name: 'nuslerp_flatten', scope: 'global', type: 'boolean', default: true, doc: 'interpolate the whole flattened tensor as one vector' },
    { name: 'nuslerp_row_wise', scope: 'global', type: 'boolean', default: false, doc: 'when not flattened: interpolate columns (dim 0) instead of rows (last dim)' },
  ],
  merge(input, g, pm, _ctx, outArg) {
    const [a, b] = input.models as [Float32Array, Float32Array];
    const n = a.length;
    const out = alloc(n, outArg);
    const w0 = pm[0]!.weight as number;
    const w1 = pm[1]!.weight as number;
    const t = Math.abs(w0 + w1) < 1e-6 ? 0.5 : w1 / (w0 + w1);
    const base = input.base;
    let v0 = a;
    let v1 = b;
    if (base) {
      v0 = taskVector(a, base);
      v1 = taskVector(b, base);
    }
    const shape = input.shape;
    if (g.nuslerp_flatten || shape.length < 2) {
      nuslerpStrided(t, v0, v1, out, 0, 1, n);
    } else {
      const cols = shape[shape.length - 1]!;
      const rows = n / cols;
      if (g.nuslerp_row_wise) {
        // dim 0 moved last: vectors run along the first axis (stride = product of the rest)
        const first = shape[0]!;
        const stride = n / first;
        for (let c = 0; c < stride; c++) nuslerpStrided(t, v0, v1, out, c, stride, first);
      } else {
        for (let r = 0; r < rows; r++) nuslerpStrided(t, v0, v1, out, r * cols, 1, cols);
      }
    }
    if (base) for (let i = 0; i < n; i++) out[i] = base[i]! + out[i]!;
    return out;
  },
};

function nuslerpStrided(t: number, v0: Float32Array, v1: Float32Array, out: Float32Array, off: number, stride: number, len: number): void {
  let n0 = 0;
  let n1 = 0;
  let d = 0;
  for (let k = 0, i = off; k < len; k++, i += stride) {
    n0 += v0[i]! * v0[i]!;
    n1 += v1[i]! * v1[i]!;
    d += v0[i]! * v1[i]!;
  }
  // _normalize clamps norms at 1e-7; colinear when |sin theta| < 1e-8 (nuslerp.py)
  const cos = Math.min(1, Math.max(-1, d / (Math.max(Math.sqrt(n0), 1e-7) * Math.max(Math.sqrt(n1), 1e-7))));
  const theta = Math.acos(cos);
  const sin = Math.sin(theta);
  let s0: number;
  let s1: number;
  if (Math.abs(sin) < 1e-8) {
    s0 = 1 - t;
    s1 = t;
  } else {
    s0 = Math.sin((1 - t) * theta) / sin;
    s1 = Math.sin(t * theta) / sin;
  }
  for (let k = 0, i = off; k < len; k++, i += stride) out[i] = s0 * v0[i]! + s1 * v1[i]!;
}

// ---------------------------------------------------------------------------------------------
/**
 * mergekit/merge_methods/multislerp.py (Goddard 2025): barycentric interpolation on the
 * hypersphere: unit vectors, weighted mean direction, tangent-space average, exponential map back,
 * scaled by the weighted mean norm. With a base, over task vectors.
 */
export const multislerp: MergeMethod = {
  id: 'multislerp',
  title: 'Multi-SLERP',
  reference: 'https://goddard.blog/posts/multislerp-wow-what-a-cool-idea (mergekit multislerp.py)',
  requiresBase: 'optional',
  minModels: 1,
  maxModels: Infinity,
  mergekitId: 'multislerp',
  random: false,
  params: [
    { name: 'weight', scope: 'per-model', type: 'number', range: [-Infinity, Infinity], search: [0, 1], doc: 'weight of this model' },
    { name: 'normalize_weights', scope: 'global', type: 'boolean', default: true, doc: 'divide the weights by their sum' },
    { name: 'eps', scope: 'global', type: 'number', range: [0, 1], default: 1e-8, doc: 'numerical-stability constant' },
  ],
  merge(input, g, pm, _ctx, outArg) {
    const m = input.models.length;
    const n = input.models[0]!.length;
    const out = alloc(n, outArg);
    const base = input.base;
    if (m === 1) {
      out.set(input.models[0]!);
      return out;
    }
    const eps = g.eps as number;
    const xs = base ? input.models.map((x) => taskVector(x, base)) : input.models;
    let w = pm.map((p) => p.weight as number);
    if (g.normalize_weights) {
      const s = w.reduce((a, b) => a + b, 0);
      w = w.map((x) => x / s);
    }
    const norms = xs.map((x) => norm(x));
    const inv = norms.map((v) => 1 / (v + eps));
    // weighted mean of unit vectors
    const mean = new Float64Array(n);
    for (let j = 0; j < m; j++) {
      const x = xs[j]!;
      const c = w[j]! * inv[j]!;
      for (let i = 0; i < n; i++) mean[i] += c * x[i]!;
    }
    let mn = 0;
    for (let i = 0; i < n; i++) mn += mean[i]! * mean[i]!;
    mn = Math.sqrt(mn);
    if (mn < eps) {
      if (m === 2) {
        for (let i = 0; i < n; i++) out[i] = xs[0]![i]! * w[0]! + xs[1]![i]! * w[1]! + (base ? base[i]! : 0);
        return out;
      }
      throw new MethodInputError('E_MULTISLERP_ANTIPODAL', `tensor ${input.name}: the weighted sum of the unit vectors is zero (antipodal models with balancing weights); change the weights`);
    }
    for (let i = 0; i < n; i++) mean[i] = mean[i]! / mn;
    const dots = xs.map((x, j) => {
      let s = 0;
      for (let i = 0; i < n; i++) s += x[i]! * inv[j]! * mean[i]!;
      return s;
    });
    // tangent result: sum_j w_j (u_j - dots_j mean)
    const tan = new Float64Array(n);
    for (let j = 0; j < m; j++) {
      const x = xs[j]!;
      const c = w[j]! * inv[j]!;
      const dm = w[j]! * dots[j]!;
      for (let i = 0; i < n; i++) tan[i] += c * x[i]! - dm * mean[i]!;
    }
    let tn = 0;
    for (let i = 0; i < n; i++) tn += tan[i]! * tan[i]!;
    tn = Math.sqrt(tn) + eps;
    let avgNorm = 0;
    for (let j = 0; j < m; j++) avgNorm += norms[j]! * w[j]!;
    const cm = Math.cos(tn) * avgNorm;
    const ct = (Math.sin(tn) / tn) * avgNorm;
    for (let i = 0; i < n; i++) out[i] = mean[i]! * cm + tan[i]! * ct + (base ? base[i]! : 0);
    return out;
  },
};

// ---------------------------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------------------------
/**
 * mergekit/merge_methods/model_stock.py (Jang et al. 2024, eq. 5): t = N cos / (1 + (N - 1) cos),
 * cos the mean pairwise cosine of the task vectors (whole tensor, or per row with `filter_wise`),
 * out = t * mean(models) + (1 - t) * base.
 */
export const modelStock: MergeMethod = {
  id: 'model_stock',
  title: 'Model Stock',
  reference: 'https://arxiv.org/abs/2403.19522 (Jang et al., Model Stock, ECCV 2024)',
  requiresBase: 'required',
  minModels: 2,
  maxModels: Infinity,
  mergekitId: 'model_stock',
  random: false,
  params: [{ name: 'filter_wise', scope: 'global', type: 'boolean', default: false, doc: 'one ratio per row instead of per tensor' }],
  merge(input, g, _pm, _ctx, outArg) {
    const base = input.base!;
    const ws = input.models;
    const N = ws.length;
    const n = base.length;
    const out = alloc(n, outArg);
    const rowLen = g.filter_wise ? (input.shape.length >= 2 ? input.shape[input.shape.length - 1]! : n) : n;
    const rows = n / rowLen;
    for (let r = 0; r < rows; r++) {
      const off = r * rowLen;
      let cosSum = 0;
      let pairs = 0;
      for (let a = 0; a < N; a++) {
        for (let b = a + 1; b < N; b++) {
          let na = 0;
          let nb = 0;
          let d = 0;
          const xa = ws[a]!;
          const xb = ws[b]!;
          for (let i = off; i < off + rowLen; i++) {
            const oa = xa[i]! - base[i]!;
            const ob = xb[i]! - base[i]!;
            na += oa * oa;
            nb += ob * ob;
            d += oa * ob;
          }
          const c = d / Math.max(Math.sqrt(na) * Math.sqrt(nb), 1e-6);
          cosSum += Math.min(1, Math.max(-1, c));
          pairs++;
        }
      }
      const cos = cosSum / pairs;
      const t = (N * cos) / (1 + (N - 1) * cos);
      for (let i = off; i < off + rowLen; i++) {
        let s = 0;
        for (let j = 0; j < N; j++) s += ws[j]![i]!;
        out[i] = (t * s) / N + (1 - t) * base[i]!;
      }
    }
    return out;
  },
};

// ---------------------------------------------------------------------------------------------
/** mergekit/merge_methods/nearswap.py: w = clamp(t / max(|base - x|, 1e-6), 0, 1); out = w x + (1 - w) base. */
export const nearswap: MergeMethod = {
  id: 'nearswap',
  title: 'NearSwap',
  reference: 'https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001 (mergekit nearswap.py)',
  requiresBase: 'required',
  minModels: 1,
  maxModels: 1,
  mergekitId: 'nearswap',
  random: false,
  params: [{ name: 't', scope: 'global', type: 'number', range: [0, Infinity], search: [0, 0.01], doc: 'distance below which a parameter is taken from the other model' }],
  merge(input, g, _pm, _ctx, outArg) {
    const a = input.base!;
    const out = alloc(a.length, outArg);
    if (input.models.length === 0) {
      out.set(a);
      return out;
    }
    const b = input.models[0]!;
    const t = g.t as number;
    for (let i = 0; i < a.length; i++) {
      const diff = Math.abs(a[i]! - b[i]!);
      const w = Math.min(1, Math.max(0, t / Math.max(diff, 1e-6)));
      out[i] = w * b[i]! + (1 - w) * a[i]!;
    }
    return out;
  },
};

// ---------------------------------------------------------------------------------------------
/**
 * mergekit/merge_methods/arcee_fusion.py: importance = |x - base| * KL(softmax(x) || softmax(base))
 * per row (softmax over the last dim, +1e-8); keep the delta where importance >= median + 1.5 IQR,
 * quantiles taken at floor(q (n - 1)) of the sorted importances (quickselect here). Tensors over
 * 1e6 elements: mergekit samples 1e6 of them with an unseeded randperm; evomerge draws the sample
 * from the merge seed (deterministic, same estimator).
 */
export const arceeFusion: MergeMethod = {
  id: 'arcee_fusion',
  title: 'Arcee Fusion',
  reference: 'https://arcee.ai (mergekit arcee_fusion.py)',
  requiresBase: 'required',
  minModels: 1,
  maxModels: 1,
  mergekitId: 'arcee_fusion',
  random: false,
  params: [],
  notes: ['tensors over 1e6 elements: quantiles are estimated on a seeded sample of 1e6 (mergekit: unseeded)'],
  merge(input, _g, _pm, ctx, outArg) {
    const base = input.base!;
    const n = base.length;
    const out = alloc(n, outArg);
    if (input.models.length === 0) {
      out.set(base);
      return out;
    }
    const x = input.models[0]!;
    const cols = input.shape.length >= 1 ? input.shape[input.shape.length - 1]! : n;
    const rows = n / cols;
    const imp = new Float32Array(n);
    for (let r = 0; r < rows; r++) {
      const off = r * cols;
      let mx = -Infinity;
      let mb = -Infinity;
      for (let i = off; i < off + cols; i++) {
        if (x[i]! > mx) mx = x[i]!;
        if (base[i]! > mb) mb = base[i]!;
      }
      let zx = 0;
      let zb = 0;
      for (let i = off; i < off + cols; i++) {
        zx += Math.exp(x[i]! - mx);
        zb += Math.exp(base[i]! - mb);
      }
      let kl = 0;
      for (let i = off; i < off + cols; i++) {
        const p = Math.exp(x[i]! - mx) / zx + 1e-8;
        const q = Math.exp(base[i]! - mb) / zb + 1e-8;
        kl += p * Math.log(p / q);
      }
      for (let i = off; i < off + cols; i++) imp[i] = Math.abs(x[i]! - base[i]!) * kl;
    }
    let sample: Float32Array;
    if (n > 1e6) {
      // partial Fisher-Yates over indices, seeded by (seed, tensor)
      const idx = new Uint32Array(n);
      for (let i = 0; i < n; i++) idx[i] = i;
      const rng = FastRng.forTensor(ctx.seed, input.name, 0, 'arcee_fusion');
      sample = new Float32Array(1e6);
      for (let k = 0; k < 1e6; k++) {
        const r = k + Math.floor(rng.nextFloat() * (n - k));
        const t = idx[k]!;
        idx[k] = idx[r]!;
        idx[r] = t;
        sample[k] = imp[idx[k]!]!;
      }
    } else sample = imp.slice();
    const q = (f: number): number => quickselect(sample, Math.floor(f * (sample.length - 1)));
    const median = q(0.5);
    const q1 = q(0.25);
    const q3 = q(0.75);
    const threshold = median + 1.5 * (q3 - q1);
    for (let i = 0; i < n; i++) out[i] = imp[i]! >= threshold ? base[i]! + (x[i]! - base[i]!) : base[i]!;
    return out;
  },
};

// ---------------------------------------------------------------------------------------------
/** mergekit/merge_methods/passthrough.py: the one source tensor, times `scale` when given. */
export const passthrough: MergeMethod = {
  id: 'passthrough',
  title: 'Passthrough',
  reference: 'https://github.com/arcee-ai/mergekit (mergekit passthrough.py; layer stacking with slices)',
  requiresBase: 'none',
  minModels: 1,
  maxModels: 1,
  mergekitId: 'passthrough',
  random: false,
  params: [{ name: 'scale', scope: 'global', type: 'number', range: [-Infinity, Infinity], default: null, doc: 'optional factor applied to the tensor' }],
  merge(input, g, _pm, _ctx, outArg) {
    const x = input.models[0]!;
    const out = alloc(x.length, outArg);
    const s = g.scale as number | null;
    if (s === null || s === undefined) out.set(x);
    else for (let i = 0; i < x.length; i++) out[i] = x[i]! * s;
    return out;
  },
};

export const interpMethods: readonly MergeMethod[] = [linear, slerp, nuslerp, multislerp, karcher, modelStock, nearswap, arceeFusion, passthrough];

export type { ResolvedParams, TensorInput };
