/**
 * Linear merge (model soup): Wortsman et al., "Model soups: averaging weights of multiple
 * fine-tuned models improves accuracy without increasing inference time", ICML 2022,
 * https://arxiv.org/abs/2203.05482; follows mergekit/merge_methods/linear.py.
 */
import { MethodInputError } from './errors.ts';
import type { MergeMethod } from './types.ts';
import { weightedSum } from '../tensor/kernels.ts';
import { halfWeightedSum, wasmHalfAvailable } from '../tensor/wasm-half.ts';
import { alloc } from './vector.ts';

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
  readsHalf: true,
  params: [
    { name: 'weight', scope: 'per-model', type: 'number', range: [-Infinity, Infinity], search: [0, 1], doc: 'weight of this model' },
    { name: 'normalize', scope: 'global', type: 'boolean', default: true, doc: 'divide by the sum of the weights' },
  ],
  notes: ['mergekit divides by a zero weight sum (NaN/Inf); evomerge refuses it with E_LINEAR_ZERO_WEIGHTS'],
  merge(input, g, pm, _ctx, outArg) {
    const half = input.half;
    const n = half ? half.models[0]!.length : input.models[0]!.length;
    const out = alloc(n, outArg);
    const w = pm.map((p) => p.weight as number);
    let wsum = 0;
    for (const x of w) wsum += x;
    let scale = 1;
    if (g.normalize) {
      if (wsum === 0) throw new MethodInputError('E_LINEAR_ZERO_WEIGHTS', `tensor ${input.name}: linear with normalize divides by the sum of weights, which is 0; change the weights or set normalize: false`);
      scale = 1 / wsum;
    }
    const coeffs = w.map((x) => x * scale);
    // half-precision sources: the same sum over their exactly decoded values, no float32 copies (wasm-half.ts)
    if (half && half.models.length > 0 && half.models.length < 18 && wasmHalfAvailable(half.dtype)) halfWeightedSum(half.dtype, half.models, coeffs, out);
    else weightedSum(input.models, coeffs, out);
    return out;
  },
};
