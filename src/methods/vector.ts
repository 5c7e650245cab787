/**
 * Helpers of the methods split out of one file (linear.ts, slerp.ts, karcher.ts, model-stock.ts,
 * nearswap.ts, arcee-fusion.ts, passthrough.ts): the output buffer of a merge (types.ts
 * `MergeMethod.merge` writes into `out` when the caller gives one), and norms and dot products
 * accumulated in float64 (mergekit accumulates in float32, so results agree to float32 tolerance).
 */

/** The caller's output buffer, or a new one of n elements. */
export function alloc(n: number, out?: Float32Array): Float32Array {
  return out ?? new Float32Array(n);
}

/** Euclidean norm, summed in float64. */
export function norm(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s);
}

/** Dot product, summed in float64. */
export function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}
