/**
 * Model Stock: Dong-Hwan Jang, Sangdoo Yun, Dongyoon Han, "Model Stock: All we need is just a few
 * fine-tuned models", ECCV 2024, https://arxiv.org/abs/2403.19522; follows
 * mergekit/merge_methods/model_stock.py.
 */
import type { MergeMethod } from './types.ts';
import { alloc } from './vector.ts';

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
