/**
 * FuseChat's merging methods.
 *
 * SCE (FuseChat 2.0: Wan et al., "FuseChat: Knowledge Fusion of Chat Models", 2024,
 * https://arxiv.org/abs/2408.07990, sec. 3.3): per parameter matrix, over task vectors
 * delta_i = x_i - base,
 *   Select:    keep the `select_topk` fraction of positions with the largest variance across models
 *   Calculate: w_i = mean(delta_i^2) / sum_j mean(delta_j^2)   (uniform when the sum < 1e-6)
 *   Erase:     drop entries whose sign disagrees with the sign of sum_i delta_i (TIES election)
 *   out = base + sum_i w_i e_i delta_i / max(sum_i w_i e_i, 1e-6)
 * `sce_variant: mergekit` (mergekit/merge_methods/sce.py) applies the Select mask to the task
 * vectors themselves, so only selected positions are merged; `sce_variant: fusechat` (the
 * FuseChat release) uses the mask only to compute the weights, and merges the unmasked vectors.
 *
 * VaRM (FuseChat 1.0: Wan et al. 2024, https://arxiv.org/abs/2402.16107, sec. 3.3, eq. 6-7):
 * per parameter matrix, w_i = mean((x_i - pivot)^2) / sum_j mean((x_j - pivot)^2), and
 * out = sum_i w_i x_i over the full parameters; the pivot is the base.
 */
import type { MergeMethod } from './types.ts';
import { topMagnitudeMask } from '../tensor/select.ts';
import { taskVector } from '../tensor/kernels.ts';

export const sce: MergeMethod = {
  id: 'sce',
  title: 'SCE (Select, Calculate, Erase)',
  reference: 'https://arxiv.org/abs/2408.07990 (Wan et al., FuseChat 2.0, 2024)',
  requiresBase: 'required',
  minModels: 0,
  maxModels: Infinity,
  mergekitId: 'sce',
  random: false,
  params: [
    { name: 'select_topk', scope: 'global', type: 'number', range: [0, 1], search: [0.1, 1], default: 1, doc: 'fraction of positions (by variance across models) selected' },
    { name: 'int8_mask', scope: 'global', type: 'boolean', default: false, doc: 'mergekit memory option; no effect here' },
    { name: 'sce_variant', scope: 'global', type: 'enum', values: ['mergekit', 'fusechat'], default: 'mergekit', mergekit: false, doc: 'mergekit: the Select mask prunes the merged task vectors; fusechat: it only shapes the weights' },
  ],
  notes: ['variance ties at the top-k cut keep the lower flat index'],
  merge(input, g, _pm, _ctx, outArg) {
    const base = input.base!;
    const n = base.length;
    const out = outArg ?? new Float32Array(n);
    const m = input.models.length;
    if (m === 0) {
      out.set(base);
      return out;
    }
    const tv = input.models.map((x) => taskVector(x, base));
    const topk = g.select_topk as number;
    let mask: Uint8Array | null = null;
    if (topk < 1) {
      mask = new Uint8Array(n); // zero: density <= 0 masks everything
      if (topk > 0) {
        // population variance across models (torch.var(unbiased=False)), per position
        const v = new Float32Array(n);
        let nonzero = 0;
        for (let i = 0; i < n; i++) {
          let s = 0;
          for (let j = 0; j < m; j++) s += tv[j]![i]!;
          const mean = s / m;
          let q = 0;
          for (let j = 0; j < m; j++) {
            const e = tv[j]![i]! - mean;
            q += e * e;
          }
          v[i] = q / m;
          if (v[i] !== 0) nonzero++;
        }
        const k = Math.floor(nonzero * topk);
        if (k > 0) topMagnitudeMask(v, k, mask);
      }
    }
    const fusechat = g.sce_variant === 'fusechat';
    if (mask && !fusechat) for (const d of tv) for (let i = 0; i < n; i++) if (!mask[i]) d[i] = 0;
    // Calculate: mean of squares per model (on masked vectors in both variants)
    const w = tv.map((d) => {
      let s = 0;
      for (let i = 0; i < n; i++) if (!mask || mask[i]) s += d[i]! * d[i]!;
      return s / n;
    });
    const wsum = w.reduce((a, b) => a + b, 0);
    const wn = Math.abs(wsum) < 1e-6 ? w.map(() => 1 / m) : w.map((x) => x / wsum);
    // Erase (sign election on the unweighted vectors that are merged) and the weighted mean
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < m; j++) s += tv[j]![i]!;
      const positive = s >= 0;
      let num = 0;
      let den = 0;
      for (let j = 0; j < m; j++) {
        const d = tv[j]![i]!;
        if (positive ? d > 0 : d < 0) {
          num += d * wn[j]!;
          den += wn[j]!;
        }
      }
      out[i] = base[i]! + num / Math.max(den, 1e-6);
    }
    return out;
  },
};

export const varm: MergeMethod = {
  id: 'varm',
  title: 'VaRM (variation ratio merge)',
  reference: 'https://arxiv.org/abs/2402.16107 (Wan et al., FuseChat 1.0, 2024, sec. 3.3)',
  requiresBase: 'required',
  minModels: 1,
  maxModels: Infinity,
  mergekitId: null,
  random: false,
  params: [],
  notes: ['when every model equals the pivot the weights are uniform'],
  merge(input, _g, _pm, _ctx, outArg) {
    const base = input.base!;
    const n = base.length;
    const out = outArg ?? new Float32Array(n);
    const m = input.models.length;
    const w = input.models.map((x) => {
      let s = 0;
      for (let i = 0; i < n; i++) {
        const d = x[i]! - base[i]!;
        s += d * d;
      }
      return s / n;
    });
    const wsum = w.reduce((a, b) => a + b, 0);
    const wn = wsum === 0 ? w.map(() => 1 / m) : w.map((x) => x / wsum);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < m; j++) s += wn[j]! * input.models[j]![i]!;
      out[i] = s;
    }
    return out;
  },
};

export const fusechatMethods: readonly MergeMethod[] = [sce, varm];
