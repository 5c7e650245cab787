/**
 * WebAssembly kernels over half-precision data (BF16, F16), assembled from bytes at first use
 * (wasm-asm.ts) and run in the memory of wasm-ties.ts, whose election they feed:
 *
 * - conversion of BF16 and F16 to float32 (exact, as dtype.ts) and of float32 to BF16 (round to
 *   nearest even, NaN kept quiet, as dtype.ts `f32ToBf16Bits`), four or eight elements at a time;
 * - DARE's Bernoulli keep masks (Yu et al. 2024, eq. 2) and L1 sums read straight from the
 *   sources' half-precision bits (`halfDareMasks`), and the masked task vectors rebuilt from them
 *   chunk by chunk for the TIES election of wasm-ties.ts or a weighted sum (`halfMaskedTies`,
 *   `halfMaskedLinear`): no float32 copy of any input tensor is made.
 *
 * Why: decoding every input to a float32 array first (a pass that writes 4 bytes per element and
 * per input, read again by the next kernel) and drawing DARE's masks one model at a time with a
 * scalar generator were most of a DARE-TIES merge's time (README, CPU profile).
 *
 * The masks: each model's xoshiro128** stream (fastrng.ts) runs in one 32-bit lane, four models
 * at once, so a group of up to four models costs one SIMD step per element; the keep decision is
 * kernels.ts `bernoulliPruneInPlace`'s integer test. The L1 sums stay per model, in float64, in
 * element order (one float64 lane per model), so they round exactly as the sequential sums of the
 * float32 path. A mask is kept as bits: byte i of a group holds bit j for model j of the group.
 *
 * Bit-exactness with the float32 path is by construction, as in wasm-ties.ts: a half converts to
 * float32 exactly (F16 through an exact multiplication by 2^112 of its shifted bits, subnormals
 * included), the task vector is one f32 subtraction (f32x4.sub, as the delta module), the mask
 * multiplies it by 1.0 or 0.0 in float32 (so -0, NaN from an infinity, and the kept bits are those
 * of `v * keep`), and the sums add the same float64 values in the same order.
 * test/tensor.half.test.ts compares every kernel with the float32 path bit for bit.
 */
import {
  F64X2_ADD, F64X2_PROMOTE_LOW, HIGH_TO_LOW, I32, I32_ADD, LOAD32_SPLAT, LOAD64_ZERO, V128, V128_LOAD, V128_STORE,
  V_AND, V_BITSELECT, V_XOR, i32c, lget, lset, memarg, moduleBytes, simd,
} from './wasm-asm.ts';
import { HALF_AREA_AT, HALF_AREA_BYTES, WASM_CHUNK, heap, sharedMemory, wasmResident, wasmTiesAvailable, wasmTiesMergeStaged } from './wasm-ties.ts';

export type HalfDType = 'BF16' | 'F16';

const CHUNK = WASM_CHUNK;
/** Parameters: S0..S3, THR, sums (v128 each), then addresses. */
const HP = HALF_AREA_AT;
const P_S = 0; // four v128: word k of the four lanes' xoshiro states at 16 k
const P_THR = 64;
const P_BLO = 80;
const P_BHI = 96;
const P_ALO = 112;
const P_AHI = 128;
const P_CJ = 144; // v128: the mask bit of one model in each of four keep bytes
const P_IN = 160;
const P_OUT = 164;
const P_KEEP = 168;
const P_BASE = 172;
const P_X = 176;
/**
 * Sources are read in blocks of this many elements (128 KiB of halves: measured, positioned reads
 * of 32 KiB from the page cache ran at a third of the speed of 128 KiB ones).
 */
const BLOCK = 65536;
/** A staged block, with room for reads past its end by the four-wide loops. */
const HSTRIDE = BLOCK * 2 + 64;
const HB = HP + 512;
/** The staged blocks of up to 16 models (the election's limit). */
const HX = (j: number): number => HB + (1 + j) * HSTRIDE;
const CIN = HX(16);
const COUT = CIN + CHUNK * 4 + 64;
const CLIN = COUT + CHUNK * 4 + 64;
if (CLIN + CHUNK * 4 + 64 > HALF_AREA_AT + HALF_AREA_BYTES) throw new Error('wasm-half: the fixed area is too small');

/** Models per mask group (one 32-bit lane each). */
export const MASK_GROUP = 4;

// opcodes used here only (SIMD proposal, WebAssembly 2.0)
const LOAD16_SPLAT = (offset: number): number[] => [...simd(0x08), ...memarg(1, offset)];
const LOAD16_LANE = (offset: number, lane: number): number[] => [...simd(0x55), ...memarg(1, offset), lane];
const V_OR = simd(0x50);
const I32X4_EQ = simd(0x37);
const I32X4_GT_S = simd(0x3b);
const I32X4_BITMASK = simd(0xa4);
const I32X4_EXTEND_LOW_U16 = simd(0xa9);
const I32X4_SHL = simd(0xab);
const I32X4_SHR_S = simd(0xac);
const I32X4_SHR_U = simd(0xad);
const I32X4_ADD = simd(0xae);
const I32X4_SUB = simd(0xb1);
const I32X4_MUL = simd(0xb5);
const I16X8_NARROW_U = simd(0x86);
const F32X4_ABS = simd(0xe0);
const F32X4_SUB = simd(0xe5);
const F32X4_MUL = simd(0xe6);
const SPLAT32 = simd(0x11);
const I32_LOAD = (offset: number): number[] => [0x28, ...memarg(2, offset)];
const I32_STORE8 = (offset: number): number[] => [0x3a, ...memarg(0, offset)];

/** Bits of 2^112 as a float32: the F16 exponent rebias (15 -> 127) as one exact multiplication. */
const MAGIC_2_112 = (127 + 112) << 23;

/**
 * Module for one dtype. `run(len, mode)`:
 *  1: decode `len` halves at [P_IN] to float32 at [P_OUT] (four per step; up to 3 past the end);
 *  2: encode `len` float32 at [P_IN] to BF16 at [P_OUT] (eight per step; BF16 module only);
 *  4: DARE masks of the staged group (base at HB, model j at HX(j)): keep bytes at [P_KEEP],
 *     states, thresholds and sums in the parameters (one element per step, four unrolled);
 *  8: masked task vector: float32 at [P_OUT] = (half at [P_X] - float32 base at [P_BASE]) * keep
 *     bit, the keep bytes at [P_KEEP] tested against the lane bits P_CJ (four per step).
 */
function buildHalfModule(dtype: HalfDType, lanes: number): Uint8Array<ArrayBuffer> {
  const [LEN, MODE] = [0, 1];
  let next = 2;
  const i32 = () => next++;
  const [I, K, LIM, INA, OUTA, KA, BA, XA, IF, IK] = Array.from({ length: 10 }, i32);
  const nI32 = next - 2;
  const v = () => next++;
  const [S0, S1, S2, S3, THR, BLO, BHI, ALO, AHI] = Array.from({ length: 9 }, v);
  const [X, B, A, M5, KEEP, T, AK, H, EM, SG, CJ] = Array.from({ length: 11 }, v);
  const [ZERO, ONEI, FIVE, NINE, ONE32, MAG, C7FFF, C8000, C0F7F, C0F80, CQUIET, C7000, CFFFF, C7FFF_FFFF, C7F80, C40] = Array.from({ length: 16 }, v);
  const nV128 = next - 2 - nI32;
  const b: number[] = [];
  const konst = (local: number, value: number) => b.push(...i32c(value), ...SPLAT32, ...lset(local));
  konst(ZERO, 0);
  konst(ONEI, 1);
  konst(FIVE, 5);
  konst(NINE, 9);
  konst(ONE32, 0x3f800000);
  konst(MAG, MAGIC_2_112);
  konst(C7FFF, 0x7fff);
  konst(C8000, 0x8000);
  konst(C0F7F, 0x0f7fffff);
  konst(C0F80, 0x0f800000);
  konst(CQUIET, 0x00400000);
  konst(C7000, 0x70000000);
  konst(CFFFF, 0xffff);
  konst(C7FFF_FFFF, 0x7fffffff);
  konst(C7F80, 0x7f800000);
  konst(C40, 0x40);
  for (const [l, off] of [[INA, P_IN], [OUTA, P_OUT], [KA, P_KEEP], [BA, P_BASE], [XA, P_X]] as const) b.push(...i32c(0), ...I32_LOAD(HP + off), ...lset(l));

  /** Half bits zero-extended in the lanes of H -> float32 bits on the stack (dtype.ts tables, exactly). */
  const toF32 = (h: number): number[] => {
    if (dtype === 'BF16') return [...lget(h), ...i32c(16), ...I32X4_SHL];
    // sign; EM = (h & 0x7fff) << 13 (the half's exponent and mantissa in float32 position);
    // finite: EM as a float32 times 2^112 (exact, subnormals included); inf/NaN: EM | 0x70000000,
    // a NaN made quiet (dtype.ts reads its table through a float load, which sets the quiet bit)
    return [
      ...lget(h), ...lget(C8000), ...V_AND, ...i32c(16), ...I32X4_SHL, ...lset(SG),
      ...lget(h), ...lget(C7FFF), ...V_AND, ...i32c(13), ...I32X4_SHL, ...lset(EM),
      ...lget(EM), ...lget(C7000), ...V_OR, ...lget(EM), ...lget(C0F80), ...I32X4_GT_S, ...lget(CQUIET), ...V_AND, ...V_OR,
      ...lget(EM), ...lget(MAG), ...F32X4_MUL,
      ...lget(EM), ...lget(C0F7F), ...I32X4_GT_S, ...V_BITSELECT, ...lget(SG), ...V_OR,
    ];
  };
  const ifMode = (mode: number, body: number[]) => b.push(...lget(MODE), ...i32c(mode), 0x71, 0x04, 0x40, ...body, 0x0b);
  /** while (cond) { body } with cond pushed by `cond` (i32), as block/loop/br_if. */
  const whileLoop = (cond: number[], body: number[]): number[] => [0x02, 0x40, 0x03, 0x40, ...cond, 0x45 /* eqz */, 0x0d, 1, ...body, 0x0c, 0, 0x0b, 0x0b];
  const inc = (l: number, by: number): number[] => [...lget(l), ...i32c(by), ...I32_ADD, ...lset(l)];

  // mode 1: decode, four elements per step
  ifMode(1, [
    ...i32c(0), ...lset(I), ...i32c(0), ...lset(K),
    ...whileLoop([...lget(K), ...lget(LEN), ...i32c(2), 0x74, 0x49 /* lt_u */], [
      ...lget(INA), ...lget(I), ...I32_ADD, ...LOAD64_ZERO(0), ...I32X4_EXTEND_LOW_U16, ...lset(H),
      ...lget(OUTA), ...lget(K), ...I32_ADD, ...toF32(H), ...V128_STORE(0),
      ...inc(I, 8), ...inc(K, 16),
    ]),
  ]);

  // mode 2: BF16 encode, eight elements per step: round to nearest even on the 16 dropped bits;
  // NaN: the top half with the quiet bit set (dtype.ts `f32BitsToBf16Bits`)
  if (dtype === 'BF16') {
    const round = (x: number): number[] => [
      ...lget(x), ...i32c(16), ...I32X4_SHR_U, ...lget(C40), ...V_OR, // NaN: keep sign and top bits, force quiet
      ...lget(x), ...lget(C7FFF), ...I32X4_ADD, ...lget(x), ...i32c(16), ...I32X4_SHR_U, ...lget(ONEI), ...V_AND, ...I32X4_ADD, ...i32c(16), ...I32X4_SHR_U,
      ...lget(x), ...lget(C7FFF_FFFF), ...V_AND, ...lget(C7F80), ...I32X4_GT_S, ...V_BITSELECT,
    ];
    ifMode(2, [
      ...i32c(0), ...lset(I), ...i32c(0), ...lset(K),
      ...whileLoop([...lget(I), ...lget(LEN), ...i32c(1), 0x74, 0x49], [
        ...lget(INA), ...lget(K), ...I32_ADD, ...V128_LOAD(0), ...lset(X),
        ...lget(INA), ...lget(K), ...I32_ADD, ...V128_LOAD(16), ...lset(B),
        ...lget(OUTA), ...lget(I), ...I32_ADD, ...round(X), ...round(B), ...I16X8_NARROW_U, ...V128_STORE(0),
        ...inc(I, 16), ...inc(K, 32),
      ]),
    ]);
  }

  // mode 4: DARE masks of a staged group, one element per step (unrolled four times)
  {
    const body = (u: number): number[] => {
      const o: number[] = [];
      // X: lane j = model j's element (BF16: the high half of the lane; F16: the low half, converted)
      o.push(...lget(ZERO), ...lset(X));
      for (let j = 0; j < lanes; j++) o.push(...lget(I), ...lget(X), ...LOAD16_LANE(HX(j) + 2 * u, dtype === 'BF16' ? 2 * j + 1 : 2 * j), ...lset(X));
      if (dtype === 'F16') o.push(...toF32(X), ...lset(X));
      o.push(...lget(I), ...LOAD16_SPLAT(HB + 2 * u));
      if (dtype === 'BF16') o.push(...i32c(16), ...I32X4_SHL);
      else o.push(...lget(CFFFF), ...V_AND, ...lset(H), ...toF32(H));
      o.push(...lset(B));
      // A = |x - base| (float32)
      o.push(...lget(X), ...lget(B), ...F32X4_SUB, ...F32X4_ABS, ...lset(A));
      // xoshiro128** in each lane: r31 = (rotl(s1 * 5, 7) * 9) >>> 1; keep = (r31 - thr) >> 31 (all ones when kept)
      o.push(...lget(S1), ...lget(FIVE), ...I32X4_MUL, ...lset(M5));
      o.push(...lget(M5), ...i32c(7), ...I32X4_SHL, ...lget(M5), ...i32c(25), ...I32X4_SHR_U, ...V_OR, ...lget(NINE), ...I32X4_MUL, ...i32c(1), ...I32X4_SHR_U);
      o.push(...lget(THR), ...I32X4_SUB, ...i32c(31), ...I32X4_SHR_S, ...lset(KEEP));
      // t = s1 << 9; s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = rotl(s3, 11)
      o.push(...lget(S1), ...i32c(9), ...I32X4_SHL, ...lset(T));
      o.push(...lget(S2), ...lget(S0), ...V_XOR, ...lset(S2));
      o.push(...lget(S3), ...lget(S1), ...V_XOR, ...lset(S3));
      o.push(...lget(S1), ...lget(S2), ...V_XOR, ...lset(S1));
      o.push(...lget(S0), ...lget(S3), ...V_XOR, ...lset(S0));
      o.push(...lget(S2), ...lget(T), ...V_XOR, ...lset(S2));
      o.push(...lget(S3), ...i32c(11), ...I32X4_SHL, ...lget(S3), ...i32c(21), ...I32X4_SHR_U, ...V_OR, ...lset(S3));
      // before += a; after += a * keep (1.0 or 0.0), each model's sums in its float64 lane
      o.push(...lget(BLO), ...lget(A), ...F64X2_PROMOTE_LOW, ...F64X2_ADD, ...lset(BLO));
      o.push(...lget(BHI), ...lget(A), ...lget(A), ...HIGH_TO_LOW, ...F64X2_PROMOTE_LOW, ...F64X2_ADD, ...lset(BHI));
      o.push(...lget(A), ...lget(KEEP), ...lget(ONE32), ...V_AND, ...F32X4_MUL, ...lset(AK));
      o.push(...lget(ALO), ...lget(AK), ...F64X2_PROMOTE_LOW, ...F64X2_ADD, ...lset(ALO));
      o.push(...lget(AHI), ...lget(AK), ...lget(AK), ...HIGH_TO_LOW, ...F64X2_PROMOTE_LOW, ...F64X2_ADD, ...lset(AHI));
      // the keep byte: bit j for lane j
      o.push(...lget(K), ...lget(KEEP), ...I32X4_BITMASK, ...I32_STORE8(u));
      return o;
    };
    const state: Array<[number, number]> = [[S0, P_S], [S1, P_S + 16], [S2, P_S + 32], [S3, P_S + 48], [THR, P_THR], [BLO, P_BLO], [BHI, P_BHI], [ALO, P_ALO], [AHI, P_AHI]];
    const load = state.flatMap(([l, off]) => [...i32c(0), ...V128_LOAD(HP + off), ...lset(l)]);
    const store = state.flatMap(([l, off]) => [...i32c(0), ...lget(l), ...V128_STORE(HP + off)]);
    ifMode(4, [
      ...load,
      // I: byte offset in the staged halves; K: the keep byte's address; LIM: the last I of a full unrolled step
      ...i32c(0), ...lset(I), ...lget(KA), ...lset(K), ...lget(LEN), ...i32c(1), 0x74, ...i32c(8), 0x6b, ...lset(LIM),
      ...whileLoop([...lget(I), ...lget(LIM), 0x4c /* le_s */], [...body(0), ...body(1), ...body(2), ...body(3), ...inc(I, 8), ...inc(K, 4)]),
      ...whileLoop([...lget(I), ...lget(LEN), ...i32c(1), 0x74, 0x48 /* lt_s */], [...body(0), ...inc(I, 2), ...inc(K, 1)]),
      ...store,
    ]);
  }

  // mode 8: d = (x - base) * keep, four elements per step
  ifMode(8, [
    ...i32c(0), ...V128_LOAD(HP + P_CJ), ...lset(CJ),
    ...i32c(0), ...lset(I), ...i32c(0), ...lset(IF), ...i32c(0), ...lset(IK),
    ...whileLoop([...lget(IK), ...lget(LEN), 0x48], [
      ...lget(XA), ...lget(I), ...I32_ADD, ...LOAD64_ZERO(0), ...I32X4_EXTEND_LOW_U16, ...lset(H),
      ...lget(OUTA), ...lget(IF), ...I32_ADD,
      ...toF32(H), ...lget(BA), ...lget(IF), ...I32_ADD, ...V128_LOAD(0), ...F32X4_SUB,
      ...lget(KA), ...lget(IK), ...I32_ADD, ...LOAD32_SPLAT(0), ...lget(CJ), ...V_AND, ...lget(CJ), ...I32X4_EQ, ...lget(ONE32), ...V_AND,
      ...F32X4_MUL, ...V128_STORE(0),
      ...inc(I, 8), ...inc(IF, 16), ...inc(IK, 4),
    ]),
  ]);
  b.push(0x0b);
  return moduleBytes(2, [[nI32, I32], [nV128, V128]], b, (HALF_AREA_AT + HALF_AREA_BYTES) / 65536);
}

interface HalfModule {
  run: (len: number, mode: number) => void;
}
const compiled = new Map<string, HalfModule | null>();

/** Why the last compilation failed (an engine without SIMD), for diagnosis; null when none did. */
export let wasmHalfFailure: string | null = null;

function compileHalf(dtype: HalfDType, lanes: number): HalfModule | null {
  const key = `${dtype}:${lanes}`;
  if (compiled.has(key)) return compiled.get(key)!;
  let c: HalfModule | null = null;
  try {
    if (typeof WebAssembly === 'object') {
      const inst = new WebAssembly.Instance(new WebAssembly.Module(buildHalfModule(dtype, lanes)), { e: { m: sharedMemory() } });
      c = { run: inst.exports.run as (len: number, mode: number) => void };
    }
  } catch (e) {
    wasmHalfFailure = e instanceof Error ? e.message : String(e);
    c = null; // no SIMD here: callers keep the JavaScript forms
  }
  compiled.set(key, c);
  return c;
}

/** Whether the half-precision kernels run for `dtype` (false: use the JavaScript forms). */
export function wasmHalfAvailable(dtype: HalfDType): boolean {
  return compileHalf(dtype, MASK_GROUP) !== null && wasmTiesAvailable(1, true);
}

function param(p: number, value: number): void {
  heap().i32[(HP + p) >> 2] = value;
}

/** `src` (BF16 or F16 bits) to float32 in `dst` (same length), exactly as dtype.ts `decodeToFloat32`. */
export function wasmDecodeHalf(dtype: HalfDType, src: Uint16Array, dst: Float32Array): void {
  const run = compileHalf(dtype, MASK_GROUP)!.run;
  const k = heap();
  param(P_IN, CIN);
  param(P_OUT, COUT);
  for (let o = 0; o < src.length; o += CHUNK) {
    const len = Math.min(CHUNK, src.length - o);
    k.u16.set(src.subarray(o, o + len), CIN >> 1);
    run(len, 1);
    dst.set(k.f32.subarray(COUT >> 2, (COUT >> 2) + len), o);
  }
}

/** Float32 to BF16 bits, rounded to nearest even (dtype.ts `encodeFromFloat32`'s bits). */
export function wasmEncodeBf16(src: Float32Array, dst: Uint16Array): void {
  const run = compileHalf('BF16', MASK_GROUP)!.run;
  const k = heap();
  param(P_IN, CIN);
  param(P_OUT, COUT);
  for (let o = 0; o < src.length; o += CHUNK) {
    const len = Math.min(CHUNK, src.length - o);
    k.f32.set(src.subarray(o, o + len), CIN >> 2);
    run(len, 2);
    dst.set(k.u16.subarray(COUT >> 1, (COUT >> 1) + len), o);
  }
}

/**
 * One tensor's half-precision bits, read a block at a time into the kernels' staging: an array in
 * memory, or a region of a file read by positioned reads (merge/reader.ts), so that no copy of a
 * source tensor is made.
 */
export interface HalfSource {
  /** Elements. */
  readonly length: number;
  /** Elements [offset, offset + into.length) into `into`. */
  read(offset: number, into: Uint16Array): void;
}

/** A source over bits in memory. */
export function halfArraySource(bits: Uint16Array): HalfSource {
  return { length: bits.length, read: (offset, into) => into.set(bits.subarray(offset, offset + into.length)) };
}

/** DARE keep masks in the shared memory: byte i of group g (models 4g..4g+3) at `at + g * stride + i`, bit j for model 4g + j. */
export interface HalfKeep {
  readonly at: number;
  readonly stride: number;
  readonly n: number;
}

/** A generator's state as the four 32-bit words fastrng.ts `FastRng` keeps. */
export interface RngState {
  getState(): [number, number, number, number];
  setState(s: readonly [number, number, number, number]): void;
}

/** Read elements [o, o + len) of `src` into the staged block at byte address `at`. */
function stageBlock(src: HalfSource, o: number, len: number, at: number): void {
  src.read(o, heap().u16.subarray(at >> 1, (at >> 1) + len));
}

/**
 * DARE's keep masks for every model (Yu et al. 2024, eq. 2) read from the sources' half bits:
 * for element i of model j, d = x_j[i] - base[i] in float32, the i-th draw of `rngs[j]` decides
 * keep as kernels.ts `bernoulliPruneInPlace` with `thresholds31[j]`, and the L1 sums of d and of
 * d * keep are returned (the sums `deltaBernoulliPrune` returns), with each stream advanced past
 * the tensor. The masks stay in the shared memory for `halfMaskedTies` / `halfMaskedLinear`,
 * until the next resident allocation (wasm-ties.ts `wasmResident`). Null when they do not fit.
 */
export function halfDareMasks(
  dtype: HalfDType, base: HalfSource, models: readonly HalfSource[], rngs: readonly RngState[], thresholds31: readonly number[],
): { keep: HalfKeep; before: number[]; after: number[] } | null {
  const n = base.length;
  const m = models.length;
  const groups = Math.ceil(m / MASK_GROUP);
  const stride = Math.ceil((n + 16) / 16) * 16; // 16 spare bytes: four-wide reads past the end
  const at = wasmResident(groups * stride);
  if (at === null) return null;
  const k = heap();
  const before = new Array<number>(m).fill(0);
  const after = new Array<number>(m).fill(0);
  const s = (HP + P_S) >> 2;
  for (let g = 0; g < groups; g++) {
    const lanes = Math.min(MASK_GROUP, m - g * MASK_GROUP);
    const run = compileHalf(dtype, lanes)!.run;
    k.i32.fill(0, s, s + 20); // states and thresholds: unused lanes keep nothing
    k.f64.fill(0, (HP + P_BLO) >> 3, (HP + P_BLO + 64) >> 3);
    for (let j = 0; j < lanes; j++) {
      const st = rngs[g * MASK_GROUP + j]!.getState();
      for (let w = 0; w < 4; w++) k.i32[s + 4 * w + j] = st[w]!;
      k.i32[((HP + P_THR) >> 2) + j] = thresholds31[g * MASK_GROUP + j]! | 0; // 2^31 wraps to -2^31, as the subtraction's sign expects
    }
    for (let o = 0; o < n; o += BLOCK) {
      const len = Math.min(BLOCK, n - o);
      stageBlock(base, o, len, HB);
      for (let j = 0; j < lanes; j++) stageBlock(models[g * MASK_GROUP + j]!, o, len, HX(j));
      param(P_KEEP, at + g * stride + o);
      run(len, 4);
    }
    for (let j = 0; j < lanes; j++) {
      const model = g * MASK_GROUP + j;
      rngs[model]!.setState([k.i32[s + j]!, k.i32[s + 4 + j]!, k.i32[s + 8 + j]!, k.i32[s + 12 + j]!]);
      // sums: lanes 0, 1 in the low pair, 2, 3 in the high pair
      before[model] = k.f64[((HP + (j < 2 ? P_BLO : P_BHI)) >> 3) + (j & 1)]!;
      after[model] = k.f64[((HP + (j < 2 ? P_ALO : P_AHI)) >> 3) + (j & 1)]!;
    }
  }
  return { keep: { at, stride, n }, before, after };
}

/**
 * The second pass's staging, per chunk [o, o + len) of at most CHUNK elements: `base` reads the
 * blocks of base and models when a block begins and decodes the base to float32 at element
 * `baseF`; `delta` writes model j's masked task vector at element `deltaF` (the base must be at
 * `baseF`).
 */
function maskedStager(dtype: HalfDType, base: HalfSource, models: readonly HalfSource[], keep: HalfKeep) {
  const run = compileHalf(dtype, MASK_GROUP)!.run;
  const k = heap();
  const cj = (HP + P_CJ) >> 2;
  let baseAt = 0;
  return {
    base(o: number, len: number, baseF: number): void {
      const within = o % BLOCK;
      if (within === 0) {
        const blockLen = Math.min(BLOCK, base.length - o);
        stageBlock(base, o, blockLen, HB);
        for (let j = 0; j < models.length; j++) stageBlock(models[j]!, o, blockLen, HX(j));
      }
      param(P_IN, HB + 2 * within);
      param(P_OUT, baseF << 2);
      run(len, 1);
      baseAt = baseF << 2;
    },
    delta(j: number, o: number, len: number, deltaF: number): void {
      const jj = j % MASK_GROUP;
      for (let e = 0; e < 4; e++) k.i32[cj + e] = 1 << (8 * e + jj);
      param(P_BASE, baseAt);
      param(P_X, HX(j) + 2 * (o % BLOCK));
      param(P_OUT, deltaF << 2);
      param(P_KEEP, keep.at + Math.floor(j / MASK_GROUP) * keep.stride + o);
      run(len, 8);
    },
  };
}

/**
 * The TIES election of kernels.ts `tiesMerge` (every cut 0, so a delta's nonzero entries vote)
 * over the masked task vectors d_j = (x_j - base) * keep_j rebuilt from the half bits chunk by
 * chunk: the bits `tiesMerge` gives for the deltas `deltaBernoulliPrune` leaves. Up to 16 models.
 */
export function halfMaskedTies(
  dtype: HalfDType, base: HalfSource, models: readonly HalfSource[], keep: HalfKeep,
  eff: Float64Array, w: Float64Array, normalize: boolean, lambda: number, out: Float32Array,
): void {
  const m = models.length;
  if (m > 16) throw new RangeError('halfMaskedTies: at most 16 models');
  const stage = maskedStager(dtype, base, models, keep);
  wasmTiesMergeStaged(m, new Float64Array(m).fill(1), eff, w, normalize, lambda, out, (o, len, baseF, deltaF) => {
    stage.base(o, len, baseF);
    for (let j = 0; j < m; j++) stage.delta(j, o, len, deltaF[j]!);
  });
}

let acc: Float64Array | null = null;

/**
 * kernels.ts `weightedSum([base, ...d], [1, ...coeffs])` over the masked task vectors rebuilt from
 * the half bits: out = 1 * base + coeffs[0] * d_0 + ..., summed in float64 left to right and
 * rounded once, as that kernel does. Up to 16 models.
 */
export function halfMaskedLinear(dtype: HalfDType, base: HalfSource, models: readonly HalfSource[], keep: HalfKeep, coeffs: Float64Array, out: Float32Array): void {
  const n = base.length;
  const m = models.length;
  if (m > 16) throw new RangeError('halfMaskedLinear: at most 16 models');
  const stage = maskedStager(dtype, base, models, keep);
  acc ??= new Float64Array(CHUNK);
  const a = acc;
  const fb = COUT >> 2;
  const fd = CLIN >> 2;
  for (let o = 0; o < n; o += CHUNK) {
    const len = Math.min(CHUNK, n - o);
    stage.base(o, len, fb);
    const f = heap().f32;
    for (let i = 0; i < len; i++) a[i] = 1 * f[fb + i]!;
    for (let j = 0; j < m; j++) {
      stage.delta(j, o, len, fd);
      const c = coeffs[j]!;
      for (let i = 0; i < len; i++) a[i] = a[i]! + c * f[fd + i]!;
    }
    for (let i = 0; i < len; i++) out[o + i] = a[i]!;
  }
}

/**
 * kernels.ts `weightedSum(xs, coeffs)` over half-precision sources: out = coeffs[0] * x_0 + ...,
 * each x_j decoded exactly to float32 chunk by chunk (mode 1), the terms summed in float64 left to
 * right and rounded once, as that kernel does: the same bits, with no float32 copy of any input.
 * Linear and task arithmetic (mergekit/merge_methods/linear.py, task_arithmetic in
 * generalized_task_arithmetic.py) are this sum. Up to 17 sources (a base and 16 models).
 */
export function halfWeightedSum(dtype: HalfDType, xs: readonly HalfSource[], coeffs: ArrayLike<number>, out: Float32Array): void {
  const k = xs.length;
  if (k > 17) throw new RangeError('halfWeightedSum: at most 17 sources');
  const n = out.length;
  for (const x of xs) if (x.length !== n) throw new RangeError(`halfWeightedSum: a source has ${x.length} elements, the output ${n}`);
  const run = compileHalf(dtype, MASK_GROUP)!.run;
  const at = (j: number): number => (j === 0 ? HB : HX(j - 1));
  const c = Float64Array.from(coeffs);
  acc ??= new Float64Array(CHUNK);
  const a = acc;
  const fd = COUT >> 2;
  for (let o = 0; o < n; o += CHUNK) {
    const len = Math.min(CHUNK, n - o);
    const within = o % BLOCK;
    if (within === 0) {
      const blockLen = Math.min(BLOCK, n - o);
      for (let j = 0; j < k; j++) stageBlock(xs[j]!, o, blockLen, at(j));
    }
    a.fill(0, 0, len);
    param(P_OUT, COUT);
    for (let j = 0; j < k; j++) {
      param(P_IN, at(j) + 2 * within);
      run(len, 1);
      const f = heap().f32;
      const cj = c[j]!;
      if (j === 0) for (let i = 0; i < len; i++) a[i] = cj * f[fd + i]!;
      else for (let i = 0; i < len; i++) a[i] = a[i]! + cj * f[fd + i]!;
    }
    for (let i = 0; i < len; i++) out[o + i] = a[i]!;
  }
}
