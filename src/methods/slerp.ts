/**
 * The spherical interpolations, each following mergekit's file of its name, with norms and dot
 * products accumulated in float64 (vector.ts):
 *
 * - slerp: Ken Shoemake, "Animating rotation with quaternion curves", SIGGRAPH 1985,
 *   https://en.wikipedia.org/wiki/Slerp; mergekit/merge_methods/slerp.py.
 * - nuslerp: Arcee AI (mergekit), 2025, slerp with weights and row/column modes;
 *   https://github.com/arcee-ai/mergekit, mergekit/merge_methods/nuslerp.py.
 * - multislerp: Charles Goddard, "Multi-SLERP", 2025,
 *   https://goddard.blog/posts/multislerp-wow-what-a-cool-idea; mergekit/merge_methods/multislerp.py.
 */
import { MethodInputError } from './errors.ts';
import type { MergeMethod } from './types.ts';
import { taskVector } from '../tensor/kernels.ts';
import { alloc, dot, norm } from './vector.ts';

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
