/**
 * Linear-time selection for merge kernels: quickselect over numbers, and rank selection by
 * magnitude over float32 data.
 *
 * Tie rule (used everywhere magnitudes are ranked, documented in `evomerge methods`): elements
 * are totally ordered by magnitude, and among equal magnitudes **the element with the lower
 * flat index ranks higher**. So "the k largest" keeps, among the elements tied at the cut, the
 * ones with the lowest indices; mergekit's `argsort`/`topk` leave that choice to the sort
 * implementation (unspecified), so any tie rule matches it, and ours is reproducible.
 *
 * `magnitudeCut` finds the cut without sorting and without copying: the bit pattern of |x| for
 * a float32 x (sign bit cleared) orders exactly as |x| does, so the k-th largest magnitude is
 * found by two counting passes over 16-bit prefixes of those patterns (a quickselect whose
 * pivots are bit prefixes: two linear passes, branch-light, no scratch of the input's size).
 * NaN bit patterns sort above +Infinity.
 */

import { BUCKET_CAP, wasmBucketScan, wasmDeltaAvailable } from './wasm-ties.ts';

/** Where the k largest magnitudes end: keep `x` iff bits(|x|) > `bits`, or == `bits` among the first `ties` such elements in index order. */
export interface MagnitudeCut {
  /** Bit pattern (uint32, sign cleared) of the k-th largest magnitude; 0x80000000 (above every magnitude) when k = 0. */
  bits: number;
  /** How many elements whose magnitude bits equal `bits` are kept (the lowest indices). */
  ties: number;
  /** How many elements have magnitude bits equal to `bits`. */
  equal: number;
  /**
   * Only with `collect`: the indices, ascending, of every element sharing the cut's top 16 bits
   * (so every tied element among them), or null when there were more than fit the scratch. A
   * view of module scratch, valid until the next call.
   */
  candidates?: Int32Array | null;
}

/** Room for the indices of one 16-bit bucket (a bucket holds a small fraction of a tensor). */
const CANDIDATE_CAP = BUCKET_CAP;
let candidateScratch: Int32Array | null = null;

export const HISTOGRAM_BUCKETS = 1 << 15;
const hiCounts = new Uint32Array(HISTOGRAM_BUCKETS);
const loCounts = new Uint32Array(1 << 16);

/**
 * The cut for the `k` largest |values| of `data` (0 <= k <= data.length), in two passes.
 * `data` is read through its bit patterns; nothing is written. `histogram` (1 << 15 counts of
 * the top 15 bits of |x|, as kernels.ts `deltaWithHistogram` fills) saves the first pass.
 */
export function magnitudeCut(data: Float32Array, k: number, histogram?: Uint32Array, collect = false): MagnitudeCut {
  const n = data.length;
  if (k <= 0) return { bits: 0x80000000, ties: 0, equal: 0 };
  if (k > n) throw new RangeError(`magnitudeCut: k=${k} exceeds ${n} elements`);
  const bits = new Int32Array(data.buffer, data.byteOffset, n); // Int32: V8 loads large Uint32 values as doubles
  if (histogram) hiCounts.set(histogram);
  else {
    hiCounts.fill(0);
    for (let i = 0; i < n; i++) hiCounts[(bits[i]! & 0x7fffffff) >>> 16]!++;
  }
  // walk buckets from the top until k elements are covered
  let remaining = k;
  let hi = (1 << 15) - 1;
  for (; hi >= 0; hi--) {
    const c = hiCounts[hi]!;
    if (c >= remaining) break;
    remaining -= c;
  }
  loCounts.fill(0);
  let found = 0;
  if (wasmDeltaAvailable()) {
    // the same pass in WebAssembly (wasm-ties.ts), four elements tested at once: same counts, same indices
    if (collect) candidateScratch ??= new Int32Array(CANDIDATE_CAP);
    found = wasmBucketScan(data, hi, loCounts, collect ? candidateScratch : null, CANDIDATE_CAP);
  } else if (collect) {
    // recording the bucket's indices here lets kernels.ts `dropExcessTies` visit only them
    // instead of making another pass over the tensor
    candidateScratch ??= new Int32Array(CANDIDATE_CAP);
    const cand = candidateScratch;
    for (let i = 0; i < n; i++) {
      const b = bits[i]! & 0x7fffffff;
      if (b >>> 16 === hi) {
        loCounts[b & 0xffff]!++;
        if (found < CANDIDATE_CAP) cand[found] = i;
        found++;
      }
    }
  } else {
    for (let i = 0; i < n; i++) {
      const b = bits[i]! & 0x7fffffff;
      if (b >>> 16 === hi) loCounts[b & 0xffff]!++;
    }
  }
  let lo = 0xffff;
  for (; lo >= 0; lo--) {
    const c = loCounts[lo]!;
    if (c >= remaining) break;
    remaining -= c;
  }
  const cut: MagnitudeCut = { bits: ((hi << 16) | lo) >>> 0, ties: remaining, equal: loCounts[lo]! };
  if (collect) cut.candidates = found <= CANDIDATE_CAP ? candidateScratch!.subarray(0, found) : null;
  return cut;
}

/**
 * A 0/1 keep flag per element for the k largest magnitudes (tie rule above), written into
 * `out` (Uint8Array of data.length).
 */
export function topMagnitudeMask(data: Float32Array, k: number, out: Uint8Array): Uint8Array {
  const cut = magnitudeCut(data, k);
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  let ties = cut.ties;
  const t = cut.bits;
  for (let i = 0; i < data.length; i++) {
    const b = bits[i]! & 0x7fffffff;
    let keep = 0;
    if (b > t) keep = 1;
    else if (b === t && ties > 0) {
      keep = 1;
      ties--;
    }
    out[i] = keep;
  }
  return out;
}

/**
 * Rearranges `a[lo..hi]` so that `a[k]` holds the value a full ascending sort would put there
 * (Hoare's FIND / quickselect with median-of-three pivots; expected linear time). Returns a[k].
 */
export function quickselect(a: Float32Array | Float64Array, k: number, lo = 0, hi = a.length - 1): number {
  if (k < lo || k > hi) throw new RangeError(`quickselect: k=${k} outside [${lo}, ${hi}]`);
  while (hi > lo) {
    const mid = (lo + hi) >>> 1;
    // median of three moved to a[mid]
    if (a[mid]! < a[lo]!) swap(a, mid, lo);
    if (a[hi]! < a[lo]!) swap(a, hi, lo);
    if (a[hi]! < a[mid]!) swap(a, hi, mid);
    const pivot = a[mid]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        swap(a, i, j);
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k]!;
  }
  return a[k]!;
}

function swap(a: Float32Array | Float64Array, i: number, j: number): void {
  const t = a[i]!;
  a[i] = a[j]!;
  a[j] = t;
}

/**
 * Ranks along each row of a [rows, cols] matrix by magnitude, ascending (1 = smallest), with the
 * tie rule above (a lower index ranks higher, so among equal magnitudes the higher index gets the
 * smaller rank). Used by DELLA, whose probabilities are rank-based (Deep et al. 2024, sec. 3).
 * One numeric typed-array sort per row on a packed key: magnitude bits * 2^22 + tiebreak.
 */
export function rowMagnitudeRanks(data: Float32Array, rows: number, cols: number, out: Float32Array): Float32Array {
  if (cols >= 1 << 22) throw new RangeError('rowMagnitudeRanks: rows longer than 2^22 elements are not supported');
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const keys = new Float64Array(cols);
  const span = 1 << 22;
  for (let r = 0; r < rows; r++) {
    const off = r * cols;
    for (let c = 0; c < cols; c++) keys[c] = (bits[off + c]! & 0x7fffffff) * span + (cols - 1 - c);
    keys.sort();
    for (let pos = 0; pos < cols; pos++) {
      const c = cols - 1 - (keys[pos]! % span);
      out[off + c] = pos + 1;
    }
  }
  return out;
}
