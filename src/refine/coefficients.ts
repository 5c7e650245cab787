/**
 * One merged tensor as a smooth function of its coefficients, masks fixed at the candidate's, and
 * the directional sums G . dW/dcoefficient the chain rule needs. The formulas are those of
 * src/methods/gta.ts (mergekit generalized_task_arithmetic.py) and src/methods/linear.ts
 * (mergekit linear.py):
 *
 *   task arithmetic, DARE linear (no consensus): W = base + lambda s sum_k w_k D_k,
 *       s = 1 / sum_k w_k when normalize (|sum| < 1e-8 -> 1, gta.ts guardedSum), else 1
 *       dW/dw_k = lambda s (D_k - s sum_j w_j D_j)   (the second term only when s depends on w)
 *   TIES, DARE TIES (sum consensus, TIES sec. 3): elected_i = sign(sum_k w_k D_ki) (0 -> +),
 *       a_ki = [D_ki != 0 and sign D_ki = elected_i], mixed_i = sum_k a_ki w_k D_ki,
 *       div_i = sum_k a_ki w_k (0 -> 1; 1 without normalize, tensor/kernels.ts tiesMerge),
 *       W_i = base_i + lambda mixed_i / div_i;  dW_i/dw_k = lambda a_ki (D_ki - mixed_i/div_i) / div_i
 *   linear: W = s sum_k w_k x_k, s = 1 / sum_k w_k when normalize; dW/dw_k = s (x_k - W)
 *   dW/dlambda = (W - base) / lambda, computed as the unscaled mixed delta.
 *
 * D_k is model k's task vector after its own sparsification and rescale (TIES top-k trim, DARE
 * drop mask and 1/density or L1 factor), taken from the method itself: a one-model merge at
 * weight 1, lambda 1, no normalisation returns base + D_k with the same seeded masks, so no mask
 * rule is written twice. The elected sign and a_ki stay at the candidate's weights (masks fixed).
 */
import type { MergeMethod } from '../methods/index.ts';
import type { TensorTask } from '../merge/index.ts';

export interface Linearized {
  merged: Float32Array;
  /** sum_i G_i dW_i/dparam (model k for weights, -1 for lambda). */
  dot(G: Float32Array, param: 'weight' | 'lambda', model: number): number;
}

export function linearization(method: MergeMethod, task: TensorTask, read: (model: string, tensor: string) => Float32Array, seed: string | number): Linearized {
  const models = task.models.map((r) => read(r.model, r.tensor));
  const w = task.perModel.map((p) => p.weight as number);
  const m = models.length;
  const normalize = task.global.normalize === true;
  if (method.id === 'linear') {
    const n = models[0]!.length;
    let sum = 0;
    for (const x of w) sum += x;
    const s = normalize ? 1 / sum : 1;
    const out = new Float64Array(n);
    for (let k = 0; k < m; k++) for (let i = 0; i < n; i++) out[i]! += w[k]! * s * models[k]![i]!;
    return {
      merged: Float32Array.from(out),
      dot(G, _param, k) {
        let acc = 0;
        for (let i = 0; i < n; i++) acc += G[i]! * s * (models[k]![i]! - (normalize ? out[i]! : 0));
        return acc;
      },
    };
  }
  const base = read(task.base!.model, task.base!.tensor);
  const n = base.length;
  const lambda = task.global.lambda as number;
  const D: Float64Array[] = models.map((x, k) => {
    const d = new Float64Array(n);
    if (method.id === 'task_arithmetic') {
      for (let i = 0; i < n; i++) d[i] = x[i]! - base[i]!;
      return d;
    }
    const one = method.merge(
      { name: task.name, shape: task.shape, base, models: [x.slice()], modelIndex: [task.modelIndex[k]!] },
      { ...task.global, lambda: 1, normalize: false },
      [{ ...task.perModel[k]!, weight: 1 }],
      { seed },
    );
    for (let i = 0; i < n; i++) d[i] = one[i]! - base[i]!;
    return d;
  });
  const mixed = new Float64Array(n);
  if (method.id === 'task_arithmetic' || method.id === 'dare_linear') {
    let sum = 0;
    for (const x of w) sum += x;
    const guarded = Math.abs(sum) < 1e-8;
    const s = normalize && !guarded ? 1 / sum : 1;
    for (let k = 0; k < m; k++) for (let i = 0; i < n; i++) mixed[i]! += s * w[k]! * D[k]![i]!;
    const merged = new Float32Array(n);
    for (let i = 0; i < n; i++) merged[i] = base[i]! + lambda * mixed[i]!;
    const varies = normalize && !guarded;
    return {
      merged,
      dot(G, param, k) {
        let acc = 0;
        if (param === 'lambda') for (let i = 0; i < n; i++) acc += G[i]! * mixed[i]!;
        else for (let i = 0; i < n; i++) acc += G[i]! * lambda * s * (D[k]![i]! - (varies ? mixed[i]! : 0));
        return acc;
      },
    };
  }
  // sum consensus
  const agree = models.map(() => new Uint8Array(n));
  const div = new Float64Array(n);
  const ratio = new Float64Array(n); // mixed / div
  for (let i = 0; i < n; i++) {
    let e = 0;
    for (let k = 0; k < m; k++) e += w[k]! * D[k]![i]!;
    const pos = e >= 0;
    let mx = 0;
    let dv = 0;
    for (let k = 0; k < m; k++) {
      const d = D[k]![i]!;
      if (d !== 0 && (d > 0) === pos) {
        agree[k]![i] = 1;
        mx += w[k]! * d;
        dv += w[k]!;
      }
    }
    if (dv === 0 || !normalize) dv = 1;
    mixed[i] = mx;
    div[i] = dv;
    ratio[i] = mx / dv;
  }
  const merged = new Float32Array(n);
  for (let i = 0; i < n; i++) merged[i] = base[i]! + lambda * ratio[i]!;
  return {
    merged,
    dot(G, param, k) {
      let acc = 0;
      if (param === 'lambda') for (let i = 0; i < n; i++) acc += G[i]! * ratio[i]!;
      else {
        const a = agree[k]!;
        const d = D[k]!;
        for (let i = 0; i < n; i++) if (a[i]) acc += (G[i]! * lambda * (d[i]! - (normalize ? ratio[i]! : 0))) / div[i]!;
      }
      return acc;
    },
  };
}
