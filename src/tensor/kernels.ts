/**
 * Elementwise merge kernels over Float32Array, specialised per number of inputs.
 *
 * Why generated code: a loop over an array of arrays (`xs[j][i]`) with an inner loop over j runs
 * 3x slower in V8 than the same arithmetic written out for a fixed count, because every access
 * goes through the outer array and the inner loop never unrolls. Each kernel is therefore built
 * once per input count with `new Function` from a fixed template (no user text reaches it) and
 * cached. Arithmetic is in float64, rounded to float32 once per output element.
 */

import type { FastRng } from './fastrng.ts';
import { wasmDeltaAvailable, wasmDeltaBernoulliPrune, wasmDeltaWithHistogram, wasmTiesAvailable, wasmTiesMerge } from './wasm-ties.ts';

type WeightedSumKernel = (xs: readonly Float32Array[], c: Float64Array, out: Float32Array, n: number) => void;
const weightedSumCache = new Map<number, WeightedSumKernel>();

/** out[i] = sum_j c[j] * xs[j][i], one pass. */
export function weightedSum(xs: readonly Float32Array[], coeffs: ArrayLike<number>, out: Float32Array): Float32Array {
  const k = xs.length;
  let kern = weightedSumCache.get(k);
  if (!kern) {
    const decl: string[] = [];
    const terms: string[] = [];
    for (let j = 0; j < k; j++) {
      decl.push(`const x${j} = xs[${j}], c${j} = c[${j}];`);
      terms.push(`c${j} * x${j}[i]`);
    }
    kern = new Function('xs', 'c', 'out', 'n', `${decl.join('\n')}\nfor (let i = 0; i < n; i++) out[i] = ${terms.join(' + ') || '0'};`) as WeightedSumKernel;
    weightedSumCache.set(k, kern);
  }
  kern(xs, Float64Array.from(coeffs), out, out.length);
  return out;
}

/**
 * d[i] = x[i] - base[i] (rounded to float32, as torch computes the task vector) while counting the
 * top 15 bits of |d[i]| into `hist` (the first pass of select.ts `magnitudeCut`).
 */
export function deltaWithHistogram(x: Float32Array, base: Float32Array, d: Float32Array, hist: Uint32Array | null): void {
  // the WebAssembly form (wasm-ties.ts) computes the same bits in about a third of the time
  if (wasmDeltaAvailable()) wasmDeltaWithHistogram(x, base, d, hist);
  else deltaWithHistogramJs(x, base, d, hist);
}

/** A fresh task vector x - base (float32), by `deltaWithHistogram`. */
export function taskVector(x: Float32Array, base: Float32Array): Float32Array {
  const d = new Float32Array(base.length);
  deltaWithHistogram(x, base, d, null);
  return d;
}

/** The JavaScript form of `deltaWithHistogram` (exported so tests compare it with the WebAssembly one). */
export function deltaWithHistogramJs(x: Float32Array, base: Float32Array, d: Float32Array, hist: Uint32Array | null): void {
  const n = d.length;
  for (let i = 0; i < n; i++) d[i] = x[i]! - base[i]!;
  // a separate pass: counting through an integer alias of the value just stored ran slower fused
  if (hist) magnitudeHistogram(d, hist);
}

type TiesKernel = (
  base: Float32Array, d: readonly Float32Array[], bits: readonly Int32Array[], cut: Float64Array,
  eff: Float64Array, w: Float64Array, normalize: boolean, lambda: number, scale: Float64Array, out: Float32Array, n: number,
) => void;
/** Keyed by model count. */
const tiesCache = new Map<number, TiesKernel>();

/**
 * TIES election and disjoint merge (Yadav et al. 2023, sec. 3; mergekit
 * generalized_task_arithmetic.py `get_mask(method="sum")`) over pruned deltas, fused with the
 * magnitude pruning itself: model j keeps element i iff the bits of |d_j[i]| >= cut[j] (0 keeps
 * all; ties at the cut must already be resolved, see `dropExcessTies`). Weighted values
 * v_j = eff[j] * kept d_j[i]; the sign of sum_j v_j is elected (0 elects +); agreeing entries
 * have v_j of that sign (pruned zeros never agree);
 * out = base + lambda * (sum of agreeing v_j) / (normalize ? sum of agreeing w_j, 0 -> 1 : 1).
 */
export function tiesMerge(
  base: Float32Array, d: readonly Float32Array[], cut: ArrayLike<number>,
  eff: ArrayLike<number>, w: ArrayLike<number>, normalize: boolean, lambda: number, out: Float32Array,
): Float32Array {
  // the WebAssembly SIMD kernel computes the same bits about 5x faster (wasm-ties.ts); this
  // JavaScript kernel stays for more than 16 models and engines without SIMD
  if (wasmTiesAvailable(d.length, normalize)) {
    const t = Float64Array.from(cut, (c) => Math.max(c, 1));
    wasmTiesMerge(base, d, t, Float64Array.from(eff), Float64Array.from(w), normalize, lambda, out);
    return out;
  }
  return tiesMergeJs(base, d, cut, eff, w, normalize, lambda, out);
}

/** The JavaScript form of `tiesMerge` (exported so tests compare it with the WebAssembly kernel). */
export function tiesMergeJs(
  base: Float32Array, d: readonly Float32Array[], cut: ArrayLike<number>,
  eff: ArrayLike<number>, w: ArrayLike<number>, normalize: boolean, lambda: number, out: Float32Array,
): Float32Array {
  const m = d.length;
  const lut = m <= 16;
  let kern = tiesCache.get(m);
  if (!kern) {
    const L: string[] = [];
    const all = (f: (j: number) => string, sep: string) => Array.from({ length: m }, (_, j) => f(j)).join(sep);
    for (let j = 0; j < m; j++) L.push(`const d${j} = d[${j}], b${j} = bits[${j}], t${j} = cut[${j}], e${j} = eff[${j}], f${j} = eff[${j}] < 0 ? 1 : 0, w${j} = w[${j}];`);
    L.push('const sc = new Float64Array(1), sh = new Int32Array(sc.buffer);');
    L.push('for (let i = 0; i < n; i++) {');
    // Integer arithmetic instead of branches, since random signs defeat branch prediction (a
    // mispredicted branch per element cost more than the rest of the loop):
    // k = 1 iff bits(|x|) >= t (t >= 1, so pruned and zero entries both give 0)
    for (let j = 0; j < m; j++) L.push(`  const u${j} = b${j}[i]; const k${j} = (t${j} - 1 - (u${j} & 0x7fffffff)) >>> 31; const v${j} = d${j}[i] * (e${j} * k${j});`);
    // the elected sign is the sign bit of the sum, read through a float64 scratch; the sum is -0
    // only when every v is a zero, and then nothing agrees whichever sign is elected
    L.push(`  sc[0] = ${all((j) => `v${j}`, ' + ')}; const gn = sh[1] >>> 31;`);
    // agree = kept, and the sign of v (sign bit of x, flipped by a negative weight) is the elected one
    for (let j = 0; j < m; j++) L.push(`  const a${j} = k${j} & (1 ^ (u${j} >>> 31) ^ f${j} ^ gn);`);
    L.push(`  const mixed = ${all((j) => `v${j} * a${j}`, ' + ')};`);
    if (lut) {
      // scale[agreement pattern] = lambda / (sum of agreeing weights, 0 -> 1): no division per element
      L.push(`  out[i] = base[i] + mixed * scale[${all((j) => `(a${j} << ${j})`, ' | ')}];`);
    } else {
      L.push(`  let div = ${all((j) => `w${j} * a${j}`, ' + ')}; if (div === 0 || !normalize) div = 1;`);
      L.push('  out[i] = base[i] + (mixed / div) * lambda;');
    }
    L.push('}');
    kern = new Function('base', 'd', 'bits', 'cut', 'eff', 'w', 'normalize', 'lambda', 'scale', 'out', 'n', L.join('\n')) as TiesKernel;
    tiesCache.set(m, kern);
  }
  let scale = new Float64Array(0);
  if (lut) {
    scale = new Float64Array(1 << m);
    for (let mask = 0; mask < scale.length; mask++) {
      let div = 0;
      for (let j = 0; j < m; j++) if (mask & (1 << j)) div += w[j]!;
      scale[mask] = normalize ? lambda / (div === 0 ? 1 : div) : lambda;
    }
  }
  // Int32 views: V8 loads Uint32 values >= 2^31 as doubles, which slows every bit operation
  const bits = d.map((x) => new Int32Array(x.buffer, x.byteOffset, x.length));
  const t = Float64Array.from(cut, (c) => Math.max(c, 1));
  kern(base, d, bits, t, Float64Array.from(eff), Float64Array.from(w), normalize, lambda, scale, out, out.length);
  return out;
}

/**
 * Resolve ties at a magnitude cut so that "bits >= cut" selects exactly the k largest: of the
 * elements whose |x| bits equal `cut`, the first `keep` (lowest indices, select.ts tie rule) stay
 * and the others are set to 0 in place. Skipped when every tied element is kept.
 */
export function dropExcessTies(d: Float32Array, cut: number, keep: number, equal: number, candidates?: Int32Array | null): void {
  if (keep >= equal) return;
  const bits = new Int32Array(d.buffer, d.byteOffset, d.length);
  if (candidates) {
    // the ascending indices of every element in the cut's 16-bit bucket (select.ts
    // `magnitudeCut` with collect): the same elements in the same order as the full scan below
    for (let c = 0; c < candidates.length; c++) {
      const i = candidates[c]!;
      if ((bits[i]! & 0x7fffffff) === cut) {
        if (keep > 0) keep--;
        else d[i] = 0;
      }
    }
    return;
  }
  for (let i = 0; i < d.length; i++) {
    if ((bits[i]! & 0x7fffffff) === cut) {
      if (keep > 0) keep--;
      else d[i] = 0;
    }
  }
}

/** Counts of the top 15 bits of |x| (the first pass of select.ts `magnitudeCut`). */
export function magnitudeHistogram(d: Float32Array, hist: Uint32Array): Uint32Array {
  hist.fill(0);
  const bits = new Int32Array(d.buffer, d.byteOffset, d.length); // Int32: V8 loads large Uint32 values as doubles
  for (let i = 0; i < bits.length; i++) hist[(bits[i]! & 0x7fffffff) >>> 16]!++;
  return hist;
}

/**
 * DARE's Bernoulli keep mask in place (Yu et al. 2024, eq. 2): element i survives iff the top 31
 * bits of the i-th draw of `rng` are below `threshold31` (fastrng.ts `bernoulliThreshold31`).
 * Returns the L1 norms before and after. The xoshiro128** step is written inline (a method call
 * per element costs 3x) and the keep decision is integer arithmetic (no branch to mispredict).
 */
export function bernoulliPruneInPlace(d: Float32Array, rng: FastRng, threshold31: number): { before: number; after: number } {
  let [s0, s1, s2, s3] = rng.getState();
  let before = 0;
  let after = 0;
  for (let i = 0; i < d.length; i++) {
    const m5 = Math.imul(s1, 5);
    const r31 = Math.imul((m5 << 7) | (m5 >>> 25), 9) >>> 1;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    const v = d[i]!;
    const a = Math.abs(v);
    before += a;
    const keep = (r31 - threshold31) >>> 31; // 1 iff r31 < threshold31; the difference fits in int32
    after += a * keep;
    d[i] = v * keep;
  }
  rng.setState([s0!, s1!, s2!, s3!]);
  return { before, after };
}

/**
 * `deltaWithHistogram(x, base, d, null)` followed by `bernoulliPruneInPlace(d, rng, threshold31)`,
 * in one WebAssembly pass where it runs (the same bits, sums and stream state; alone, the
 * WebAssembly mask was no faster than the JavaScript loop, fused it saves a pass over d).
 */
export function deltaBernoulliPrune(x: Float32Array, base: Float32Array, d: Float32Array, rng: FastRng, threshold31: number): { before: number; after: number } {
  if (!wasmDeltaAvailable()) {
    deltaWithHistogramJs(x, base, d, null);
    return bernoulliPruneInPlace(d, rng, threshold31);
  }
  const r = wasmDeltaBernoulliPrune(x, base, d, rng.getState(), threshold31);
  rng.setState(r.state);
  return { before: r.before, after: r.after };
}
