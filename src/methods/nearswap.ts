/**
 * NearSwap: alchemonaut, 2024, the merge of QuartetAnemoi-70B,
 * https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001; follows
 * mergekit/merge_methods/nearswap.py.
 */
import type { MergeMethod } from './types.ts';
import { alloc } from './vector.ts';

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
