/**
 * Arcee Fusion: Arcee AI, 2025, https://arcee.ai; follows mergekit/merge_methods/arcee_fusion.py.
 */
import type { MergeMethod } from './types.ts';
import { quickselect } from '../tensor/select.ts';
import { FastRng } from '../tensor/fastrng.ts';
import { alloc } from './vector.ts';

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
