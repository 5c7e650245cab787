import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bf16BitsToF32, decodeToFloat32, encodeFromFloat32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits,
} from '../src/tensor/dtype.ts';
import { Rng } from '../src/tensor/rng.ts';

// Expected bit patterns computed by hand from the IEEE 754 layouts (binary16: 1-5-10, bfloat16: 1-8-7).
const f16Cases: Array<[number, number, string]> = [
  [1, 0x3c00, 'one'],
  [-2, 0xc000, 'minus two'],
  [0.1, 0x2e66, '0.1 rounds down to 0x2e66'],
  [65504, 0x7bff, 'largest half'],
  [65519, 0x7bff, 'just below the overflow tie'],
  [65520, 0x7c00, 'the tie above the largest half rounds to even, which is infinity'],
  [2 ** -14, 0x0400, 'smallest normal'],
  [2 ** -24, 0x0001, 'smallest subnormal'],
  [2 ** -25, 0x0000, 'half the smallest subnormal ties to even zero'],
  [1.5 * 2 ** -25, 0x0001, 'above the tie rounds up'],
  [3 * 2 ** -25, 0x0002, '1.5 ulp subnormal ties to even 2'],
  [1 + 2 ** -11, 0x3c00, 'tie to even (down)'],
  [1 + 3 * 2 ** -11, 0x3c02, 'tie to even (up)'],
  [-0, 0x8000, 'negative zero'],
  [Infinity, 0x7c00, 'infinity'],
  [1e-10, 0x0000, 'underflow to zero'],
];

test('F32 to F16 rounds to nearest even, matching hand-computed bit patterns', () => {
  for (const [x, bits, why] of f16Cases) assert.equal(f32ToF16Bits(x), bits, `${x}: ${why}`);
  assert.equal(f32ToF16Bits(NaN) & 0x7e00, 0x7e00, 'NaN stays a quiet NaN');
});

test('F16 to F32 is exact for every bit pattern that round-trips', () => {
  for (let h = 0; h < 65536; h++) {
    const x = f16BitsToF32(h);
    if (Number.isNaN(x)) continue;
    assert.equal(f32ToF16Bits(x), h, `pattern ${h.toString(16)}`);
  }
  assert.equal(f16BitsToF32(0x0001), 2 ** -24);
  assert.equal(f16BitsToF32(0x3555), 0.333251953125);
});

test('F32 to BF16 rounds to nearest even, matching hand-computed bit patterns', () => {
  const cases: Array<[number, number, string]> = [
    [1, 0x3f80, 'one'],
    [1 + 2 ** -8, 0x3f80, 'tie to even (down)'],
    [1 + 3 * 2 ** -8, 0x3f82, 'tie to even (up)'],
    [Math.PI, 0x4049, 'pi (0x40490fdb) rounds down'],
    [0.1, 0x3dcd, '0.1 (0x3dcccccd) rounds up'],
    [3.4028234663852886e38, 0x7f80, 'largest float rounds to infinity'],
    [-0, 0x8000, 'negative zero'],
  ];
  for (const [x, bits, why] of cases) assert.equal(f32ToBf16Bits(x), bits, `${x}: ${why}`);
  assert.equal(f32ToBf16Bits(NaN), 0x7fc0);
  assert.equal(bf16BitsToF32(0x3f80), 1);
  assert.equal(bf16BitsToF32(0x4049), 3.140625);
});

test('bulk encode and decode agree with the scalar conversions for every float dtype', () => {
  const values = new Float32Array([0, -1.5, 0.1, 65520, 2 ** -25, 1 + 2 ** -11, 1e30, -3.3]);
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    const bytes = encodeFromFloat32(dtype, values);
    const back = decodeToFloat32(dtype, bytes);
    for (let i = 0; i < values.length; i++) {
      const expected = dtype === 'F32' ? values[i]! : dtype === 'F16' ? f16BitsToF32(f32ToF16Bits(values[i]!)) : bf16BitsToF32(f32ToBf16Bits(values[i]!));
      assert.equal(back[i], expected, `${dtype} element ${i}`);
    }
  }
});

test('decoding an unaligned byte view copies instead of failing', () => {
  const buf = new Uint8Array(9);
  buf.set(new Uint8Array(new Float32Array([1.25, -2]).buffer), 1);
  assert.deepEqual(Array.from(decodeToFloat32('F32', buf.subarray(1))), [1.25, -2]);
});

test('BF16 bulk encode and decode (two elements per word) give the scalar bits for random words, NaN, infinities, odd lengths and offsets', () => {
  const rng = Rng.seeded(11);
  for (const length of [0, 1, 2, 7, 64, 1001]) {
    const bits = new Uint32Array(length);
    for (let i = 0; i < length; i++) bits[i] = Math.floor(rng.next() * 2 ** 32) >>> 0;
    const specials = [0x7f800000, 0xff800000, 0x7fc00001, 0xffffffff, 0x7f7fffff, 0x00000001, 0x80000000, 0x3f808000, 0x3f818000];
    for (let i = 0; i < Math.min(length, specials.length); i++) bits[i] = specials[i]!;
    const values = new Float32Array(bits.buffer);
    const encoded = encodeFromFloat32('BF16', values);
    for (let i = 0; i < length; i++) {
      const got = encoded[2 * i]! | (encoded[2 * i + 1]! << 8);
      // the scalar rule on the bits themselves (a NaN read into a JS number may change its payload)
      const b = bits[i]!;
      const want = (b & 0x7fffffff) > 0x7f800000 ? ((b >>> 16) | 0x40) & 0xffff : Math.floor((b + 0x7fff + ((b >>> 16) & 1)) / 65536) & 0xffff;
      assert.equal(got, want, `element ${i} of ${length}: bits 0x${b.toString(16)}`);
    }
    // decode from a 4-aligned view and from a 2-aligned one (the element-wise path)
    for (const shift of [0, 2]) {
      const bytes = new Uint8Array(encoded.length + 4);
      bytes.set(encoded, shift);
      const decoded = decodeToFloat32('BF16', bytes.subarray(shift, shift + encoded.length));
      const back = new Uint32Array(decoded.buffer, decoded.byteOffset, length);
      for (let i = 0; i < length; i++) assert.equal(back[i], (encoded[2 * i]! | (encoded[2 * i + 1]! << 8)) << 16 >>> 0, `decode element ${i} of ${length}, offset ${shift}`);
    }
  }
});
