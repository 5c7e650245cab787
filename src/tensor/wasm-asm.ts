/**
 * A minimal WebAssembly binary writer (https://webassembly.github.io/spec/core/binary/) for the
 * kernels of this folder that are assembled from bytes at first use (no toolchain): LEB128
 * numbers, sections, the opcodes they use (core spec 5.4 and the SIMD proposal as merged in
 * WebAssembly 2.0), and a module of one exported function `run` over an imported memory.
 */
export function uleb(v: number): number[] {
  const out: number[] = [];
  do {
    let b = v & 0x7f;
    v >>>= 7;
    if (v !== 0) b |= 0x80;
    out.push(b);
  } while (v !== 0);
  return out;
}
export function sleb(v: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}
export function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}
export function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}
export const name = (s: string): number[] => vec([...s].map((c) => [c.charCodeAt(0)]));

// opcodes (core spec 5.4, SIMD proposal as merged in WebAssembly 2.0)
export const I32 = 0x7f;
export const V128 = 0x7b;
export const F64 = 0x7c;
export const F32 = 0x7d;
export const simd = (op: number): number[] => [0xfd, ...uleb(op)];
export const memarg = (align: number, offset: number): number[] => [...uleb(align), ...uleb(offset)];
export const i32c = (v: number): number[] => [0x41, ...sleb(v | 0)];
export const lget = (i: number): number[] => [0x20, ...uleb(i)];
export const lset = (i: number): number[] => [0x21, ...uleb(i)];
export const ltee = (i: number): number[] => [0x22, ...uleb(i)];
export const I32_ADD = [0x6a];
export const v128const = (bytes: number[]): number[] => [...simd(0x0c), ...bytes];
export const splat32 = (v: number): number[] => [...i32c(v), ...simd(0x11)];
export const LOAD64_ZERO = (offset: number): number[] => [...simd(0x5d), ...memarg(3, offset)];
export const LOAD32_SPLAT = (offset: number): number[] => [...simd(0x09), ...memarg(2, offset)];
export const LOAD64_SPLAT = (offset: number): number[] => [...simd(0x0a), ...memarg(3, offset)];
export const V128_LOAD = (offset: number): number[] => [...simd(0x00), ...memarg(4, offset)];
export const V128_STORE = (offset: number): number[] => [...simd(0x0b), ...memarg(4, offset)];
export const shuffle = (lanes: number[]): number[] => [...simd(0x0d), ...lanes];
/** i8x16.shuffle of [x, x]: bytes 8..15 to 0..7 (the two high floats into the low lanes). */
export const HIGH_TO_LOW = shuffle([8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]);
/** i8x16.shuffle of [lo, hi]: the low 8 bytes of each. */
export const JOIN_LOW_HALVES = shuffle([0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]);
export const V_AND = simd(0x4e);
export const V_ANDNOT = simd(0x4f);
export const V_XOR = simd(0x51);
export const V_BITSELECT = simd(0x52);
export const I32X4_GT_S = simd(0x3b);
export const F64X2_EQ = simd(0x47);
export const I64X2_EXTEND_LOW_S = simd(0xc7);
export const I64X2_EXTEND_HIGH_S = simd(0xc8);
export const I64X2_SHR_S = simd(0xcc);
export const F64X2_ADD = simd(0xf0);
export const F64X2_MUL = simd(0xf2);
export const F64X2_DIV = simd(0xf3);
export const F64X2_PROMOTE_LOW = simd(0x5f);
export const F32X4_DEMOTE_ZERO = simd(0x5e);

export function f64Bytes(v: number): number[] {
  return [...new Uint8Array(Float64Array.of(v).buffer)];
}
export const ONE_F64X2 = v128const([...f64Bytes(1), ...f64Bytes(1)]);
export const ZERO_F64X2 = v128const(new Array(16).fill(0));

/** A module with one exported function `run` (params i32 x nParams, no result) and memory `mem`. */
export function moduleBytes(nParams: number, locals: Array<[number, number]>, body: number[], pages: number): Uint8Array<ArrayBuffer> {
  const code = [...vec(locals.map(([count, type]) => [...uleb(count), type])), ...body];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, ...vec(Array.from({ length: nParams }, () => [I32])), ...vec([])]])), // type: (i32...) -> ()
    ...section(2, vec([[...name('e'), ...name('m'), 0x02, 0x00, ...uleb(pages)]])), // the shared memory, imported
    ...section(3, vec([uleb(0)])), // function 0 has type 0
    ...section(7, vec([[...name('run'), 0x00, ...uleb(0)]])),
    ...section(10, vec([[...uleb(code.length), ...code]])),
  ];
  return new Uint8Array(bytes);
}
