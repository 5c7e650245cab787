/**
 * The task-vector family as one engine configured per id, as mergekit's generalized task
 * arithmetic (mergekit/merge_methods/generalized_task_arithmetic.py, mergekit/sparsify.py):
 *
 *   delta_i = x_i - base                                  (task vectors, Ilharco et al. 2023)
 *   delta_i = sparsify(delta_i, density_i)                each on its own:
 *       magnitude          top-k by |delta| over the whole tensor (TIES, Yadav et al. 2023, sec. 3)
 *       random             Bernoulli(density) keep mask (DARE, Yu et al. 2024, eq. 2)
 *       magnitude_outliers drop the gamma*N largest and the smallest (Model Breadcrumbs, Davari & Belilovsky 2023)
 *       della_magprune     per-row rank-based keep probabilities (DELLA, Deep et al. 2024, sec. 3.1)
 *   w_i delta_i                                           weighted deltas
 *   consensus (sum): majority sign = sign of sum_i w_i delta_i (a zero sum elects +); an element
 *       agrees when its sign equals it, so pruned zeros never agree (TIES sec. 3, "elect")
 *   mixed = sum over agreeing of w_i delta_i; divisor = sum over agreeing of w_i (0 -> 1)
 *   without consensus: mixed = sum_i w_i delta_i, divisor = sum_i w_i (|.| < 1e-8 -> 1)
 *   normalize: mixed /= divisor; then mixed *= lambda; out = base + mixed
 *
 * Rescaling after pruning (`rescale`): mergekit (since 2025) matches the L1 norm of the pruned
 * delta to the unpruned one (`rescaled_masked_tensor`, skipped when either norm < 1e-7); the
 * papers divide kept entries by the keep probability (DARE eq. 2: 1/density; DELLA eq. 4: 1/p_i).
 * `rescale_mode` chooses: `l1` (default, mergekit) or `inverse` (the papers).
 */
import { MethodInputError } from './errors.ts';
import type { HalfInput, MergeContext, MergeMethod, ParamSpec, ResolvedParams, TensorInput } from './types.ts';
import { HISTOGRAM_BUCKETS, magnitudeCut, rowMagnitudeRanks } from '../tensor/select.ts';
import { bernoulliPruneInPlace, deltaBernoulliPrune, deltaWithHistogram, dropExcessTies, tiesMerge, weightedSum } from '../tensor/kernels.ts';
import { FastRng, bernoulliThreshold31 } from '../tensor/fastrng.ts';
import { wasmDeltaScratch } from '../tensor/wasm-ties.ts';
import { halfDareMasks, halfMaskedLinear, halfMaskedTies, halfWeightedSum, wasmHalfAvailable } from '../tensor/wasm-half.ts';
import { NotSupportedError } from '../errors.ts';

export type Sparsification = 'magnitude' | 'random' | 'magnitude_outliers' | 'della_magprune';

export interface GtaConfig {
  id: string;
  title: string;
  reference: string;
  sparsification: Sparsification | null;
  consensus: 'sum' | null;
  defaultNormalize: boolean;
  defaultRescale: boolean;
}

/** mergekit's epsilon for norm-matching rescale (sparsify.py `rescaled_masked_tensor`). */
const RESCALE_EPS = 1e-7;

function gtaParams(cfg: GtaConfig): ParamSpec[] {
  const p: ParamSpec[] = [
    { name: 'weight', scope: 'per-model', type: 'number', range: [-Infinity, Infinity], search: [0, 1], doc: 'weight of this model\'s task vector' },
    { name: 'density', scope: 'per-model', type: 'number', range: [0, 1], search: [0.1, 1], default: 1, doc: 'fraction of the task vector kept by sparsification (1 keeps all)' },
  ];
  if (cfg.sparsification === 'magnitude_outliers') {
    p.push({ name: 'gamma', scope: 'per-model', type: 'number', range: [0, 1], search: [0, 0.1], default: 0.01, doc: 'fraction of the largest-magnitude entries removed as outliers' });
  }
  if (cfg.sparsification === 'della_magprune') {
    p.push({ name: 'epsilon', scope: 'per-model', type: 'number', range: [0, 0.5], search: [0.01, 0.2], default: 0.15, doc: 'half-width of the rank-based keep probabilities: p in [density - epsilon, density + epsilon]' });
  }
  p.push(
    { name: 'normalize', scope: 'global', type: 'boolean', default: cfg.defaultNormalize, doc: 'divide the mixed delta by the sum of (agreeing) weights' },
    { name: 'rescale', scope: 'global', type: 'boolean', default: cfg.defaultRescale, doc: 'rescale pruned task vectors (see rescale_mode)' },
    { name: 'lambda', scope: 'global', type: 'number', range: [-Infinity, Infinity], search: [0.5, 1.5], default: 1, doc: 'scale of the merged task vector, applied after normalization' },
    { name: 'int8_mask', scope: 'global', type: 'boolean', default: false, doc: 'mergekit memory option; masks here are exact in any case, so it changes nothing' },
  );
  if (cfg.sparsification === 'random' || cfg.sparsification === 'della_magprune') {
    p.push({
      name: 'rescale_mode', scope: 'global', type: 'enum', values: ['l1', 'inverse'], default: 'l1', mergekit: false,
      doc: 'l1: match the L1 norm of the unpruned delta (mergekit); inverse: divide kept entries by their keep probability (DARE 1/density, DELLA 1/p)',
    });
  }
  return p;
}

/**
 * Tensors of at least this many elements get their deltas in place when the inputs are scratch
 * (TensorInput.scratchModels): 16M float32 elements (64 MB) each. Below it, resident deltas in the
 * WebAssembly memory are about 10% faster for TIES and cost little. Tests lower it.
 */
export const gtaTuning = { inPlaceMinElements: 16 * 2 ** 20 };

/** Scratch buffers reused across calls (one merge at a time per thread). */
let scratch: Float32Array[] = [];
function scratchArrays(count: number, n: number): Float32Array[] {
  if (scratch.length < count || scratch[0]!.length < n) {
    const cap = Math.max(n, scratch[0]?.length ?? 0);
    scratch = Array.from({ length: Math.max(count, scratch.length) }, () => new Float32Array(cap));
  }
  return scratch.slice(0, count).map((s) => (s.length === n ? s : s.subarray(0, n)));
}
let ranksScratch: Float32Array | null = null;

export function makeGtaMethod(cfg: GtaConfig): MergeMethod {
  const notes: string[] = [];
  if (cfg.sparsification === 'magnitude_outliers') {
    notes.push('as mergekit, when int(gamma * N) = 0 the kept slice indices[n_bot:-0] is empty and the whole task vector is pruned');
  }
  if (cfg.sparsification === 'magnitude') notes.push('as mergekit, a density whose int(density * N) is 0 is refused (mergekit asserts)');
  if (cfg.sparsification === 'della_magprune') notes.push('ranks are taken along dim 1 (rows of a matrix; a vector is one row), as mergekit; tensors of 3 or more dimensions are not supported yet');
  return {
    id: cfg.id,
    title: cfg.title,
    reference: cfg.reference,
    requiresBase: 'required',
    minModels: 0,
    maxModels: Infinity,
    mergekitId: cfg.id,
    random: cfg.sparsification === 'random' || cfg.sparsification === 'della_magprune',
    readsHalf: cfg.sparsification === 'random' || (cfg.sparsification === null && cfg.consensus === null),
    params: gtaParams(cfg),
    notes,
    merge: (input, global, perModel, ctx, out) => gtaMerge(cfg, input, global, perModel, ctx, out),
  };
}

function gtaMerge(cfg: GtaConfig, input: TensorInput, g: ResolvedParams, pm: readonly ResolvedParams[], ctx: MergeContext, outArg?: Float32Array): Float32Array {
  if (input.half && cfg.sparsification === 'random') {
    const merged = dareFromHalf(cfg, input, input.half, g, pm, ctx, outArg);
    if (merged) return merged;
  }
  const weights = pm.map((p) => p.weight as number);
  const lambda = g.lambda as number;
  const normalize = g.normalize as boolean;
  const half = input.half;
  if (cfg.sparsification === null && cfg.consensus === null && half?.base && half.models.length > 0 && half.models.length < 17 && wasmHalfAvailable(half.dtype)) {
    // task arithmetic over half-precision sources (wasm-half.ts): the sum below over their exactly
    // decoded values, with no float32 copy of `base` or `models`
    const out = outArg ?? new Float32Array(half.base.length);
    halfWeightedSum(half.dtype, [half.base, ...half.models], taskArithmeticCoeffs(weights, lambda, normalize), out);
    return out;
  }
  const base = input.base!;
  const n = base.length;
  const out = outArg ?? new Float32Array(n);
  const m = input.models.length;
  if (m === 0) {
    out.set(base);
    return out;
  }
  if (cfg.sparsification === null && cfg.consensus === null) {
    // task arithmetic: base + s * sum_j w_j (x_j - base) = (1 - s sum_j w_j) base + sum_j s w_j x_j,
    // one pass; in float64 the rearrangement is exact to far below float32 rounding
    weightedSum([base, ...input.models], taskArithmeticCoeffs(weights, lambda, normalize), out);
    return out;
  }
  // deltas inside the WebAssembly memory are read and written there without staging copies;
  // large ones go in place into the models' arrays when those are the caller's scratch, so a
  // worker holds the inputs of its largest tensor once, not also m deltas beside them (measured:
  // this kept `evomerge merge` of a 1.1B BF16 model with 3 fine-tunes under 2 GiB)
  const inPlace = input.scratchModels === true && n >= gtaTuning.inPlaceMinElements;
  const deltas = inPlace ? (input.models as Float32Array[]) : wasmDeltaScratch(m, n) ?? scratchArrays(m, n);
  const eff = new Float64Array(m);
  const cut = new Float64Array(m); // 0: keep every element
  for (let j = 0; j < m; j++) {
    const d = deltas[j]!;
    const x = input.models[j]!;
    const density = pm[j]!.density as number;
    let factor = 1;
    if (cfg.sparsification === 'magnitude' && cfg.consensus === 'sum' && density < 1) {
      // TIES: the top-k cut is found here and applied inside the fused election kernel
      deltaWithHistogram(x, base, d, histogram);
      const k = Math.floor(density * n); // python int() truncates toward zero
      if (k <= 0) throw densityTooLow(input, j, density, n);
      const c = magnitudeCut(d, k, histogram, true);
      if (g.rescale) factor = l1FactorOfCut(d, c.bits, c.ties);
      dropExcessTies(d, c.bits, c.ties, c.equal, c.candidates);
      cut[j] = c.bits;
    } else if (cfg.sparsification === 'random' && density < 1) {
      factor = dareInPlace(d, input, j, density, g, ctx, x, base); // the delta and its mask in one pass
    } else {
      deltaWithHistogram(x, base, d, null);
      if (cfg.sparsification) factor = sparsifyInPlace(cfg.sparsification, d, input, j, g, pm[j]!, ctx);
    }
    eff[j] = weights[j]! * factor;
  }
  if (cfg.consensus === 'sum') {
    tiesMerge(base, deltas, cut, eff, weights, normalize, lambda, out);
  } else {
    const scale = (normalize ? 1 / guardedSum(weights) : 1) * lambda;
    weightedSum([base, ...deltas], [1, ...Array.from(eff, (e) => e * scale)], out);
  }
  return out;
}

/**
 * DARE (TIES or linear) straight from the sources' half-precision bits (tensor/wasm-half.ts): the
 * same masks, rescale factors and election as the float32 path of `gtaMerge`, so the same bits,
 * with no float32 copy of any input. Null where those kernels do not apply (no WebAssembly SIMD,
 * more than 16 models to elect over, masks beyond the WebAssembly memory): the caller then takes
 * the float32 path.
 */
function dareFromHalf(cfg: GtaConfig, input: TensorInput, half: HalfInput, g: ResolvedParams, pm: readonly ResolvedParams[], ctx: MergeContext, outArg?: Float32Array): Float32Array | null {
  const m = half.models.length;
  if (m === 0 || !half.base || !wasmHalfAvailable(half.dtype) || (cfg.consensus === 'sum' && m > 16)) return null;
  const n = half.base.length;
  const weights = pm.map((p) => p.weight as number);
  const densities = pm.map((p) => p.density as number);
  const rngs = densities.map((_, j) => FastRng.forTensor(ctx.seed, input.name, input.modelIndex?.[j] ?? j, 'dare'));
  // density >= 1 keeps every element and is not rescaled: the float32 path's plain task vector
  const masks = halfDareMasks(half.dtype, half.base, half.models, rngs, densities.map((d) => (d < 1 ? bernoulliThreshold31(d) : 2 ** 31)));
  if (!masks) return null;
  const eff = Float64Array.from(weights, (w, j) => w * (densities[j]! < 1 ? dareFactor(densities[j]!, g, masks.before[j]!, masks.after[j]!) : 1));
  const out = outArg ?? new Float32Array(n);
  const lambda = g.lambda as number;
  const normalize = g.normalize as boolean;
  if (cfg.consensus === 'sum') {
    halfMaskedTies(half.dtype, half.base, half.models, masks.keep, eff, Float64Array.from(weights), normalize, lambda, out);
  } else {
    const scale = (normalize ? 1 / guardedSum(weights) : 1) * lambda;
    halfMaskedLinear(half.dtype, half.base, half.models, masks.keep, Float64Array.from(eff, (e) => e * scale), out);
  }
  return out;
}

/**
 * Task arithmetic's coefficients of [base, x_1, ..., x_m]: base + s * sum_j w_j (x_j - base) =
 * (1 - s sum_j w_j) base + sum_j s w_j x_j with s = lambda (over the guarded weight sum when
 * normalizing), one pass; in float64 the rearrangement is exact to far below float32 rounding.
 */
function taskArithmeticCoeffs(weights: readonly number[], lambda: number, normalize: boolean): number[] {
  const scale = (normalize ? 1 / guardedSum(weights) : 1) * lambda;
  const c = weights.map((w) => w * scale);
  return [1 - c.reduce((a, b) => a + b, 0), ...c];
}

/** Sum of weights with mergekit's guard for the non-consensus divisor: |sum| < 1e-8 becomes 1. */
function guardedSum(weights: readonly number[]): number {
  let s = 0;
  for (const w of weights) s += w;
  return Math.abs(s) < 1e-8 ? 1 : s;
}

function densityTooLow(input: TensorInput, j: number, density: number, n: number): MethodInputError {
  return new MethodInputError('E_DENSITY_TOO_LOW', `tensor ${input.name}: density ${density} keeps int(${density} * ${n}) = 0 entries of model ${input.modelIndex?.[j] ?? j}; mergekit refuses this too. Raise the density or exclude the tensor with a filter`);
}

const histogram = new Uint32Array(HISTOGRAM_BUCKETS);

/** L1 rescale factor for a magnitude cut (sparsify.py `rescaled_masked_tensor`, norm l1). */
function l1FactorOfCut(d: Float32Array, cutBits: number, ties: number): number {
  const bits = new Int32Array(d.buffer, d.byteOffset, d.length);
  let before = 0;
  let after = 0;
  for (let i = 0; i < d.length; i++) {
    const v = d[i]!;
    const a = v < 0 ? -v : v;
    before += a;
    const b = bits[i]! & 0x7fffffff;
    if (b > cutBits) after += a;
    else if (b === cutBits && ties > 0) {
      ties--;
      after += a;
    }
  }
  return l1Factor(before, after);
}

/**
 * Prune `d` in place; returns the factor the pruned delta must be multiplied by (the rescale),
 * so the caller folds it into the weight instead of another pass.
 */
function sparsifyInPlace(method: Sparsification, d: Float32Array, input: TensorInput, j: number, g: ResolvedParams, p: ResolvedParams, ctx: MergeContext): number {
  const density = p.density as number;
  if (density >= 1) return 1; // sparsify.py: every method returns the tensor untouched at density >= 1
  const n = d.length;
  const rescale = g.rescale as boolean;
  const inverse = g.rescale_mode === 'inverse';
  const modelIndex = input.modelIndex?.[j] ?? j;
  switch (method) {
    case 'magnitude': {
      const k = Math.floor(density * n); // python int() truncates toward zero
      if (k <= 0) throw densityTooLow(input, j, density, n);
      const { before, after } = applyTopRange(d, 0, k);
      return rescale ? l1Factor(before, after) : 1;
    }
    case 'magnitude_outliers': {
      const targetN = Math.floor(density * n);
      let nTop = Math.floor((p.gamma as number) * n);
      let nBot = n - targetN - nTop;
      if (nBot < 0) {
        nTop += nBot;
        nBot = 0;
      }
      // ascending sort positions [n_bot, n - n_top) kept; python's [n_bot:-0] is empty (quirk kept)
      const { before, after } = nTop === 0 ? applyTopRange(d, 0, 0) : applyTopRange(d, nTop, n - nBot);
      return rescale ? l1Factor(before, after) : 1;
    }
    case 'random':
      return dareInPlace(d, input, j, density, g, ctx);
    case 'della_magprune':
      return dellaInPlace(d, input, j, modelIndex, density, p.epsilon as number, rescale, inverse, ctx);
  }
}

/**
 * DARE (Yu et al. 2024, eq. 2): Bernoulli(density) keep mask, then the chosen rescale. With `x`
 * and `base`, `d` is first set to x - base in the same pass.
 */
function dareInPlace(d: Float32Array, input: TensorInput, j: number, density: number, g: ResolvedParams, ctx: MergeContext, x?: Float32Array, base?: Float32Array): number {
  const rng = FastRng.forTensor(ctx.seed, input.name, input.modelIndex?.[j] ?? j, 'dare');
  const threshold = bernoulliThreshold31(density);
  const { before, after } = x && base ? deltaBernoulliPrune(x, base, d, rng, threshold) : bernoulliPruneInPlace(d, rng, threshold);
  return dareFactor(density, g, before, after);
}

/** DARE's rescale of a pruned task vector with L1 norms `before` and `after` pruning (see rescale_mode). */
function dareFactor(density: number, g: ResolvedParams, before: number, after: number): number {
  if (!g.rescale) return 1;
  if (g.rescale_mode === 'inverse') return density > 0 ? 1 / density : 1;
  return l1Factor(before, after);
}

function l1Factor(before: number, after: number): number {
  if (before < RESCALE_EPS || after < RESCALE_EPS) return 1;
  return before / after;
}

/**
 * Keep the elements ranked [from, to) from the top by magnitude (tie rule of select.ts), zero the
 * rest; returns L1 norms before and after.
 */
function applyTopRange(d: Float32Array, from: number, to: number): { before: number; after: number } {
  const n = d.length;
  const bits = new Uint32Array(d.buffer, d.byteOffset, n);
  const hiCut = magnitudeCut(d, to); // inside the top `to`
  const loCut = magnitudeCut(d, from); // inside the top `from`: excluded
  let hiTies = hiCut.ties;
  let loTies = loCut.ties;
  const hb = hiCut.bits;
  const lb = loCut.bits;
  let before = 0;
  let after = 0;
  for (let i = 0; i < n; i++) {
    const b = bits[i]! & 0x7fffffff;
    const v = d[i]!;
    const a = v < 0 ? -v : v;
    before += a;
    let inHi = false;
    if (b > hb) inHi = true;
    else if (b === hb && hiTies > 0) {
      inHi = true;
      hiTies--;
    }
    let inLo = false;
    if (b > lb) inLo = true;
    else if (b === lb && loTies > 0) {
      inLo = true;
      loTies--;
    }
    if (inHi && !inLo) after += a;
    else d[i] = 0;
  }
  return { before, after };
}

/** DELLA MAGPRUNE (Deep et al. 2024, sec. 3.1; mergekit sparsify.py `della_magprune`). */
function dellaInPlace(d: Float32Array, input: TensorInput, j: number, modelIndex: number, density: number, epsilon: number, rescale: boolean, inverse: boolean, ctx: MergeContext): number {
  const n = d.length;
  if (density <= 0) {
    d.fill(0);
    return 1;
  }
  if (density + epsilon >= 1 || density - epsilon <= 0) {
    throw new MethodInputError('E_DELLA_EPSILON', `tensor ${input.name}, model ${modelIndex}: DELLA needs density - epsilon > 0 and density + epsilon < 1, got density ${density}, epsilon ${epsilon}; lower epsilon`);
  }
  const shape = input.shape;
  if (shape.length > 2) throw new NotSupportedError('E_DELLA_RANK', `tensor ${input.name} has ${shape.length} dimensions; DELLA ranking is supported for vectors and matrices only (not supported yet)`);
  const rows = shape.length === 2 ? shape[0]! : 1;
  const cols = shape.length === 2 ? shape[1]! : n;
  if (!ranksScratch || ranksScratch.length < n) ranksScratch = new Float32Array(n);
  const ranks = rowMagnitudeRanks(d, rows, cols, ranksScratch.subarray(0, n));
  const rng = FastRng.forTensor(ctx.seed, input.name, modelIndex, 'della');
  // rank_norm = (rank - 1) / (cols - 1); p = density - epsilon + 2 epsilon rank_norm  (DELLA eq. 3)
  // mergekit divides by (max - min) = 0 for a single column (NaN); we take rank_norm = 0 there.
  const denom = cols > 1 ? cols - 1 : 1;
  let before = 0;
  let after = 0;
  for (let i = 0; i < n; i++) {
    const v = d[i]!;
    const a = v < 0 ? -v : v;
    before += a;
    const prob = density - epsilon + ((ranks[i]! - 1) / denom) * 2 * epsilon;
    if (rng.nextFloat() < prob) {
      if (rescale && inverse) d[i] = v / prob;
      after += a;
    } else d[i] = 0;
  }
  void j;
  if (!rescale || inverse) return 1;
  return l1Factor(before, after);
}

const ARXIV = (id: string, cite: string): string => `https://arxiv.org/abs/${id} (${cite})`;

export const gtaMethods: readonly MergeMethod[] = [
  makeGtaMethod({ id: 'task_arithmetic', title: 'Task Arithmetic', reference: ARXIV('2212.04089', 'Ilharco et al., Editing Models with Task Arithmetic, ICLR 2023'), sparsification: null, consensus: null, defaultNormalize: false, defaultRescale: false }),
  makeGtaMethod({ id: 'ties', title: 'TIES', reference: ARXIV('2306.01708', 'Yadav et al., TIES-Merging, NeurIPS 2023'), sparsification: 'magnitude', consensus: 'sum', defaultNormalize: true, defaultRescale: false }),
  makeGtaMethod({ id: 'dare_ties', title: 'DARE TIES', reference: ARXIV('2311.03099', 'Yu et al., Language Models are Super Mario, ICML 2024'), sparsification: 'random', consensus: 'sum', defaultNormalize: false, defaultRescale: true }),
  makeGtaMethod({ id: 'dare_linear', title: 'Linear DARE', reference: ARXIV('2311.03099', 'Yu et al., Language Models are Super Mario, ICML 2024'), sparsification: 'random', consensus: null, defaultNormalize: false, defaultRescale: true }),
  makeGtaMethod({ id: 'breadcrumbs', title: 'Model Breadcrumbs', reference: ARXIV('2312.06795', 'Davari & Belilovsky, Model Breadcrumbs, ECCV 2024'), sparsification: 'magnitude_outliers', consensus: null, defaultNormalize: false, defaultRescale: false }),
  makeGtaMethod({ id: 'breadcrumbs_ties', title: 'Model Breadcrumbs with TIES', reference: ARXIV('2312.06795', 'Davari & Belilovsky, Model Breadcrumbs, ECCV 2024'), sparsification: 'magnitude_outliers', consensus: 'sum', defaultNormalize: false, defaultRescale: false }),
  makeGtaMethod({ id: 'della', title: 'DELLA', reference: ARXIV('2406.11617', 'Deep et al., DELLA-Merging, 2024'), sparsification: 'della_magprune', consensus: 'sum', defaultNormalize: true, defaultRescale: true }),
  makeGtaMethod({ id: 'della_linear', title: 'Linear DELLA', reference: ARXIV('2406.11617', 'Deep et al., DELLA-Merging, 2024'), sparsification: 'della_magprune', consensus: null, defaultNormalize: false, defaultRescale: true }),
];
