/**
 * WebAssembly kernels for TIES and DARE-TIES, assembled here from bytes (no toolchain) and
 * compiled at first use: the TIES election of kernels.ts `tiesMerge` (SIMD, one module per model
 * count), and one module for the task vector with its magnitude histogram (`deltaWithHistogram`),
 * the task vector fused with DARE's Bernoulli mask (`deltaBernoulliPrune`) and the second pass of
 * select.ts `magnitudeCut`. Where WebAssembly or SIMD is missing, callers keep the JavaScript loops.
 *
 * Why: the JavaScript election is bound by scalar instruction count (typed-array loads, int/float
 * conversions and bit tests per model per element), not by memory: it ran at about 14 ns per
 * element for 3 models. Here every step runs on two elements at once in float64x2 lanes.
 *
 * Bit-exactness with the JavaScript kernels is by construction: every floating-point operation is
 * the same IEEE operation on the same operands in the same order (float32 -> float64 promotion is
 * exact; f64x2 add/mul/div round as JavaScript's doubles; the final demotion to float32 rounds to
 * nearest even as Float32Array stores do), and the 0/1 factors multiply as in the JavaScript
 * kernel (so infinities and signed zeros propagate identically). test/tensor.kernels.test.ts
 * compares each kernel with its JavaScript form bit for bit.
 *
 * Inputs from ordinary arrays are staged through a fixed area in chunks (copies by
 * `TypedArray.set`, i.e. memcpy), so any tensor size works and the chunk stays in L2 while the
 * kernel reads it. Deltas allocated by `wasmDeltaScratch` live in the shared memory and are read
 * and written in place (gta.ts uses them below 2 GiB), which saved about 10% on ties.
 *
 * Tried and not kept: the DARE Bernoulli mask alone in WebAssembly (scalar xoshiro, no faster
 * than the JavaScript loop once staged; it is kept only fused with the task vector), staging
 * chunks of 2048 elements (15% slower than 16384).
 */

import {
  I32, V128, F64, F32, simd, memarg, i32c, lget, lset, ltee, I32_ADD, splat32, LOAD64_ZERO, LOAD32_SPLAT, LOAD64_SPLAT, V128_LOAD, V128_STORE, HIGH_TO_LOW, JOIN_LOW_HALVES, V_AND, V_ANDNOT, V_XOR, V_BITSELECT, I32X4_GT_S, F64X2_EQ, I64X2_EXTEND_LOW_S, I64X2_EXTEND_HIGH_S, I64X2_SHR_S, F64X2_ADD, F64X2_MUL, F64X2_DIV, F64X2_PROMOTE_LOW, F32X4_DEMOTE_ZERO, ONE_F64X2, ZERO_F64X2, moduleBytes,
} from './wasm-asm.ts';

/** Elements per chunk: 5 arrays of 64 KiB for 3 models stay in L2 (measured: 2048 was 15% slower, 16384 to 65536 alike). */
const CHUNK = 16384;
/** Per-model parameters: cut-1 (i32), sign flip (i32), eff (f64), weight (f64), delta address (i32): 32 bytes each. */
const PARAM_BYTES = 32;
const MAX_MODELS = 16;
/** lambda (f64) lives after the per-model parameters. */
const LAMBDA_AT = MAX_MODELS * PARAM_BYTES;
const DATA_AT = 1024;
/** Each staged array gets CHUNK + 4 floats so a pair read past an odd end stays inside. */
const STRIDE = (CHUNK + 4) * 4;

interface Compiled {
  run: (len: number) => void;
}

/**
 * The one memory every module imports: fixed areas (TIES staging and parameters, then the delta
 * module's), then resident deltas (`wasmDeltaScratch`). Views are rebuilt after it grows.
 */
let memory: WebAssembly.Memory | null = null;
export interface Heap { u8: Uint8Array; u16: Uint16Array; f32: Float32Array; i32: Int32Array; u32: Uint32Array; f64: Float64Array }
let heapViews: Heap | null = null;
/** The memory shared by the kernels of this file and of wasm-half.ts (which imports it too). */
export function sharedMemory(): WebAssembly.Memory {
  memory ??= new WebAssembly.Memory({ initial: FIXED_PAGES });
  return memory;
}
/** Views of the shared memory, current after any growth. */
export function heap(): Heap {
  const buf = sharedMemory().buffer;
  if (!heapViews || heapViews.f32.buffer !== buf) {
    heapViews = { u8: new Uint8Array(buf), u16: new Uint16Array(buf), f32: new Float32Array(buf), i32: new Int32Array(buf), u32: new Uint32Array(buf), f64: new Float64Array(buf) };
  }
  return heapViews;
}
/** Whether `a` lives in the shared memory (a resident delta): kernels then read it in place. */
function resident(a: Float32Array): boolean {
  return memory !== null && a.buffer === memory.buffer;
}

const cache = new Map<string, Compiled | null>();

/**
 * The kernel for m models, normalize on or off: `run(len)` merges `len` staged elements, four
 * per iteration (the integer tests on 4 x i32 lanes, the arithmetic on two halves of f64 x 2).
 * Locals: 0 len (param), 1 i (byte offset), then v128 locals allocated below.
 */
function buildModule(m: number, normalize: boolean): Uint8Array<ArrayBuffer> {
  const L_I = 1;
  let next = 2 + m; // 1 + j: i32 address of model j's delta at the chunk start
  const alloc = () => next++;
  const D32 = Array.from({ length: m }, alloc); // raw d, 4 floats
  const K32 = Array.from({ length: m }, alloc); // kept mask per 32-bit lane
  const X32 = Array.from({ length: m }, alloc); // bit 31 = sign(d) xor (eff < 0)
  const K = Array.from({ length: m }, alloc); // per half, 64-bit lanes
  const X = Array.from({ length: m }, alloc);
  const V = Array.from({ length: m }, alloc);
  const T = Array.from({ length: m }, alloc); // splat cut - 1
  const F = Array.from({ length: m }, alloc); // splat sign flip
  const E = Array.from({ length: m }, alloc); // splat eff
  const W = Array.from({ length: m }, alloc); // splat weight
  const [S, A, MIX, DIV, LO, ONE, ZERO, MASK, LAMBDA] = Array.from({ length: 9 }, alloc);
  const baseAt = DATA_AT;
  const outAt = DATA_AT + STRIDE;
  const b: number[] = [];
  // constants into locals once (the loop stores to memory, so loads there would not be hoisted)
  b.push(...ONE_F64X2, ...lset(ONE), ...ZERO_F64X2, ...lset(ZERO), ...splat32(0x7fffffff), ...lset(MASK));
  b.push(...i32c(0), ...LOAD64_SPLAT(LAMBDA_AT), ...lset(LAMBDA));
  for (let j = 0; j < m; j++) {
    const p = j * PARAM_BYTES;
    b.push(...i32c(0), ...LOAD32_SPLAT(p), ...lset(T[j]!), ...i32c(0), ...LOAD32_SPLAT(p + 4), ...lset(F[j]!));
    b.push(...i32c(0), ...LOAD64_SPLAT(p + 8), ...lset(E[j]!), ...i32c(0), ...LOAD64_SPLAT(p + 16), ...lset(W[j]!));
    b.push(...i32c(0), 0x28, ...memarg(2, p + 24), ...lset(2 + j));
  }
  // i = 0; loop while i < len * 4 (four elements, 16 bytes, per iteration)
  b.push(...i32c(0), ...lset(L_I));
  b.push(0x02, 0x40, 0x03, 0x40); // block, loop
  b.push(...lget(L_I), ...lget(0), ...i32c(2), 0x74 /* i32.shl */, 0x4f /* i32.ge_u */, 0x0d, 1 /* br_if block */);
  for (let j = 0; j < m; j++) {
    // K = (bits & 0x7fffffff) > cut - 1; X: bit 31 = sign(d) xor (eff < 0)
    b.push(...lget(L_I), ...lget(2 + j), ...I32_ADD, ...V128_LOAD(0), ...ltee(D32[j]!), ...lget(MASK), ...V_AND, ...lget(T[j]!), ...I32X4_GT_S, ...lset(K32[j]!));
    b.push(...lget(D32[j]!), ...lget(F[j]!), ...V_XOR, ...lset(X32[j]!));
  }
  for (const half of [0, 1]) {
    const extend = half === 0 ? I64X2_EXTEND_LOW_S : I64X2_EXTEND_HIGH_S;
    for (let j = 0; j < m; j++) {
      b.push(...lget(K32[j]!), ...extend, ...lset(K[j]!), ...lget(X32[j]!), ...extend, ...lset(X[j]!));
      // v = d * (eff * k), k as 1.0 or 0.0 (the JavaScript kernel multiplies by the integer k)
      b.push(...lget(D32[j]!));
      if (half === 1) b.push(...lget(D32[j]!), ...HIGH_TO_LOW);
      b.push(...F64X2_PROMOTE_LOW, ...lget(E[j]!), ...lget(K[j]!), ...lget(ONE), ...V_AND, ...F64X2_MUL, ...F64X2_MUL, ...lset(V[j]!));
    }
    // S = ((v0 + v1) + v2) ...; its sign bit (shr_s 63: all ones when set) is the elected minus
    b.push(...lget(V[0]!));
    for (let j = 1; j < m; j++) b.push(...lget(V[j]!), ...F64X2_ADD);
    b.push(...i32c(63), ...I64X2_SHR_S, ...lset(S));
    if (normalize) b.push(...lget(ZERO), ...lset(DIV));
    for (let j = 0; j < m; j++) {
      // agree = K and not (bit 63 of X xor S)
      b.push(...lget(K[j]!), ...lget(X[j]!), ...lget(S), ...V_XOR, ...i32c(63), ...I64X2_SHR_S, ...V_ANDNOT, ...ltee(A));
      // mixed += v * a, a as 1.0 or 0.0 (IEEE 754 add and mul do not depend on operand order,
      // signed zeros included, so the stack order [term, prev] gives the JavaScript prev + term)
      b.push(...lget(ONE), ...V_AND, ...lget(V[j]!), ...F64X2_MUL);
      if (j === 0) b.push(...lset(MIX));
      else b.push(...lget(MIX), ...F64X2_ADD, ...lset(MIX));
      // div += (agreeing ? w : +0), as the JavaScript table adds the agreeing weights from 0
      if (normalize) b.push(...lget(DIV), ...lget(A), ...lget(W[j]!), ...V_AND, ...F64X2_ADD, ...lset(DIV));
    }
    // scale = normalize ? lambda / (div == 0 ? 1 : div) : lambda; out = base + mixed * scale
    b.push(...lget(L_I), ...LOAD64_ZERO(baseAt + 8 * half), ...F64X2_PROMOTE_LOW, ...lget(MIX), ...lget(LAMBDA));
    if (normalize) b.push(...lget(ONE), ...lget(DIV), ...lget(DIV), ...lget(ZERO), ...F64X2_EQ, ...V_BITSELECT, ...F64X2_DIV);
    b.push(...F64X2_MUL, ...F64X2_ADD, ...F32X4_DEMOTE_ZERO);
    if (half === 0) b.push(...lset(LO));
    else b.push(...lset(A), ...lget(L_I), ...lget(LO), ...lget(A), ...JOIN_LOW_HALVES, ...V128_STORE(outAt));
  }
  b.push(...lget(L_I), ...i32c(16), ...I32_ADD, ...lset(L_I));
  b.push(0x0c, 0 /* br loop */, 0x0b, 0x0b /* end loop, end block */, 0x0b /* end func */);
  const vlocals = next - 2 - m;

  const pages = Math.ceil((DATA_AT + (2 + m) * STRIDE) / 65536);
  return moduleBytes(1, [[1 + m, I32], [vlocals, V128]], b, pages);
}


/** Why the last compilation failed (an engine without SIMD), for diagnosis; null when none did. */
export let wasmTiesFailure: string | null = null;

function compile(m: number, normalize: boolean): Compiled | null {
  const key = `${m}:${normalize}`;
  if (cache.has(key)) return cache.get(key)!;
  let c: Compiled | null = null;
  try {
    if (typeof WebAssembly === 'object') {
      const mod = new WebAssembly.Module(buildModule(m, normalize));
      const inst = new WebAssembly.Instance(mod, { e: { m: sharedMemory() } });
      c = { run: inst.exports.run as (len: number) => void };
    }
  } catch (e) {
    wasmTiesFailure = e instanceof Error ? e.message : String(e);
    c = null; // no SIMD in this engine: the caller keeps the JavaScript kernel
  }
  cache.set(key, c);
  return c;
}

/** Whether the WebAssembly kernel can run m models (false: use the JavaScript kernel). */
export function wasmTiesAvailable(m: number, normalize: boolean): boolean {
  return m >= 1 && m <= MAX_MODELS && compile(m, normalize) !== null;
}

/**
 * Same contract as kernels.ts `tiesMerge` with a precomputed per-model cut (t >= 1), eff and
 * weights; `normalize` and `lambda` as there. Call only when `wasmTiesAvailable`.
 */
export function wasmTiesMerge(
  base: Float32Array, d: readonly Float32Array[], t: Float64Array, eff: Float64Array, w: Float64Array,
  normalize: boolean, lambda: number, out: Float32Array,
): void {
  const k = heap();
  wasmTiesMergeStaged(d.length, t, eff, w, normalize, lambda, out, (o, len, baseF, deltaF) => {
    k.f32.set(base.subarray(o, o + len), baseF);
    for (let j = 0; j < d.length; j++) {
      // a resident delta is read in place; any other is staged
      const dj = d[j]!;
      if (resident(dj)) deltaF[j] = (dj.byteOffset >> 2) + o;
      else k.f32.set(dj.subarray(o, o + len), deltaF[j]!);
    }
  });
}

/** Element offset (in the f32 view of the shared memory) of the staged delta of model j. */
const stagedDeltaF = (j: number): number => (DATA_AT + (2 + j) * STRIDE) >> 2;

/**
 * The election of `wasmTiesMerge` over m deltas that `stage` writes chunk by chunk: for the
 * elements [o, o + len) it writes the base (float32) at element `baseF` of the heap's f32 view
 * and delta j at `deltaF[j]` (its staging area), or points `deltaF[j]` at a resident copy.
 * wasm-half.ts stages deltas computed from half-precision sources this way.
 */
export function wasmTiesMergeStaged(
  m: number, t: Float64Array, eff: Float64Array, w: Float64Array, normalize: boolean, lambda: number, out: Float32Array,
  stage: (o: number, len: number, baseF: number, deltaF: number[]) => void,
): void {
  const run = compile(m, normalize)!.run;
  const k = heap();
  for (let j = 0; j < m; j++) {
    const p = (j * PARAM_BYTES) >> 2;
    k.i32[p] = t[j]! - 1; // t <= 0x80000000, so t - 1 fits in int32
    k.i32[p + 1] = eff[j]! < 0 ? 0x80000000 | 0 : 0;
    k.f64[(j * PARAM_BYTES + 8) >> 3] = eff[j]!;
    k.f64[(j * PARAM_BYTES + 16) >> 3] = w[j]!;
  }
  k.f64[LAMBDA_AT >> 3] = lambda;
  const n = out.length;
  const baseF = DATA_AT >> 2;
  const outF = (DATA_AT + STRIDE) >> 2;
  const deltaF = Array.from({ length: m }, (_, j) => stagedDeltaF(j));
  for (let o = 0; o < n; o += CHUNK) {
    const len = Math.min(CHUNK, n - o);
    for (let j = 0; j < m; j++) deltaF[j] = stagedDeltaF(j);
    stage(o, len, baseF, deltaF);
    for (let j = 0; j < m; j++) k.i32[((j * PARAM_BYTES) >> 2) + 6] = deltaF[j]! << 2;
    run(len);
    out.set(k.f32.subarray(outF, outF + len), o);
  }
}

/** Elements per chunk of the staged kernels (wasm-half.ts stages its chunks alike). */
export const WASM_CHUNK = CHUNK;

// ---- task vector and magnitude histogram (the first pass of select.ts `magnitudeCut`) ----

const HIST_BYTES = 4 << 15;
/** The delta module's area starts after the TIES module's. */
const DH_HIST = Math.ceil((DATA_AT + (2 + MAX_MODELS) * STRIDE) / 65536) * 65536;
const DH_X = DH_HIST + HIST_BYTES;
const DH_B = DH_X + STRIDE;
const DH_D = DH_B + STRIDE;
/** Bernoulli parameters: xoshiro state (4 x i32), threshold (i32), then the L1 sums before and after (f64 at +24, +32). */
const DH_P = DH_D + STRIDE;
/** Low-16-bit counts of the cut bucket (select.ts `magnitudeCut`), then its recorded indices. */
const DH_LO = DH_P + 64;
const DH_CAND = DH_LO + (4 << 16);
/** The most bucket indices recorded (select.ts passes its own cap, at most this). */
export const BUCKET_CAP = 1 << 20;
/** The fixed area of the half-precision kernels (wasm-half.ts), after the delta module's. */
export const HALF_AREA_AT = Math.ceil((DH_CAND + 4 * BUCKET_CAP) / 65536) * 65536;
export const HALF_AREA_BYTES = 3 << 20;
/** Pages of the fixed areas; resident deltas (`wasmDeltaScratch`) follow them. */
const FIXED_PAGES = (HALF_AREA_AT + HALF_AREA_BYTES) / 65536;
const RESIDENT_AT = FIXED_PAGES * 65536;
/** Parameter word holding D's address for the delta module (DH_P + 56). */
const DP_WORD = (DH_P + 56) >> 2;
/** Resident deltas stay below 2 GiB of memory; beyond, callers use ordinary arrays (staged). */
const RESIDENT_LIMIT = 2 ** 31;

/**
 * `count` Float32Arrays of `n` elements inside the shared memory, so the kernels here read and
 * write them in place instead of staging copies; null when WebAssembly is missing or they would
 * not fit. The arrays stay valid until the next call (a growth detaches older views).
 */
export function wasmDeltaScratch(count: number, n: number): Float32Array[] | null {
  if (!wasmDeltaAvailable()) return null;
  const stride = Math.ceil((4 * n + 16) / 16) * 16; // 16 spare bytes: four-lane tails may touch them
  const at = wasmResident(count * stride);
  if (at === null) return null;
  const buf = sharedMemory().buffer;
  return Array.from({ length: count }, (_, j) => new Float32Array(buf, at + j * stride, n));
}

/**
 * The byte address of `bytes` of resident space after the fixed areas, the memory grown to hold
 * them; null past 2 GiB or when it cannot grow. The same space as `wasmDeltaScratch`'s: what either
 * returned is valid until the next call of either.
 */
export function wasmResident(bytes: number): number | null {
  const need = RESIDENT_AT + bytes;
  if (need > RESIDENT_LIMIT) return null;
  const mem = sharedMemory();
  if (mem.buffer.byteLength < need) {
    try {
      mem.grow(Math.ceil((need - mem.buffer.byteLength) / 65536));
    } catch {
      return null;
    }
  }
  return RESIDENT_AT;
}

/**
 * `run(len, hist)`: d = x - base on four float32 lanes (f32x4.sub rounds once, exactly as
 * JavaScript's float64 difference stored to a Float32Array: 53 >= 2 * 24 + 2 bits make the
 * double rounding innocuous), then, when hist != 0, counts the top 15 bits of |d| per element.
 */
function buildDeltaModule(): Uint8Array<ArrayBuffer> {
  const [LEN, MODE, I, A] = [0, 1, 2, 3];
  // DP: where D lives for this call (the staging area, or a resident delta: `wasmDeltaScratch`)
  const DP = 12;
  const DA = [...lget(I), ...lget(DP), ...I32_ADD];
  const b: number[] = [...i32c(0), 0x28, ...memarg(2, DH_P + 56), ...lset(DP)];
  // mode bits: 2 the delta, 1 its histogram, 4 the Bernoulli pruning of the staged D
  b.push(0x02, 0x40, ...lget(MODE), ...i32c(2), 0x71, 0x45 /* i32.eqz */, 0x0d, 0);
  b.push(...i32c(0), ...lset(I));
  b.push(0x02, 0x40, 0x03, 0x40);
  b.push(...lget(I), ...lget(LEN), ...i32c(2), 0x74, 0x4f, 0x0d, 1);
  b.push(...DA, ...lget(I), ...V128_LOAD(DH_X), ...lget(I), ...V128_LOAD(DH_B), ...simd(0xe5) /* f32x4.sub */, ...V128_STORE(0));
  b.push(...lget(I), ...i32c(16), ...I32_ADD, ...lset(I));
  b.push(0x0c, 0, 0x0b, 0x0b);
  // if hist: for each element, hist[(bits & 0x7fffffff) >>> 16]++
  b.push(0x02, 0x40, ...lget(MODE), ...i32c(1), 0x71, 0x45 /* i32.eqz */, 0x0d, 0);
  b.push(...i32c(0), ...lset(I));
  b.push(0x02, 0x40, 0x03, 0x40);
  b.push(...lget(I), ...lget(LEN), ...i32c(2), 0x74, 0x4f, 0x0d, 1);
  b.push(...DA, 0x28, ...memarg(2, 0), ...i32c(0x7fffffff), 0x71 /* and */, ...i32c(14), 0x76 /* shr_u */, ...i32c(-4), 0x71, ...ltee(A));
  b.push(...lget(A), 0x28, ...memarg(2, DH_HIST), ...i32c(1), ...I32_ADD, 0x36 /* i32.store */, ...memarg(2, DH_HIST));
  b.push(...lget(I), ...i32c(4), ...I32_ADD, ...lset(I));
  b.push(0x0c, 0, 0x0b, 0x0b);
  b.push(0x0b); // end of the histogram block
  b.push(0x0b); // end of the delta block
  // mode 4: DARE's Bernoulli keep mask over D, as kernels.ts `bernoulliPruneInPlace`: the same
  // xoshiro128** step, the same integer keep decision, the L1 sums accumulated in the same order
  b.push(0x02, 0x40, ...lget(MODE), ...i32c(4), 0x71, 0x45 /* i32.eqz */, 0x0d, 0);
  const [S0, S1, S2, S3, M5, T, THR, KEEP] = [4, 5, 6, 7, 8, 9, 10, 11];
  const [BEFORE, AFTER, AB] = [13, 14, 15];
  const V = 16;
  for (const [l, off] of [[S0, 0], [S1, 4], [S2, 8], [S3, 12], [THR, 16]] as const) b.push(...i32c(0), 0x28, ...memarg(2, DH_P + off), ...lset(l));
  b.push(...i32c(0), 0x2b /* f64.load */, ...memarg(3, DH_P + 24), ...lset(BEFORE), ...i32c(0), 0x2b, ...memarg(3, DH_P + 32), ...lset(AFTER));
  b.push(...i32c(0), ...lset(I));
  b.push(0x02, 0x40, 0x03, 0x40);
  b.push(...lget(I), ...lget(LEN), ...i32c(2), 0x74, 0x4f, 0x0d, 1);
  // m5 = s1 * 5; r31 = (rotl(m5, 7) * 9) >>> 1; keep = (r31 - thr) >>> 31
  b.push(...lget(S1), ...i32c(5), 0x6c /* mul */, ...lset(M5));
  b.push(...lget(M5), ...i32c(7), 0x77 /* rotl */, ...i32c(9), 0x6c, ...i32c(1), 0x76, ...lget(THR), 0x6b /* sub */, ...i32c(31), 0x76, ...lset(KEEP));
  // t = s1 << 9; s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = rotl(s3, 11)
  b.push(...lget(S1), ...i32c(9), 0x74, ...lset(T));
  b.push(...lget(S2), ...lget(S0), 0x73, ...lset(S2));
  b.push(...lget(S3), ...lget(S1), 0x73, ...lset(S3));
  b.push(...lget(S1), ...lget(S2), 0x73, ...lset(S1));
  b.push(...lget(S0), ...lget(S3), 0x73, ...lset(S0));
  b.push(...lget(S2), ...lget(T), 0x73, ...lset(S2));
  b.push(...lget(S3), ...i32c(11), 0x77, ...lset(S3));
  // a = |v| in float64; before += a; after += a * keep; d = v * keep
  b.push(...DA, 0x2a /* f32.load */, ...memarg(2, 0), ...ltee(V), 0x8b /* f32.abs */, 0xbb /* f64.promote_f32 */, ...ltee(AB));
  b.push(...lget(BEFORE), 0xa0 /* f64.add */, ...lset(BEFORE));
  b.push(...lget(AFTER), ...lget(AB), ...lget(KEEP), 0xb8 /* f64.convert_i32_u */, 0xa2 /* f64.mul */, 0xa0, ...lset(AFTER));
  b.push(...DA, ...lget(V), ...lget(KEEP), 0xb3 /* f32.convert_i32_u */, 0x94 /* f32.mul */, 0x38 /* f32.store */, ...memarg(2, 0));
  b.push(...lget(I), ...i32c(4), ...I32_ADD, ...lset(I));
  b.push(0x0c, 0, 0x0b, 0x0b);
  for (const [l, off] of [[S0, 0], [S1, 4], [S2, 8], [S3, 12]] as const) b.push(...i32c(0), ...lget(l), 0x36, ...memarg(2, DH_P + off));
  b.push(...i32c(0), ...lget(BEFORE), 0x39 /* f64.store */, ...memarg(3, DH_P + 24), ...i32c(0), ...lget(AFTER), 0x39, ...memarg(3, DH_P + 32));
  b.push(0x0b); // end of the mode 4 block
  // mode 8: the second pass of select.ts `magnitudeCut` over the staged D: for elements whose
  // top 16 bits of |d| equal hi, count the low 16 bits and record the global index (up to cap).
  // Four elements are tested at once; the rare group holding a match is handled element-wise.
  b.push(0x02, 0x40, ...lget(MODE), ...i32c(8), 0x71, 0x45, 0x0d, 0);
  const [HI, ORIGIN, FOUND, CAP, BITS, END] = [4, 5, 6, 7, 8, 9];
  const [HIV, MASKV] = [17, 18];
  for (const [l, off] of [[HI, 40], [ORIGIN, 44], [FOUND, 48], [CAP, 52]] as const) b.push(...i32c(0), 0x28, ...memarg(2, DH_P + off), ...lset(l));
  b.push(...lget(HI), ...simd(0x11), ...lset(HIV), ...splat32(0x7fffffff), ...lset(MASKV));
  b.push(...lget(LEN), ...i32c(2), 0x74, ...lset(END));
  b.push(...i32c(0), ...lset(I));
  b.push(0x02, 0x40, 0x03, 0x40);
  b.push(...lget(I), ...lget(END), 0x4f, 0x0d, 1);
  b.push(...DA, ...V128_LOAD(0), ...lget(MASKV), ...V_AND, ...i32c(16), ...simd(0xad) /* i32x4.shr_u */, ...lget(HIV), ...simd(0x37) /* i32x4.eq */, ...simd(0x53) /* v128.any_true */);
  b.push(0x04, 0x40); // if any lane matches
  for (let q = 0; q < 4; q++) {
    // element i/4 + q, when inside the chunk and in the bucket
    b.push(...lget(I), ...i32c(4 * q), ...I32_ADD, ...lget(END), 0x49 /* i32.lt_u */, 0x04, 0x40);
    b.push(...DA, 0x28, ...memarg(2, 4 * q), ...i32c(0x7fffffff), 0x71, ...ltee(BITS), ...i32c(16), 0x76, ...lget(HI), 0x46, 0x04, 0x40);
    b.push(...lget(BITS), ...i32c(0xffff), 0x71, ...i32c(2), 0x74, ...ltee(A), ...lget(A), 0x28, ...memarg(2, DH_LO), ...i32c(1), ...I32_ADD, 0x36, ...memarg(2, DH_LO));
    b.push(...lget(FOUND), ...lget(CAP), 0x49, 0x04, 0x40);
    b.push(...lget(FOUND), ...i32c(2), 0x74, ...lget(ORIGIN), ...lget(I), ...i32c(2), 0x76, ...I32_ADD, ...i32c(q), ...I32_ADD, 0x36, ...memarg(2, DH_CAND));
    b.push(0x0b);
    b.push(...lget(FOUND), ...i32c(1), ...I32_ADD, ...lset(FOUND));
    b.push(0x0b, 0x0b);
  }
  b.push(0x0b); // end if any
  b.push(...lget(I), ...i32c(16), ...I32_ADD, ...lset(I));
  b.push(0x0c, 0, 0x0b, 0x0b);
  b.push(...i32c(0), ...lget(FOUND), 0x36, ...memarg(2, DH_P + 48));
  b.push(0x0b, 0x0b);
  return moduleBytes(2, [[11, I32], [3, F64], [1, F32], [2, V128]], b, FIXED_PAGES);
}

interface DeltaCompiled {
  run: (len: number, hist: number) => void;
}
let deltaModule: DeltaCompiled | null | undefined;

function compileDelta(): DeltaCompiled | null {
  if (deltaModule !== undefined) return deltaModule;
  deltaModule = null;
  try {
    const inst = new WebAssembly.Instance(new WebAssembly.Module(buildDeltaModule()), { e: { m: sharedMemory() } });
    deltaModule = { run: inst.exports.run as (len: number, hist: number) => void };
  } catch (e) {
    wasmTiesFailure = e instanceof Error ? e.message : String(e);
  }
  return deltaModule;
}

/** Whether `wasmDeltaWithHistogram` can run (false: use the JavaScript loops). */
export function wasmDeltaAvailable(): boolean {
  return compileDelta() !== null;
}

/** Same contract as kernels.ts `deltaWithHistogram`; call only when `wasmDeltaAvailable`. */
export function wasmDeltaWithHistogram(x: Float32Array, base: Float32Array, d: Float32Array, hist: Uint32Array | null): void {
  const run = compileDelta()!.run;
  const k = heap();
  const n = d.length;
  const h = k.u32.subarray(DH_HIST >> 2, (DH_HIST + HIST_BYTES) >> 2);
  if (hist) h.fill(0);
  const xF = DH_X >> 2;
  const bF = DH_B >> 2;
  const dF = DH_D >> 2;
  const inPlace = resident(d);
  for (let o = 0; o < n; o += CHUNK) {
    const len = Math.min(CHUNK, n - o);
    k.f32.set(x.subarray(o, o + len), xF);
    k.f32.set(base.subarray(o, o + len), bF);
    k.i32[DP_WORD] = inPlace ? d.byteOffset + 4 * o : DH_D;
    run(len, hist ? 3 : 2);
    if (!inPlace) d.set(k.f32.subarray(dF, dF + len), o);
  }
  if (hist) hist.set(h);
}

/**
 * d = x - base (as `wasmDeltaWithHistogram`) then kernels.ts `bernoulliPruneInPlace` on it, per
 * chunk in one call: returns the L1 norms before and after and the advanced xoshiro state.
 * Call only when `wasmDeltaAvailable`.
 */
export function wasmDeltaBernoulliPrune(
  x: Float32Array, base: Float32Array, d: Float32Array, state: [number, number, number, number], threshold31: number,
): { before: number; after: number; state: [number, number, number, number] } {
  const run = compileDelta()!.run;
  const k = heap();
  const p = DH_P >> 2;
  for (let j = 0; j < 4; j++) k.i32[p + j] = state[j]!;
  k.i32[p + 4] = threshold31; // 2^31 wraps to -2^31 as the JavaScript subtraction's top bit expects
  k.f64[(DH_P + 24) >> 3] = 0;
  k.f64[(DH_P + 32) >> 3] = 0;
  const n = d.length;
  const dF = DH_D >> 2;
  for (let o = 0; o < n; o += CHUNK) {
    const len = Math.min(CHUNK, n - o);
    k.f32.set(x.subarray(o, o + len), DH_X >> 2);
    k.f32.set(base.subarray(o, o + len), DH_B >> 2);
    const inPlace = resident(d);
    k.i32[DP_WORD] = inPlace ? d.byteOffset + 4 * o : DH_D;
    run(len, 2 | 4);
    if (!inPlace) d.set(k.f32.subarray(dF, dF + len), o);
  }
  return { before: k.f64[(DH_P + 24) >> 3]!, after: k.f64[(DH_P + 32) >> 3]!, state: [k.i32[p]!, k.i32[p + 1]!, k.i32[p + 2]!, k.i32[p + 3]!] };
}

/**
 * The second pass of select.ts `magnitudeCut`: adds to `lo` (cleared first) the low 16 bits of
 * |x| of every element whose top 16 bits equal `hi`, and writes the indices of the first `cap`
 * of them (ascending) into `cand`; returns how many there were. Call only when `wasmDeltaAvailable`.
 */
export function wasmBucketScan(data: Float32Array, hi: number, lo: Uint32Array, cand: Int32Array | null, cap: number): number {
  const run = compileDelta()!.run;
  const k = heap();
  const p = DH_P >> 2;
  const capHere = cand ? Math.min(cap, BUCKET_CAP, cand.length) : 0;
  k.i32[p + 10] = hi;
  k.i32[p + 12] = 0;
  k.i32[p + 13] = capHere;
  const loView = k.u32.subarray(DH_LO >> 2, (DH_LO >> 2) + (1 << 16));
  loView.fill(0);
  const n = data.length;
  const dF = DH_D >> 2;
  for (let o = 0; o < n; o += CHUNK) {
    const len = Math.min(CHUNK, n - o);
    k.i32[p + 11] = o;
    if (resident(data)) k.i32[DP_WORD] = data.byteOffset + 4 * o;
    else {
      k.i32[DP_WORD] = DH_D;
      k.f32.set(data.subarray(o, o + len), dF);
    }
    run(len, 8);
  }
  lo.set(loView);
  const found = k.i32[p + 12]! >>> 0;
  if (cand) cand.set(k.i32.subarray(DH_CAND >> 2, (DH_CAND >> 2) + Math.min(found, capHere)));
  return found;
}
