/**
 * RAM, Reinforced Agent Merging, and RAM+ in its tensor-local form (arXiv 2601.13572,
 * https://arxiv.org/abs/2601.13572); follows mergekit/merge_methods/ram.py, float32 step by
 * step as mergekit computes it in float32:
 *
 *   tv_i   = x_i - base                         task vectors
 *   nz_i   = |tv_i| > epsilon                   an entry "contributes" where it moved
 *   c      = sum_i nz_i                         contributors per entry
 *   ram:    out = base + sum_i (nz_i tv_i [c = 1] + nz_i tv_i [c > 1] / c)
 *           (an entry one model moved keeps its move; a shared one takes the mean of the moves)
 *   ramplus_tl: per model, over the whole tensor,
 *           shared_i = #{nz_i and c > 1}, unique_i = #{nz_i and c = 1},
 *           rho_i = shared_i / max(unique_i, epsilon), lambda_i = 1 + r clamp(rho_i, 0, alpha);
 *           out = base + sum_i (lambda_i nz_i tv_i [c = 1] + nz_i tv_i [c > 1] / c)
 *
 * The sum over models runs in recipe order (mergekit's runs in the order of a Python set of model
 * references); an entry has either one unique term or only shared terms, so the order changes at
 * most the rounding of a shared entry's sum.
 */
import type { MergeMethod, ResolvedParams, TensorInput } from './types.ts';
import { alloc } from './vector.ts';

const f32 = Math.fround;

function ramMerge(input: TensorInput, g: ResolvedParams, plus: boolean, outArg?: Float32Array): Float32Array {
  const base = input.base!;
  const xs = input.models;
  const n = base.length;
  const out = alloc(n, outArg);
  if (xs.length === 0) {
    out.set(base);
    return out;
  }
  const eps = g.epsilon as number;
  // contributors per entry (mergekit's contrib_counts)
  const counts = new Uint16Array(n);
  for (const x of xs) for (let i = 0; i < n; i++) if (Math.abs(f32(x[i]! - base[i]!)) > eps) counts[i]++;
  // lambda_i (ramplus_tl): the per-model boost of the entries only it moved
  const lambdas = xs.map((x) => {
    if (!plus) return 1;
    let shared = 0;
    let unique = 0;
    for (let i = 0; i < n; i++) {
      if (!(Math.abs(f32(x[i]! - base[i]!)) > eps)) continue;
      if (counts[i]! > 1) shared++;
      else if (counts[i] === 1) unique++;
    }
    const rho = f32(shared / Math.max(unique, f32(eps)));
    const clamped = Math.min(Math.max(rho, 0), f32(g.alpha as number));
    return f32(1 + f32(f32(g.r as number) * clamped));
  });
  for (let i = 0; i < n; i++) {
    const c = counts[i]!;
    let sum = 0;
    if (c === 1) {
      for (let j = 0; j < xs.length; j++) {
        const tv = f32(xs[j]![i]! - base[i]!);
        if (Math.abs(tv) > eps) {
          sum = plus ? f32(tv * lambdas[j]!) : tv;
          break;
        }
      }
    } else if (c > 1) {
      for (const x of xs) {
        const tv = f32(x[i]! - base[i]!);
        if (Math.abs(tv) > eps) sum = f32(sum + f32(tv / c));
      }
    }
    out[i] = f32(base[i]! + sum);
  }
  return out;
}

const EPSILON = { name: 'epsilon', scope: 'global', type: 'number', range: [0, Infinity], search: [0, 0.001], default: 1e-5, doc: 'a task-vector entry with |x - base| above this counts as a contribution' } as const;

/** mergekit/merge_methods/ram.py `ram_merge`. */
export const ram: MergeMethod = {
  id: 'ram',
  title: 'Reinforced Agent Merging',
  reference: 'https://arxiv.org/abs/2601.13572 (RAM; mergekit ram.py)',
  requiresBase: 'required',
  minModels: 1,
  maxModels: Infinity,
  mergekitId: 'ram',
  random: false,
  params: [EPSILON],
  merge: (input, g, _pm, _ctx, out) => ramMerge(input, g, false, out),
};

/** mergekit/merge_methods/ram.py `ramplus_tl_merge`. */
export const ramplusTl: MergeMethod = {
  id: 'ramplus_tl',
  title: 'Reinforced Agent Merging Plus (Tensor-Local)',
  reference: 'https://arxiv.org/abs/2601.13572 (RAM+, tensor-local; mergekit ram.py)',
  requiresBase: 'required',
  minModels: 1,
  maxModels: Infinity,
  mergekitId: 'ramplus_tl',
  random: false,
  params: [
    { name: 'r', scope: 'global', type: 'number', range: [0, Infinity], search: [0, 1], default: 0.1, doc: 'boost of a model\'s unique entries per unit of its shared/unique ratio' },
    { name: 'alpha', scope: 'global', type: 'number', range: [0, Infinity], search: [0, 1], default: 0.2, doc: 'cap on the shared/unique ratio' },
    EPSILON,
  ],
  merge: (input, g, _pm, _ctx, out) => ramMerge(input, g, true, out),
};
