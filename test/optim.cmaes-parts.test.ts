/**
 * The parts of CMA-ES that live beside the core (src/optim/restarts.ts, tpa.ts, bounds.ts and the
 * whitening kernels of linalg.ts), each on values computed by hand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromBox, toBox } from '../src/optim/bounds.ts';
import { invSqrtTimes, whiten } from '../src/optim/linalg.ts';
import { type BipopState, type RestartOptions, type StoppedRun, endsSearch, nextRun } from '../src/optim/restarts.ts';
import { mirrorMeanShift, tpaStep } from '../src/optim/tpa.ts';
import type { Rng } from '../src/tensor/rng.ts';

const close = (a: number, b: number, what: string, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

/** A stand-in for the state's RNG stream that returns the given uniforms in order. */
function uniforms(...values: number[]): Rng {
  return { next: () => { const v = values.shift(); assert.ok(v !== undefined, 'drew more uniforms than expected'); return v; } } as unknown as Rng;
}

const ipop: RestartOptions = { restarts: 'ipop', maxRestarts: 9, incPopsize: 2, restartFromRandom: false };
const bipop: RestartOptions = { ...ipop, restarts: 'bipop' };
const bip = (b: Partial<BipopState>): BipopState => ({ largeEvals: 0, smallEvals: 0, largeLambda: 7, regime: 'large', ...b });
const stopped = (s: Partial<StoppedRun>): StoppedRun => ({
  reason: 'tolfun', run: 0, lambda: 7, evaluations: 70, defaultLambda: 7, sigma0: 0.3, x0: [0.5, 0.5], bipop: bip({}), bounds: null, ...s,
});

test('a target or budget ends the search, other stops restart until maxRestarts', () => {
  assert.equal(endsSearch(ipop, { reason: 'ftarget', run: 0 }), true);
  assert.equal(endsSearch(ipop, { reason: 'maxfevals', run: 0 }), true);
  assert.equal(endsSearch(ipop, { reason: 'tolfun', run: 0 }), false);
  assert.equal(endsSearch(ipop, { reason: 'tolfun', run: 8 }), false);
  assert.equal(endsSearch(ipop, { reason: 'tolfun', run: 9 }), true);
  assert.equal(endsSearch({ ...ipop, restarts: 'none' }, { reason: 'tolfun', run: 0 }), true);
});

test('IPOP multiplies the population by incPopsize, rounded, and restarts from x0 without drawing', () => {
  assert.deepEqual(nextRun(ipop, stopped({}), uniforms()), { lambda: 14, sigma0: 0.3, x0: [0.5, 0.5], bipop: bip({}) });
  // 7 * 1.5 = 10.5 rounds to 11
  assert.equal(nextRun({ ...ipop, incPopsize: 1.5 }, stopped({}), uniforms()).lambda, 11);
});

test('a restart from a random mean draws one uniform per gene in the box', () => {
  const box = { lo: [0, -1], hi: [1, 1] };
  const next = nextRun({ ...ipop, restartFromRandom: true }, stopped({ bounds: box }), uniforms(0.2, 0.75));
  assert.deepEqual(next.x0, [0.2, 0.5]);
  // without a box there is nothing to draw in: x0 is kept
  assert.deepEqual(nextRun({ ...ipop, restartFromRandom: true }, stopped({}), uniforms()).x0, [0.5, 0.5]);
});

test('BIPOP: the first restart and a cheaper small regime grow the large population', () => {
  const after0 = nextRun(bipop, stopped({ run: 0, evaluations: 70 }), uniforms());
  assert.deepEqual(after0.bipop, { largeEvals: 70, smallEvals: 0, largeLambda: 14, regime: 'large' });
  assert.equal(after0.lambda, 14);
  assert.equal(after0.sigma0, 0.3);
  // a small run brought the small regime's budget to that of the large one: large again
  const even = nextRun(bipop, stopped({ run: 3, evaluations: 40, bipop: bip({ largeEvals: 100, smallEvals: 60, largeLambda: 14, regime: 'small' }) }), uniforms());
  assert.deepEqual(even.bipop, { largeEvals: 100, smallEvals: 100, largeLambda: 28, regime: 'large' });
});

test('BIPOP\'s small regime draws lambda and sigma0 log-uniformly, as computed by hand', () => {
  // largeEvals 300 > smallEvals 0 after the run: small. u = 0.5: lambda = floor(7 (0.5 * 28 / 7)^0.25)
  // = floor(7 * 1.189207) = 8; u' = 0.25: sigma0 = 0.3 * 10^-0.5 = 0.0948683
  const next = nextRun(bipop, stopped({ run: 2, evaluations: 200, bipop: bip({ largeEvals: 100, largeLambda: 28 }) }), uniforms(0.5, 0.25));
  assert.equal(next.bipop.regime, 'small');
  assert.equal(next.bipop.largeEvals, 300);
  assert.equal(next.lambda, 8);
  close(next.sigma0, 0.09486832980505137, 'sigma0');
  // u = 0: the default population; lambda is never below 2
  assert.equal(nextRun(bipop, stopped({ run: 2, bipop: bip({ largeEvals: 100, largeLambda: 28 }) }), uniforms(0, 0)).lambda, 7);
  assert.equal(nextRun(bipop, stopped({ run: 2, defaultLambda: 2, bipop: bip({ largeEvals: 100, largeLambda: 2 }) }), uniforms(1, 0)).lambda, 2);
});

test('TPA\'s step follows the rank difference of the two mirrored points, as computed by hand', () => {
  // f = [3, 1, 2, 0]: 3 values below f_0, 1 below f_1, z = (1 - 3) / 3 = -2/3;
  // s = 0.3 * -sqrt(2/3) = -0.2449490; d = 0.7 + 2 ln 2 + 2 ln 2 = 3.4725887; sigma = exp(s / d)
  const t = tpaStep([3, 1, 2, 0], 4, 2, 0, 1);
  close(t.s, -0.2449489742783178, 's');
  close(t.sigma, 0.9318924581739203, 'sigma');
  // the point along the shift won (f_0 best): s grows from its old value, sigma with it
  const up = tpaStep([0, 3, 1, 2], 4, 2, 0.1, 2);
  close(up.s, 0.07 + 0.3, 's after a win');
  assert.ok(up.sigma > 2);
});

test('TPA\'s mirrors replace the first two samples by the whitened shift at the first sample\'s length', () => {
  const Z = new Float64Array([3, 4, 1, 0, 5, 5]);
  assert.equal(mirrorMeanShift(Z, new Float64Array([1, 0]), 2, false), 2);
  assert.deepEqual([...Z], [5, 0, -5, -0, 5, 5]);
  // on a run's second iteration the second point keeps its own length (|z_1| = 1)
  const Z2 = new Float64Array([3, 4, 1, 0, 5, 5]);
  mirrorMeanShift(Z2, new Float64Array([0, 2]), 2, true);
  assert.deepEqual([...Z2], [0, 5, -0, -1, 5, 5]);
  // no shift: nothing replaced
  const Z3 = new Float64Array([3, 4, 1, 0]);
  assert.equal(mirrorMeanShift(Z3, new Float64Array([0, 0]), 2, false), 0);
  assert.deepEqual([...Z3], [3, 4, 1, 0]);
});

test('whitening and C^-1/2 agree with C = [[2, 1], [1, 2]] worked by hand', () => {
  // eigenvalues 1 and 3 with eigenvectors (1, -1)/sqrt2 and (1, 1)/sqrt2 (stored as rows)
  const r = Math.SQRT1_2;
  const B = [r, -r, r, r];
  const D = [1, Math.sqrt(3)];
  // C^-1/2 e_1 = (1/2) (1 + 1/sqrt3, 1/sqrt3 - 1)
  const c = invSqrtTimes(B, D, false, [1, 0], 2);
  close(c[0]!, 0.7886751345948129, 'C^-1/2 [0]');
  close(c[1]!, -0.21132486540518708, 'C^-1/2 [1]');
  // |D^-1 B^T e_1|^2 = e_1^T C^-1 e_1 = 2/3
  const w = whiten(B, D, false, [1, 0], 2);
  close(w[0]! ** 2 + w[1]! ** 2, 2 / 3, 'e_1^T C^-1 e_1');
  // separable: both are v / D
  assert.deepEqual([...whiten([], [2, 4], true, [1, 2], 2)], [0.5, 0.5]);
  assert.deepEqual([...invSqrtTimes([], [2, 4], true, [1, 2], 2)], [0.5, 0.5]);
});

test('internal points map into the box and interior genomes map back unchanged', () => {
  const box = { lo: [0, -2], hi: [1, 3] };
  assert.deepEqual(toBox(box, [0.5, 1.2]), [0.5, 1.2]);
  close(toBox({ lo: [0], hi: [1] }, [1.2])[0]!, 0.9, 'x = 1.2 reflects to 0.9');
  assert.deepEqual(fromBox(box, [0.5, 1.2]), [0.5, 1.2]);
  const x = [0.3, 5];
  const copy = toBox(null, x);
  assert.deepEqual(copy, x);
  assert.notEqual(copy, x, 'a copy, not the same array');
});
