/**
 * Passthrough (copy a tensor, optionally scaled; with slices, layer stacking): Charles Goddard
 * et al., "Arcee's MergeKit: A Toolkit for Merging Large Language Models", EMNLP 2024 (industry
 * track), https://arxiv.org/abs/2403.13257; follows mergekit/merge_methods/passthrough.py.
 */
import type { MergeMethod } from './types.ts';
import { alloc } from './vector.ts';

/**
 * mergekit/merge_methods/passthrough.py: the one source tensor, times `scale` when given. mergekit
 * declares `scale` per model (a tensor parameter), so it may be set on the model or, through the
 * usual fallback, on the slice or the top level.
 */
export const passthrough: MergeMethod = {
  id: 'passthrough',
  title: 'Passthrough',
  reference: 'https://github.com/arcee-ai/mergekit (mergekit passthrough.py; layer stacking with slices)',
  requiresBase: 'none',
  minModels: 1,
  maxModels: 1,
  mergekitId: 'passthrough',
  random: false,
  params: [{ name: 'scale', scope: 'per-model', type: 'number', range: [-Infinity, Infinity], default: null, doc: 'optional factor applied to the tensor' }],
  merge(input, _g, pm, _ctx, outArg) {
    const x = input.models[0]!;
    const out = alloc(x.length, outArg);
    const s = pm[0]?.scale as number | null | undefined;
    if (s === null || s === undefined) out.set(x);
    else for (let i = 0; i < x.length; i++) out[i] = x[i]! * s;
    return out;
  },
};
