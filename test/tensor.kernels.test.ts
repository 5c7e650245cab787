import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bernoulliPruneInPlace, deltaBernoulliPrune, deltaWithHistogram, deltaWithHistogramJs, dropExcessTies, tiesMerge, tiesMergeJs } from '../src/tensor/kernels.ts';
import { FastRng, bernoulliThreshold31 } from '../src/tensor/fastrng.ts';
import { wasmBucketScan, wasmDeltaAvailable, wasmDeltaScratch, wasmTiesAvailable } from '../src/tensor/wasm-ties.ts';
import { HISTOGRAM_BUCKETS, magnitudeCut } from '../src/tensor/select.ts';

/** Deterministic pseudo-random floats with many exact ties, zeros, signed zeros and wide exponents. */
function randomTensor(seed: number, n: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
  for (let i = 0; i < n; i++) {
    const r = next();
    if (r < 0.05) a[i] = 0;
    else if (r < 0.08) a[i] = -0;
    else if (r < 0.2) a[i] = (next() < 0.5 ? -1 : 1) * 0.25 * Math.floor(next() * 4); // exact ties
    else a[i] = (next() - 0.5) * 2 ** Math.floor(next() * 40 - 30);
  }
  return a;
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  const ai = new Int32Array(a.buffer, a.byteOffset, a.length);
  const bi = new Int32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < a.length; i++) {
    if (ai[i] !== bi[i]) assert.fail(`${what}: element ${i} differs: ${a[i]} (0x${(ai[i]! >>> 0).toString(16)}) vs ${b[i]} (0x${(bi[i]! >>> 0).toString(16)})`);
  }
}

test('the WebAssembly kernels compile, the TIES one for 1 to 16 models and not beyond', () => {
  assert.equal(wasmDeltaAvailable(), true);
  assert.equal(wasmTiesAvailable(1, true), true);
  assert.equal(wasmTiesAvailable(16, false), true);
  assert.equal(wasmTiesAvailable(17, true), false);
});

test('the WebAssembly TIES kernel reproduces the JavaScript kernel bit for bit on random tensors of odd sizes', () => {
  const sizes = [1, 2, 3, 5, 7, 4099, 8191, 8193, 20011];
  let seed = 1;
  for (const n of sizes) {
    for (const m of [1, 2, 3, 5]) {
      const base = randomTensor(seed++, n);
      const d = Array.from({ length: m }, () => randomTensor(seed++, n));
      // cuts as the engine makes them: a top-k cut per model (some keep everything, one keeps nothing)
      const cut = d.map((x, j) => (j === 0 ? 0 : j === 4 ? 0x80000000 : magnitudeCut(x, Math.max(1, Math.floor(n * (0.2 + 0.15 * j)))).bits));
      const weightSets = [
        d.map((_, j) => 0.5 + 0.25 * j),
        d.map((_, j) => (j % 2 === 0 ? 0.7 : -0.4)), // negative weights flip the voting sign
        d.map((_, j) => (j === 0 ? 0 : 1.3)), // a zero weight
      ];
      for (const w of weightSets) {
        const eff = w.map((x, j) => x * (1 + j / 7)); // a rescale factor folded into the weight
        for (const normalize of [true, false]) {
          for (const lambda of [1, -0.6]) {
            const want = tiesMergeJs(base, d, cut, eff, w, normalize, lambda, new Float32Array(n));
            const got = tiesMerge(base, d, cut, eff, w, normalize, lambda, new Float32Array(n));
            sameBits(got, want, `n=${n} m=${m} w=${w.join(',')} normalize=${normalize} lambda=${lambda}`);
          }
        }
      }
    }
  }
});

test('the WebAssembly TIES kernel reproduces the JavaScript kernel when the sign vote cancels exactly', () => {
  // deltas +x and -x with equal weights sum to +0: plus is elected and only the positive agrees
  const n = 9;
  const base = randomTensor(7, n);
  const x = randomTensor(8, n);
  const d = [x, x.map((v) => -v)];
  for (const normalize of [true, false]) {
    const want = tiesMergeJs(base, d, [0, 0], [1, 1], [1, 1], normalize, 1, new Float32Array(n));
    const got = tiesMerge(base, d, [0, 0], [1, 1], [1, 1], normalize, 1, new Float32Array(n));
    sameBits(got, want, `normalize=${normalize}`);
  }
});

test('the WebAssembly task vector and magnitude histogram reproduce the JavaScript loops bit for bit', () => {
  for (const n of [1, 3, 4, 8191, 8193, 20011]) {
    const x = randomTensor(n, n);
    const base = randomTensor(n + 1, n);
    const want = new Float32Array(n);
    const wantHist = new Uint32Array(HISTOGRAM_BUCKETS);
    deltaWithHistogramJs(x, base, want, wantHist);
    const got = new Float32Array(n);
    const gotHist = new Uint32Array(HISTOGRAM_BUCKETS).fill(7); // stale counts must be cleared
    deltaWithHistogram(x, base, got, gotHist);
    sameBits(got, want, `delta n=${n}`);
    assert.deepEqual(gotHist, wantHist);
    const noHist = new Float32Array(n);
    deltaWithHistogram(x, base, noHist, null);
    sameBits(noHist, want, `delta without histogram n=${n}`);
  }
});

test('dropping excess ties through the collected bucket indices equals the full scan', () => {
  const cases: Array<[Float32Array, number]> = [
    [randomTensor(11, 20011), 4000], // at this cut 546 exact ties (0.5), 188 kept
    [Float32Array.from({ length: 5001 }, (_, i) => (i % 3 === 0 ? -0.5 : 0.5) * (1 + (i % 5 === 0 ? 1 : 0))), 2500],
    [new Float32Array((1 << 20) + 5).fill(-1.5), 1000], // more tied elements than the scratch holds
  ];
  for (const [d, k] of cases) {
    const plain = magnitudeCut(d, k);
    const collected = magnitudeCut(d, k, undefined, true);
    assert.deepEqual({ bits: collected.bits, ties: collected.ties, equal: collected.equal }, plain);
    assert.ok(plain.ties < plain.equal, 'the case must have ties to drop');
    const want = d.slice();
    dropExcessTies(want, plain.bits, plain.ties, plain.equal);
    const got = d.slice();
    dropExcessTies(got, collected.bits, collected.ties, collected.equal, collected.candidates);
    sameBits(got, want, `n=${d.length} k=${k}`);
  }
});

test('the task vector fused with the Bernoulli pruning reproduces the two JavaScript loops: same kept bits, L1 sums and stream state', () => {
  for (const n of [1, 5, 8191, 8193, 20011]) {
    for (const density of [0, 0.3, 0.5, 0.999, 1]) {
      const base = randomTensor(n * 3 + 1, n);
      const x = randomTensor(n * 3, n);
      const want = new Float32Array(n);
      const jsRng = FastRng.forTensor(3, `t${n}`, 2, 'dare');
      deltaWithHistogramJs(x, base, want, null);
      const wantSums = bernoulliPruneInPlace(want, jsRng, bernoulliThreshold31(density));
      const got = new Float32Array(n);
      const rng = FastRng.forTensor(3, `t${n}`, 2, 'dare');
      assert.deepEqual(deltaBernoulliPrune(x, base, got, rng, bernoulliThreshold31(density)), wantSums);
      sameBits(got, want, `n=${n} density=${density}`);
      assert.deepEqual(rng.getState(), jsRng.getState());
    }
  }
});

test('the WebAssembly bucket scan counts and records the same elements as a plain loop, in index order, up to its cap', () => {
  for (const n of [1, 7, 16383, 16385, 40009]) {
    const d = randomTensor(n + 5, n);
    const bits = new Int32Array(d.buffer);
    // a bucket that holds an element near the end, and bucket 0 (zeros; the chunk padding must not count)
    for (const hi of [(bits[n - 1]! & 0x7fffffff) >>> 16, 0]) {
      const wantLo = new Uint32Array(1 << 16);
      const wantIdx: number[] = [];
      for (let i = 0; i < n; i++) {
        const b = bits[i]! & 0x7fffffff;
        if (b >>> 16 === hi) {
          wantLo[b & 0xffff]!++;
          wantIdx.push(i);
        }
      }
      for (const cap of [1 << 20, 3]) {
        const lo = new Uint32Array(1 << 16).fill(9);
        const cand = new Int32Array(wantIdx.length + 4);
        const found = wasmBucketScan(d, hi, lo, cand, cap);
        assert.equal(found, wantIdx.length);
        assert.deepEqual(lo, wantLo);
        assert.deepEqual([...cand.subarray(0, Math.min(found, cap))], wantIdx.slice(0, cap));
      }
    }
  }
});

test('kernels reading and writing resident deltas in place give the bits of the staged path', () => {
  for (const n of [5, 16385, 40009]) {
    const m = 3;
    const base = randomTensor(n + 17, n);
    const xs = Array.from({ length: m }, (_, j) => randomTensor(n + 18 + j, n));
    const res = wasmDeltaScratch(m, n)!;
    assert.ok(res, 'resident scratch is available');
    const plain = Array.from({ length: m }, () => new Float32Array(n));
    const wantHist = new Uint32Array(HISTOGRAM_BUCKETS);
    const gotHist = new Uint32Array(HISTOGRAM_BUCKETS);
    const cut: number[] = [];
    for (let j = 0; j < m; j++) {
      deltaWithHistogramJs(xs[j]!, base, plain[j]!, wantHist);
      deltaWithHistogram(xs[j]!, base, res[j]!, gotHist);
      sameBits(res[j]!, plain[j]!, `delta ${j} n=${n}`);
      assert.deepEqual(gotHist, wantHist);
      const k = Math.max(1, Math.floor(n * 0.4));
      const want = magnitudeCut(plain[j]!, k, wantHist, true);
      const wantCand = want.candidates ? [...want.candidates] : null;
      const got = magnitudeCut(res[j]!, k, gotHist, true);
      assert.deepEqual({ ...got, candidates: got.candidates ? [...got.candidates] : null }, { ...want, candidates: wantCand });
      cut.push(got.bits);
    }
    const w = [0.5, -0.3, 0.9];
    for (const normalize of [true, false]) {
      const want = tiesMergeJs(base, plain, cut, w, w, normalize, 0.8, new Float32Array(n));
      const got = tiesMerge(base, res, cut, w, w, normalize, 0.8, new Float32Array(n));
      sameBits(got, want, `ties n=${n} normalize=${normalize}`);
    }
    const wantD = new Float32Array(n);
    deltaWithHistogramJs(xs[0]!, base, wantD, null);
    const wantSums = bernoulliPruneInPlace(wantD, FastRng.forTensor(1, 'r', 0, 'dare'), bernoulliThreshold31(0.5));
    assert.deepEqual(deltaBernoulliPrune(xs[0]!, base, res[1]!, FastRng.forTensor(1, 'r', 0, 'dare'), bernoulliThreshold31(0.5)), wantSums);
    sameBits(res[1]!, wantD, `fused Bernoulli n=${n}`);
  }
});
