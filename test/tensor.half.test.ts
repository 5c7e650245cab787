import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bf16BitsToF32, decodeToFloat32, encodeFromFloat32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../src/tensor/dtype.ts';
import { halfArraySource, wasmDecodeHalf, wasmEncodeBf16, wasmHalfAvailable } from '../src/tensor/wasm-half.ts';
import { getMethod, resolveScope } from '../src/methods/index.ts';
import { Rng } from '../src/tensor/rng.ts';

const bitsOf = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

test('the WebAssembly half kernels compile on this engine', () => {
  assert.equal(wasmHalfAvailable('BF16'), true);
  assert.equal(wasmHalfAvailable('F16'), true);
});

for (const dtype of ['BF16', 'F16'] as const) {
  test(`every ${dtype} bit pattern decodes in WebAssembly to the bits of the scalar table`, () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const got = new Float32Array(65536);
    wasmDecodeHalf(dtype, all, got);
    const scalar = dtype === 'BF16' ? bf16BitsToF32 : f16BitsToF32;
    const want = Float32Array.from(all, (h) => scalar(h));
    const g = bitsOf(got);
    const w = bitsOf(want);
    for (let i = 0; i < 65536; i++) {
      // a NaN may differ only in the quiet bit (the scalar table is read through a float load)
      if (Number.isNaN(want[i]!)) assert.ok(Number.isNaN(got[i]!) && (g[i]! | 0x400000) === (w[i]! | 0x400000), `${dtype} ${i.toString(16)}`);
      else assert.equal(g[i], w[i], `${dtype} ${i.toString(16)}`);
    }
  });
}

test('BF16 encoding in WebAssembly rounds to nearest even and keeps NaN quiet, as the scalar form', () => {
  const rng = Rng.seeded(3);
  const n = 100_003;
  const words = new Uint32Array(n);
  for (let i = 0; i < n; i++) words[i] = Math.floor(rng.next() * 2 ** 32) >>> 0;
  // ties (exactly half way, even and odd), the largest finite, infinities, NaNs, zeros, subnormals
  const specials = [0x3f808000, 0x3f818000, 0x7f7fffff, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffbfffff, 0, 0x80000000, 0x00000001, 0x807fffff];
  words.set(specials, 17);
  const values = new Float32Array(words.buffer);
  const got = new Uint16Array(n);
  wasmEncodeBf16(values, got);
  for (let i = 0; i < n; i++) assert.equal(got[i], f32ToBf16Bits(values[i]!), `element ${i} (bits ${words[i]!.toString(16)})`);
});

test('decodeToFloat32 and encodeFromFloat32 give the same bytes above and below the WebAssembly threshold', () => {
  const rng = Rng.seeded(4);
  for (const n of [255, 256, 20_001]) {
    const values = Float32Array.from({ length: n }, () => rng.normal() * 10);
    for (const dtype of ['BF16', 'F16'] as const) {
      const bytes = encodeFromFloat32(dtype, values);
      const half = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
      const enc = dtype === 'BF16' ? f32ToBf16Bits : f32ToF16Bits;
      for (let i = 0; i < n; i++) assert.equal(half[i], enc(values[i]!), `${dtype} n=${n} element ${i}`);
      const back = decodeToFloat32(dtype, bytes);
      const dec = dtype === 'BF16' ? bf16BitsToF32 : f16BitsToF32;
      assert.deepEqual(bitsOf(back), bitsOf(Float32Array.from(half, (h) => dec(h))), `${dtype} n=${n}`);
    }
  }
});

/** Half bits of a base and models near it, with the odd values a checkpoint may hold. */
function family(dtype: 'BF16' | 'F16', n: number, m: number, seed: number): { base: Uint16Array; models: Uint16Array[] } {
  const rng = Rng.seeded(seed);
  const enc = dtype === 'BF16' ? f32ToBf16Bits : f32ToF16Bits;
  const base = Float32Array.from({ length: n }, () => rng.normal() * 0.02);
  const models = Array.from({ length: m }, () => Float32Array.from(base, (b) => b + rng.normal() * 0.004));
  // signed zeros, a subnormal of each dtype, equal to the base (a zero delta), large values
  base[5] = -0;
  models[0]![5] = 0;
  base[6] = dtype === 'F16' ? 2 ** -20 : 1e-40;
  for (const x of models) x[7] = base[7]!;
  models[m - 1]![8] = 3000;
  const half = (a: Float32Array) => Uint16Array.from(a, (v) => enc(v));
  return { base: half(base), models: models.map(half) };
}

const DARE = ['dare_ties', 'dare_linear'] as const;

for (const dtype of ['BF16', 'F16'] as const) {
  test(`DARE methods read from ${dtype} bits give the bits of the float32 decode path`, () => {
    const dec = dtype === 'BF16' ? bf16BitsToF32 : f16BitsToF32;
    // sizes: below a chunk, odd past a 64 Ki-element block; models: one, a full mask group, past it
    for (const [n, m] of [[1001, 1], [70_001, 4], [140_003, 5]] as const) {
      const { base, models } = family(dtype, n, m, n + m);
      const baseF = Float32Array.from(base, (h) => dec(h));
      const modelsF = models.map((x) => Float32Array.from(x, (h) => dec(h)));
      for (const id of DARE) {
        const method = getMethod(id);
        assert.equal(method.readsHalf, true, id);
        for (const [label, global, densities] of [
          ['defaults', {}, [0.3, 0.5, 0.7, 1, 0.2]],
          ['inverse rescale, normalize', { rescale_mode: 'inverse', normalize: true, lambda: 0.8 }, [0.9, 0.1, 1, 0.5, 0.6]],
          ['no rescale', { rescale: false }, [0.4, 0.4, 0.4, 0.4, 0.4]],
        ] as const) {
          const g = resolveScope(method, 'global', global, 'test');
          const pm = models.map((_, j) => resolveScope(method, 'per-model', { weight: 0.2 + 0.3 * j, density: densities[j]! }, 'test'));
          const input = { name: 'model.layers.3.self_attn.q_proj.weight', shape: [n], modelIndex: models.map((_, j) => j) };
          const want = method.merge({ ...input, base: baseF, models: modelsF.map((x) => x.slice()) }, g, pm, { seed: 11 });
          let decoded = false;
          const half = { dtype, base: halfArraySource(base), models: models.map(halfArraySource) };
          const got = method.merge({
            ...input,
            half,
            get base() { decoded = true; return baseF; },
            get models() { decoded = true; return modelsF.map((x) => x.slice()); },
          }, g, pm, { seed: 11 });
          assert.equal(decoded, false, `${id} ${label}: the half path decoded no input to float32`);
          const gb = bitsOf(got);
          const wb = bitsOf(want);
          for (let i = 0; i < n; i++) if (gb[i] !== wb[i]) assert.fail(`${dtype} ${id} ${label} n=${n} m=${m}: element ${i} is ${got[i]}, the float32 path ${want[i]}`);
        }
      }
    }
  });
}

for (const dtype of ['BF16', 'F16'] as const) {
  test(`linear and task arithmetic read from ${dtype} bits give the bits of the float32 decode path`, () => {
    const dec = dtype === 'BF16' ? bf16BitsToF32 : f16BitsToF32;
    for (const [n, m] of [[999, 1], [150_001, 3]] as const) {
      const { base, models } = family(dtype, n, m, 7 * n + m);
      const baseF = Float32Array.from(base, (h) => dec(h));
      const modelsF = models.map((x) => Float32Array.from(x, (h) => dec(h)));
      for (const [id, global] of [['linear', {}], ['linear', { normalize: false }], ['task_arithmetic', {}], ['task_arithmetic', { normalize: true, lambda: 0.7 }]] as const) {
        const method = getMethod(id);
        assert.equal(method.readsHalf, true, id);
        const g = resolveScope(method, 'global', global, 'test');
        const pm = models.map((_, j) => resolveScope(method, 'per-model', { weight: 0.3 + 0.25 * j }, 'test'));
        const withBase = id === 'task_arithmetic';
        const input = { name: 'model.layers.0.mlp.down_proj.weight', shape: [n] };
        const want = method.merge({ ...input, base: withBase ? baseF : null, models: modelsF }, g, pm, { seed: 1 });
        let decoded = false;
        const half = { dtype, base: withBase ? halfArraySource(base) : null, models: models.map(halfArraySource) };
        const got = method.merge({
          ...input,
          half,
          get base() { decoded = true; return withBase ? baseF : null; },
          get models() { decoded = true; return modelsF; },
        }, g, pm, { seed: 1 });
        assert.equal(decoded, false, `${id}: the half path decoded no input to float32`);
        assert.deepEqual(bitsOf(got), bitsOf(want), `${dtype} ${id} ${JSON.stringify(global)} n=${n} m=${m}`);
      }
    }
  });
}
