/**
 * Passthrough (copy a tensor, optionally scaled; with slices, layer stacking): Charles Goddard
 * et al., "Arcee's MergeKit: A Toolkit for Merging Large Language Models", EMNLP 2024 (industry
 * track), https://arxiv.org/abs/2403.13257; follows mergekit/merge_methods/passthrough.py.
 */
import type { MergeMethod } from './types.ts';
import { alloc } from './vector.ts';

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
