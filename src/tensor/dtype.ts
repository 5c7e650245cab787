/**
 * Element types of safetensors files and exact conversion to and from Float32Array.
 *
 * - BF16 -> F32 and F16 -> F32 are exact (every half value is a float).
 * - F32 -> BF16 and F32 -> F16 round to nearest, ties to even (IEEE 754 roundTiesToEven),
 *   as PyTorch's `.to(torch.bfloat16)` / `.to(torch.float16)` do. NaN stays NaN (quiet), an
 *   overflow becomes a signed infinity, an underflow a signed zero or a subnormal half.
 *
 * Arrays of at least `WASM_MIN_ELEMENTS` convert through the WebAssembly SIMD forms of wasm-half.ts
 * (the same bits, about twice as fast); smaller ones, and engines without SIMD, take the loops here.
 *
 * All conversions assume a little-endian host, as safetensors files are little-endian; the
 * module refuses to load on a big-endian host rather than produce byte-swapped numbers.
 */
import { endianness } from 'node:os';
import { RuntimeFailure } from '../errors.ts';
import { wasmDecodeHalf, wasmEncodeBf16, wasmHalfAvailable } from './wasm-half.ts';

if (endianness() !== 'LE') {
  throw new RuntimeFailure('E_BIG_ENDIAN_HOST', 'evomerge needs a little-endian host (safetensors data is little-endian)');
}

export const DTYPES = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'] as const;
export type DType = (typeof DTYPES)[number];
export type FloatDType = 'F32' | 'F16' | 'BF16';

export const DTYPE_SIZE: Readonly<Record<DType, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && (DTYPES as readonly string[]).includes(value);
}

export function isFloatDType(dtype: DType): boolean {
  return dtype === 'F64' || dtype === 'F32' || dtype === 'F16' || dtype === 'BF16';
}

/** Parse a user-facing dtype name (`f32`, `float16`, `bfloat16`, ...) into an output float dtype. */
export function parseFloatDType(name: string): FloatDType | undefined {
  const key = name.trim().toLowerCase();
  if (key === 'f32' || key === 'float32' || key === 'fp32') return 'F32';
  if (key === 'f16' || key === 'float16' || key === 'fp16' || key === 'half') return 'F16';
  if (key === 'bf16' || key === 'bfloat16') return 'BF16';
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Half precision (IEEE 754 binary16)

let f16Table: Float32Array | undefined;

/** Float32 value of every binary16 bit pattern, built once (256 KiB). */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  const table = new Float32Array(65536);
  const bits = new Uint32Array(table.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) {
      // zero or subnormal: mant * 2^-24, exact in float32
      table[h] = (sign ? -1 : 1) * mant * 2 ** -24;
    } else if (exp === 0x1f) {
      bits[h] = (sign | 0x7f800000 | (mant << 13)) >>> 0; // inf or NaN, payload kept
    } else {
      bits[h] = (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0; // rebias 15 -> 127
    }
  }
  f16Table = table;
  return table;
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** binary16 bits of `x`, rounded to nearest, ties to even. */
export function f32ToF16Bits(x: number): number {
  scratchF32[0] = x;
  return f32BitsToF16Bits(scratchU32[0]!);
}

function f32BitsToF16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  if (exp >= 143) return sign | 0x7c00; // |x| >= 2^16: beyond the largest half even after rounding
  if (exp >= 113) {
    // normal half: exponent 2^-14 .. 2^15. Keep 10 mantissa bits, round on the 13 dropped.
    let h = ((exp - 112) << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++; // a carry may reach inf: correct
    return sign | h;
  }
  if (exp < 102) return sign; // |x| < 2^-25: rounds to zero
  // subnormal half: value = h * 2^-24 where h = m * 2^(exp - 126), m the 24-bit significand
  const m = mant | 0x800000;
  const shift = 126 - exp; // 14 .. 24
  let h = m >>> shift;
  const rest = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (h & 1) === 1)) h++; // a carry into 0x400 is the smallest normal
  return sign | h;
}

export function f16BitsToF32(h: number): number {
  return halfTable()[h & 0xffff]!;
}

/** bfloat16 bits of `x`, rounded to nearest, ties to even. */
export function f32ToBf16Bits(x: number): number {
  scratchF32[0] = x;
  return f32BitsToBf16Bits(scratchU32[0]!);
}

function f32BitsToBf16Bits(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff; // NaN: keep sign, force quiet
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16BitsToF32(b: number): number {
  scratchU32[0] = (b & 0xffff) << 16;
  return scratchF32[0]!;
}

// ---------------------------------------------------------------------------------------
// Bulk conversion of raw little-endian bytes

/** Half-precision arrays of at least this many elements convert in WebAssembly (below, a call costs more than it saves). */
export const WASM_MIN_ELEMENTS = 256;

/**
 * Decode `bytes` holding `dtype` elements into `out` (allocated when absent). `bytes` may
 * start at any offset; an unaligned view is copied once.
 */
export function decodeToFloat32(dtype: DType, bytes: Uint8Array, out?: Float32Array): Float32Array {
  const size = DTYPE_SIZE[dtype];
  const count = bytes.byteLength / size;
  const dst = out ?? new Float32Array(count);
  if (dst.length !== count) throw new RangeError(`decodeToFloat32: output has ${dst.length} elements, input ${count}`);
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  const { buffer, byteOffset } = aligned;
  if ((dtype === 'BF16' || dtype === 'F16') && count >= WASM_MIN_ELEMENTS && wasmHalfAvailable(dtype)) {
    wasmDecodeHalf(dtype, new Uint16Array(buffer, byteOffset, count), dst);
    return dst;
  }
  switch (dtype) {
    case 'F32':
      dst.set(new Float32Array(buffer, byteOffset, count));
      break;
    case 'BF16': {
      // bfloat16 is the high half of a float32: shift it up. Two elements per 32-bit load when
      // the bytes are 4-aligned (measured 1.6x faster than one 16-bit load per element)
      const dstBits = new Uint32Array(dst.buffer, dst.byteOffset, count);
      if (byteOffset % 4 === 0) {
        const pairs = count >> 1;
        const src32 = new Uint32Array(buffer, byteOffset, pairs);
        for (let i = 0, j = 0; i < pairs; i++, j += 2) {
          const w = src32[i]!;
          dstBits[j] = w << 16;
          dstBits[j + 1] = w & 0xffff0000;
        }
        if (count & 1) dstBits[count - 1] = new Uint16Array(buffer, byteOffset + (count - 1) * 2, 1)[0]! << 16;
      } else {
        const src = new Uint16Array(buffer, byteOffset, count);
        for (let i = 0; i < count; i++) dstBits[i] = src[i]! << 16;
      }
      break;
    }
    case 'F16': {
      const src = new Uint16Array(buffer, byteOffset, count);
      const table = halfTable();
      for (let i = 0; i < count; i++) dst[i] = table[src[i]!]!;
      break;
    }
    case 'F64': {
      const src = new Float64Array(buffer, byteOffset, count);
      for (let i = 0; i < count; i++) dst[i] = src[i]!;
      break;
    }
    case 'I64': {
      const src = new BigInt64Array(buffer, byteOffset, count);
      for (let i = 0; i < count; i++) dst[i] = Number(src[i]!);
      break;
    }
    case 'I32':
      dst.set(new Int32Array(buffer, byteOffset, count));
      break;
    case 'I16':
      dst.set(new Int16Array(buffer, byteOffset, count));
      break;
    case 'I8':
      dst.set(new Int8Array(buffer, byteOffset, count));
      break;
    case 'U8':
    case 'BOOL':
      dst.set(aligned.subarray(0, count));
      break;
  }
  return dst;
}

/** Encode float32 values as `dtype` little-endian bytes (rounding to nearest even for halves). */
export function encodeFromFloat32(dtype: FloatDType, values: Float32Array, out?: Uint8Array): Uint8Array {
  const size = DTYPE_SIZE[dtype];
  const dst = out ?? new Uint8Array(values.length * size);
  if (dst.byteLength !== values.length * size) throw new RangeError('encodeFromFloat32: output size does not match');
  if (dtype === 'F32') {
    dst.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    return dst;
  }
  const aligned = dst.byteOffset % 2 === 0;
  const target = aligned ? dst : new Uint8Array(dst.byteLength);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const half = new Uint16Array(target.buffer, target.byteOffset, values.length);
  if (dtype === 'BF16' && values.length >= WASM_MIN_ELEMENTS && wasmHalfAvailable('BF16')) {
    wasmEncodeBf16(values, half);
  } else if (dtype === 'BF16' && target.byteOffset % 4 === 0) {
    // f32BitsToBf16Bits inlined, two elements per 32-bit store (about 3x faster than a call and
    // a 16-bit store per element; the same bits, tested against the scalar form)
    const pairs = values.length >> 1;
    const out32 = new Uint32Array(target.buffer, target.byteOffset, pairs);
    for (let i = 0, j = 0; i < pairs; i++, j += 2) {
      const a = bits[j]!;
      const b = bits[j + 1]!;
      const ha = (a & 0x7fffffff) > 0x7f800000 ? ((a >>> 16) | 0x40) & 0xffff : ((a + 0x7fff + ((a >>> 16) & 1)) >>> 16) & 0xffff;
      const hb = (b & 0x7fffffff) > 0x7f800000 ? ((b >>> 16) | 0x40) & 0xffff : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
      out32[i] = ha | (hb << 16);
    }
    if (values.length & 1) half[values.length - 1] = f32BitsToBf16Bits(bits[values.length - 1]!);
  } else if (dtype === 'BF16') {
    for (let i = 0; i < bits.length; i++) half[i] = f32BitsToBf16Bits(bits[i]!);
  } else {
    for (let i = 0; i < bits.length; i++) half[i] = f32BitsToF16Bits(bits[i]!);
  }
  if (!aligned) dst.set(target);
  return dst;
}
