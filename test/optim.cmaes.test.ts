import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  boxTransform, boxTransformInverse, cmaes, cmaesParams, defaultPopsize, sepCmaes, symmetricEigen, tpaDamping, type CmaesState,
} from '../src/optim/index.ts';
import { getOptimizer } from '../src/optim/index.ts';
import { Rng } from '../src/tensor/rng.ts';
import { benchFunctions, mulberry32 } from '../src/bench/optimizer.ts';

const close = (a: number, b: number, rel = 1e-4, what = '') => assert.ok(Math.abs(a - b) <= rel * Math.abs(b) + 1e-12, `${what}: ${a} vs ${b}`);

test('strategy parameters for n = 10 equal pycma values computed by hand', () => {
  // Hand computation (pycma formulas, see src/optim/cmaes-params.ts): raw w'_i = ln 5.5 - ln i, positive sum 3.73618
  const p = cmaesParams(10, defaultPopsize(10), false);
  assert.equal(p.lambda, 10);
  assert.equal(p.mu, 5);
  close(p.weights[0]!, 0.45627, 1e-4, 'w1 (pycma prints w_1=45%)');
  close(p.mueff, 3.1672, 1e-4, 'mueff (pycma prints mu_w=3.2)');
  close(p.c1, 2 / (11.3 ** 2 + 3.1672), 1e-4, 'c1');
  close(p.cmu, 0.02355, 1e-3, 'cmu');
  close(p.cc, 4.31672 / 14.63344, 1e-4, 'cc');
  close(p.cs, 5.1672 / 16.1672, 1e-4, 'cs');
  close(p.damps, 1 + 5.1672 / 16.1672, 1e-4, 'damps');
  // negative weights: sum |w-| = 1 + c1/cmu = 1.6490 (both limits, 4.08 and 2.54, are larger)
  close(-p.weights.slice(5).reduce((a, b) => a + b, 0), 1.649, 1e-3, 'sum of negative weights');
  close(p.weights[9]!, -0.5978 * (1.649 / 1.7932), 2e-3, 'w10');
  close(p.weights.slice(0, 5).reduce((a, b) => a + b, 0), 1, 1e-12, 'positive weights sum to 1');
});

test('separable learning rates for n = 10 equal pycma c1_sep, cmu_sep and cc_sep computed by hand', () => {
  const p = cmaesParams(10, 10, true);
  close(p.c1, 1 / (10 + 2 * Math.sqrt(10) + 0.31672), 1e-4, 'c1_sep');
  close(p.cmu, 1.73293 / (10 + 4 * Math.sqrt(10) + 1.5836), 1e-4, 'cmu_sep');
  close(p.cc, 1.41672 / (Math.sqrt(10) + 0.1 + 0.63344), 1e-4, 'cc_sep');
});

test('learning rates stay capped with the huge populations of late IPOP restarts', () => {
  for (const [n, sep] of [[2, true], [2, false], [10, true], [40, true]] as const) {
    const p = cmaesParams(n, defaultPopsize(n) * 2 ** 9, sep);
    assert.ok(p.c1 + p.cmu <= 1 + 1e-12, `n=${n} sep=${sep}: c1 + cmu = ${p.c1 + p.cmu}`);
    assert.ok(p.cc <= 1 && p.cs <= 1);
    const decay = 1 - p.c1 - p.cmu * p.weights.reduce((a, b) => a + b, 0);
    assert.ok(sep || decay >= -1e-12, `decay ${decay}`);
  }
});

test('the box transform is the identity inside and maps everything into the box, as hand-computed', () => {
  // [0, 1]: margins al = au = min(1/20, 1/20) = 0.05
  assert.equal(boxTransform(0.5, 0, 1), 0.5);
  assert.equal(boxTransform(0.2, 0, 1), 0.2);
  close(boxTransform(0, 0, 1), 0.0125, 1e-12, 'x = 0: (0.05)^2 / 0.2');
  close(boxTransform(-0.05, 0, 1), 0, 1e-12, 'x = lo - al');
  close(boxTransform(1.2, 0, 1), 0.9, 1e-12, 'x = 1.2 reflects to 0.9');
  for (let x = -50; x <= 50; x += 0.37) {
    const y = boxTransform(x, -2, 3);
    assert.ok(y >= -2 && y <= 3, `${x} -> ${y}`);
  }
  for (const y of [0, 0.01, 0.03, 0.5, 0.97, 1]) close(boxTransform(boxTransformInverse(y, 0, 1), 0, 1), y, 1e-9, `inverse at ${y}`);
});

test('the symmetric eigensolver returns hand-computed eigenpairs and reconstructs random matrices', () => {
  const e = symmetricEigen(new Float64Array([2, 1, 1, 2]), 2);
  close(e.values[0]!, 1, 1e-12, 'lambda1');
  close(e.values[1]!, 3, 1e-12, 'lambda2');
  close(Math.abs(e.vectors[2]!), Math.SQRT1_2, 1e-12, 'v2 = (1,1)/sqrt2');
  const rng = Rng.seeded('eig');
  for (const n of [1, 3, 17, 40]) {
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = rng.normal();
    const { values, vectors } = symmetricEigen(a, n);
    for (let j = 1; j < n; j++) assert.ok(values[j]! >= values[j - 1]!);
    let err = 0;
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < n; k++) {
        let s = 0;
        for (let j = 0; j < n; j++) s += vectors[j * n + i]! * values[j]! * vectors[j * n + k]!;
        err = Math.max(err, Math.abs(s - a[i * n + k]!));
      }
    }
    assert.ok(err < 1e-10, `n=${n}: reconstruction error ${err}`);
  }
});

test('the eigendecomposition is updated lazily on pycma\'s schedule', () => {
  for (const n of [5, 60]) {
    let s: CmaesState = cmaes.init(n, { x0: new Array(n).fill(1), sigma0: 0.5, bounds: null }, 'lazy');
    const gap = s.params.lazyGap;
    const updatedAt: number[] = [];
    for (let g = 0; g < 8; g++) {
      const before = s.eigenAt;
      const a = cmaes.ask(s);
      if (a.state.eigenAt !== before) updatedAt.push(a.state.iteration);
      s = cmaes.tell(a.state, a.proposals.map((p) => ({ id: p.id, fitness: -benchFunctions.ellipsoid(p.genome) })));
    }
    const expected: number[] = [];
    let last = 0;
    for (let it = 1; it < 8; it++) if (!(it < last + gap)) expected.push((last = it));
    assert.deepEqual(updatedAt, expected, `n=${n}, gap=${gap}`);
  }
});

test('CMA-ES reaches 1e-10 on a 5-D sphere inside the unit box within 2000 evaluations', () => {
  for (const opt of [cmaes, sepCmaes]) {
    let s = opt.init(5, { bounds: [0, 1], sigma0: 0.3 }, 'conv');
    while (!opt.isDone(s) && s.evaluations < 2000 && !(s.best && s.best.fitness > -1e-10)) {
      const a = opt.ask(s);
      s = opt.tell(a.state, a.proposals.map((p) => ({ id: p.id, fitness: -p.genome.reduce((t, x, i) => t + (x - 0.2 - 0.1 * i) ** 2, 0) })));
    }
    assert.ok(s.best!.fitness > -1e-10, `${opt.id}: best ${s.best!.fitness} after ${s.evaluations}`);
  }
});

test('an optimum outside the box is approached at the bound, and [0, 1] is the default box', () => {
  let s = cmaes.init(3, {}, 'edge');
  for (let g = 0; g < 150 && !cmaes.isDone(s); g++) {
    const a = cmaes.ask(s);
    s = cmaes.tell(a.state, a.proposals.map((p) => ({ id: p.id, fitness: -p.genome.reduce((t, x) => t + (x - 1.5) ** 2, 0) })));
  }
  for (const x of s.best!.genome) assert.ok(x > 0.999 && x <= 1, `coordinate ${x}`);
});

test('IPOP restarts double the population and mark the first proposals of a run as restart', () => {
  let s: CmaesState = cmaes.init(3, { bounds: [0, 1], restarts: 'ipop', maxRestarts: 2 }, 'ipop');
  const lambdas: number[] = [];
  const ops = new Set<string>();
  for (let g = 0; g < 200 && !cmaes.isDone(s); g++) {
    const a = cmaes.ask(s);
    if (!lambdas.includes(a.proposals.length)) lambdas.push(a.proposals.length);
    for (const p of a.proposals) ops.add(p.operator);
    // a flat objective: every run ends at once on tolfun (pycma tests tolfun before flat fitness)
    s = cmaes.tell(a.state, a.proposals.map((p) => ({ id: p.id, fitness: 1 })));
  }
  const l0 = defaultPopsize(3);
  assert.deepEqual(lambdas, [l0, 2 * l0, 4 * l0]);
  assert.equal(cmaes.isDone(s), 'tolfun');
  assert.ok(ops.has('init') && ops.has('restart'), [...ops].join());
});

test('BIPOP alternates a growing large regime with small populations and smaller step sizes', () => {
  let s: CmaesState = cmaes.init(4, { bounds: [0, 1], restarts: 'bipop', maxRestarts: 8 }, 'bipop');
  const runs: Array<{ lambda: number; sigma0: number; regime: string }> = [];
  let run = -1;
  for (let g = 0; g < 400 && !cmaes.isDone(s); g++) {
    if (s.run !== run) {
      run = s.run;
      runs.push({ lambda: s.runLambda, sigma0: s.runSigma0, regime: s.bipop.regime });
    }
    const a = cmaes.ask(s);
    s = cmaes.tell(a.state, a.proposals.map((p) => ({ id: p.id, fitness: 1 })));
  }
  assert.equal(runs.length, 9);
  const large = runs.filter((r, i) => i > 0 && r.regime === 'large');
  const small = runs.filter((r) => r.regime === 'small');
  assert.ok(large.length > 0 && small.length > 0, JSON.stringify(runs));
  for (let i = 1; i < large.length; i++) assert.equal(large[i]!.lambda, 2 * large[i - 1]!.lambda);
  for (const r of small) assert.ok(r.lambda <= large[large.length - 1]!.lambda && r.sigma0 <= runs[0]!.sigma0);
});

test('the benchmark start points reproduce the check values of the protocol', () => {
  const u = mulberry32(1000 * 10 + 1);
  const x = [0, 1, 2].map(() => -3 + 6 * u());
  assert.deepEqual(x, [2.5910029713995755, -0.45813772827386856, -0.08582362113520503]);
});

test('bulk normals are a pure function of the stream state and look standard normal', () => {
  const r = Rng.seeded('normals');
  r.normal(); // leaves a Box-Muller spare, which fillNormal must not disturb
  const saved = JSON.parse(JSON.stringify(r.state()));
  const a = r.fillNormal(new Float64Array(20001));
  const b = Rng.fromState(saved).fillNormal(new Float64Array(20001));
  assert.deepEqual(a, b);
  const mean = a.reduce((s, v) => s + v, 0) / a.length;
  const variance = a.reduce((s, v) => s + v * v, 0) / a.length - mean * mean;
  assert.ok(Math.abs(mean) < 0.03 && Math.abs(variance - 1) < 0.05, `mean ${mean}, variance ${variance}`);
  assert.equal(r.normal(), Rng.fromState(saved).normal(), 'the spare is kept');
});

test('a run on pure noise ends on tolstagnation once pycma\'s history is long enough', () => {
  const noise = Rng.seeded('noise');
  let s: CmaesState = cmaes.init(2, { x0: [0, 0], sigma0: 1, bounds: null }, 'stag');
  while (!cmaes.isDone(s) && s.iteration < 3000) {
    const a = cmaes.ask(s);
    s = cmaes.tell(a.state, a.proposals.map((p) => ({ id: p.id, fitness: noise.next() })));
  }
  assert.equal(cmaes.isDone(s), 'tolstagnation');
  // more than 100 entries recorded every 5th iteration
  assert.ok(s.iteration > 500 && s.iteration < 1000, `stopped at iteration ${s.iteration}`);
});

test('a step size that grows a thousandfold ends the run on tolfacupx', () => {
  // a linear function far from any optimum: sigma grows without bound
  let s: CmaesState = cmaes.init(3, { x0: [0, 0, 0], sigma0: 1e-3, bounds: null }, 'up');
  while (!cmaes.isDone(s) && s.iteration < 2000) {
    const a = cmaes.ask(s);
    s = cmaes.tell(a.state, a.proposals.map((p) => ({ id: p.id, fitness: p.genome[0]! })));
  }
  assert.equal(cmaes.isDone(s), 'tolfacupx');
  assert.ok(s.sigma * Math.sqrt(Math.max(s.C[0]!, s.C[4]!, s.C[8]!)) > 1);
});

test('one generation updates mean, paths, step size and covariance as the tutorial equations give them', () => {
  const n = 3;
  const s0 = cmaes.init(n, { x0: [0.5, -1, 2], sigma0: 0.7, bounds: null }, 'one');
  const a = cmaes.ask(s0);
  const f = (x: number[]) => (x[0]! - 1) ** 2 + 3 * (x[1]! + 0.5) ** 2 + x[2]! ** 2;
  const s1 = cmaes.tell(a.state, a.proposals.map((p) => ({ id: p.id, fitness: -f(p.genome) })));
  const P = s0.params;
  const m0 = s0.mean;
  const sig = s0.sigma;
  // recomputed independently with C = I (so y = z and C^-1/2 = I)
  const ranked = a.proposals.map((p) => p.genome).sort((x, y) => f(x) - f(y));
  const ys = ranked.map((x) => x.map((v, i) => (v - m0[i]!) / sig));
  const m = [0, 1, 2].map((i) => ranked.slice(0, P.mu).reduce((t, x, r) => t + P.weights[r]! * x[i]!, 0)); // eq. (41)
  const yw = m.map((v, i) => (v - m0[i]!) / sig);
  const ps = yw.map((v) => Math.sqrt(P.cs * (2 - P.cs) * P.mueff) * v); // eq. (43)
  const psNorm = Math.hypot(...ps);
  const hsig = psNorm ** 2 / (1 - (1 - P.cs) ** 2) / n < 2 + 4 / (n + 1) ? 1 : 0;
  const pc = yw.map((v) => hsig * Math.sqrt(P.cc * (2 - P.cc) * P.mueff) * v); // eq. (45)
  const sigma = sig * Math.exp(Math.min(1, (P.cs / P.damps) * (psNorm / P.chiN - 1))); // eq. (44)
  const c1a = P.c1 * (1 - (1 - hsig) * P.cc * (2 - P.cc));
  const sumW = P.weights.reduce((t, w) => t + w, 0);
  for (let i = 0; i < n; i++) {
    close(s1.mean[i]!, m[i]!, 1e-12, `mean[${i}]`);
    close(s1.ps[i]!, ps[i]!, 1e-12, `ps[${i}]`);
    close(s1.pc[i]!, pc[i]!, 1e-12, `pc[${i}]`);
    for (let j = 0; j < n; j++) {
      // eq. (47), negative weights scaled by n / ||y||^2 (eq. 46)
      let c = (i === j ? 1 : 0) * (1 - c1a - P.cmu * sumW) + P.c1 * pc[i]! * pc[j]!;
      ys.forEach((y, r) => {
        const w = P.weights[r]! < 0 ? (P.weights[r]! * n) / y.reduce((t, v) => t + v * v, 0) : P.weights[r]!;
        c += P.cmu * w * y[i]! * y[j]!;
      });
      close(s1.C[i * n + j]!, c, 1e-7, `C[${i}][${j}]`);
    }
  }
  close(s1.sigma, sigma, 1e-12, 'sigma');
});

test('separable strategy parameters for n = 1000 equal pycma c1_sep, cmu_sep, cc_sep, cs and damps computed by hand', () => {
  // Hand computation: lambda = 4 + floor(3 ln 1000) = 24, mu = 12, mueff = 7.026376 (log weights).
  // pycma options_parameters.CMAParameters.set: c1_sep = 1/(n + 2 sqrt(n) + mueff/n) = 1/1063.2526;
  // cmu_sep = (0.25 + mueff + 1/mueff - 2)/(n + 4 sqrt(n) + mueff/2) = 5.418697/1130.0043;
  // cc_sep = (1 + 1/n + mueff/n)/(sqrt(n) + 1/n + 2 mueff/n) = 1.0080264/31.637833;
  // sigma_adaptation.CMAAdaptSigmaCSA: cs = (mueff + 2)/(n + mueff + 3) = 9.026376/1010.026376,
  // damps = 1 + cs because 3 sqrt((mueff - 1)/(n + 1)) = 0.233 < 1 (no mueff term).
  const p = cmaesParams(1000, defaultPopsize(1000), true);
  assert.equal(p.lambda, 24);
  assert.equal(p.mu, 12);
  close(p.mueff, 7.026376, 1e-6, 'mueff');
  close(p.c1, 9.405103e-4, 1e-6, 'c1_sep');
  close(p.cmu, 4.795288e-3, 1e-6, 'cmu_sep');
  close(p.cc, 0.03186143, 1e-6, 'cc_sep');
  close(p.cs, 8.936772e-3, 1e-6, 'cs');
  close(p.damps, 1.008936772, 1e-9, 'damps');
  // negative weights finalised with c1_sep and cmu_sep (pos_def=False): sum |w-| = 1 + c1/cmu
  close(-p.weights.slice(12).reduce((a, b) => a + b, 0), 1.1961322, 1e-6, 'sum of negative weights');
});

test('TPA damping equals pycma CMAAdaptSigmaTPA values computed by hand', () => {
  // pycma's doctest: N = 2, lambda = 6 gives damp in (4.85888, 4.85889): 0.7 + 2 ln 2 + 2 ln 4
  close(tpaDamping(2, 6), 4.858883, 1e-6, 'n=2');
  // n = 1000, lambda = 24: 0.7 + 2 ln 1000 = 14.515511 (lambda - n < 1 adds nothing)
  close(tpaDamping(1000, 24), 14.515511, 1e-6, 'n=1000');
  // the lambda - n term (pycma's TPA damping for large populations): n = 10, lambda = 100: 0.7 + 2 ln 10 + 2 ln 90 = 0.7 + 4.605170 + 8.999619
  close(tpaDamping(10, 100), 14.304789, 1e-6, 'n=10, lambda=100');
});

test('step-size adaptation follows pycma: TPA for the separable variant above 299 dimensions, CSA otherwise', () => {
  const hasTpa = (s: CmaesState) => s.tpa !== undefined;
  assert.equal(hasTpa(sepCmaes.init(300, { bounds: null }, 1)), true);
  assert.equal(hasTpa(sepCmaes.init(299, { bounds: null }, 1)), false);
  assert.equal(hasTpa(cmaes.init(300, { bounds: null }, 1)), false);
  assert.equal(hasTpa(sepCmaes.init(300, { bounds: null, stepSize: 'csa' }, 1)), false);
  assert.equal(hasTpa(cmaes.init(5, { bounds: null, stepSize: 'tpa' }, 1)), true);
});

/** f-values in asked order that rank point `best` first, point `worst` last and the rest by index. */
function ranked(lambda: number, best: number, worst: number): number[] {
  const f = Array.from({ length: lambda }, (_, k) => 10 + k);
  f[best] = 0;
  f[worst] = 1000;
  return f;
}

test('TPA asks the mean shift and its mirror first and adapts sigma by their rank difference, as computed by hand', () => {
  const n = 400;
  const lambda = defaultPopsize(n); // 4 + floor(3 ln 400) = 21
  assert.equal(lambda, 21);
  const damp = 0.7 + 2 * Math.log(400);
  let s = sepCmaes.init(n, { bounds: null, sigma0: 0.5, x0: new Array(n).fill(1) }, 'tpa');
  const sigmas = [s.sigma];
  // generation 1: ordinary samples; point 0 wins, point 1 loses: z = (20 - 0) / 20 = 1, s = 0.3
  // generation 2: point 1 wins, point 0 loses: z = -1, s = 0.7 * 0.3 - 0.3 = -0.09
  // generation 3: point 0 second best (one value below it), point 1 sixth (five below): z = 4/20
  const plans = [ranked(lambda, 0, 1), ranked(lambda, 1, 0), null];
  const expectS = [0.3, -0.09, 0.7 * -0.09 + 0.3 * Math.sqrt(4 / 20)];
  for (let g = 0; g < 3; g++) {
    const a = sepCmaes.ask(s);
    const m = a.state.mean;
    if (g > 0) {
      // the first two points lie on the line through m along the last mean shift, on both sides
      const dir = a.state.tpa!.dir;
      const d0 = a.proposals[0]!.genome.map((x, i) => x - m[i]!);
      const d1 = a.proposals[1]!.genome.map((x, i) => x - m[i]!);
      const t0 = d0[0]! / dir[0]!;
      const t1 = d1[0]! / dir[0]!;
      assert.ok(t0 > 0 && t1 < 0, `generation ${g}: the first point goes along the shift, the second against it`);
      for (let i = 0; i < n; i++) {
        close(d0[i]!, t0 * dir[i]!, 1e-9, `generation ${g}: point 0 along the shift, coordinate ${i}`);
        close(d1[i]!, t1 * dir[i]!, 1e-9, `generation ${g}: point 1 along the shift, coordinate ${i}`);
      }
      // Mahalanobis length |(x - m) / (sigma D)|: a chi_n draw, near sqrt(n) = 20
      const len0 = Math.sqrt(d0.reduce((t, v, i) => t + (v / a.state.sigma / a.state.D[i]!) ** 2, 0));
      assert.ok(Math.abs(len0 - Math.sqrt(n)) < 5, `generation ${g}: length ${len0}`);
      // from the run's third iteration on the second point is the exact mirror of the first
      if (g === 2) for (let i = 0; i < n; i++) close(d1[i]!, -d0[i]!, 1e-12, `mirror, coordinate ${i}`);
      else assert.notEqual(Math.abs(t0), Math.abs(t1), 'on the second iteration both lengths are drawn');
    }
    let f = plans[g];
    if (!f) {
      // generation 3: f = 1 < 1.5 (point 0) < 2 < 3 < 4 < 4.5 (point 1) < the rest
      f = Array.from({ length: lambda }, (_, k) => 100 + k);
      f[0] = 1.5;
      f[1] = 4.5;
      [1, 2, 3, 4].forEach((v, j) => (f![2 + j] = v));
    }
    s = sepCmaes.tell(a.state, a.proposals.map((p, k) => ({ id: p.id, fitness: -f![k]! })));
    close(s.tpa!.s, expectS[g]!, 1e-12, `s after generation ${g + 1}`);
    sigmas.push(s.sigma);
    close(sigmas[g + 1]! / sigmas[g]!, Math.exp(expectS[g]! / damp), 1e-12, `sigma factor of generation ${g + 1}`);
    // the next mirrors follow the mean shift of this generation
    for (let i = 0; i < 3; i++) close(s.tpa!.dir[i]!, s.mean[i]! - a.state.mean[i]!, 1e-12, 'dir = m - m_old');
  }
});

test('sep-CMA-ES updates the variances by pycma\'s exponential rule without negative weight for TPA mirrors', () => {
  const n = 320;
  let s = sepCmaes.init(n, { bounds: null, sigma0: 0.3, x0: new Array(n).fill(0.5) }, 'sep-var');
  const fx = (x: number[]) => x.reduce((t, v, i) => t + (1 + (i % 7)) * v * v, 0);
  for (let g = 0; g < 3; g++) {
    const a = sepCmaes.ask(s);
    const fs = a.proposals.map((p) => fx(p.genome));
    if (g === 2) {
      // make both mirrors rank last, so the active update would give them negative weights
      fs[0] = 1e9;
      fs[1] = 1e9 + 1;
    }
    const next = sepCmaes.tell(a.state, a.proposals.map((p, k) => ({ id: p.id, fitness: -fs[k]! })));
    if (g === 2) {
      const P = a.state.params;
      const lambda = P.lambda;
      const order = fs.map((_, k) => k).sort((x, y) => fs[x]! - fs[y]! || x - y);
      assert.deepEqual(order.slice(-2), [0, 1]);
      const c1a = P.c1 * (next.ps.reduce((t, v) => t + v * v, 0) / (1 - (1 - P.cs) ** 6) / n < 2 + 4 / (n + 1) ? 1 : 1 - P.cc * (2 - P.cc));
      for (const i of [0, 5, 319]) {
        let e = c1a * next.pc[i]! ** 2;
        let wsum = c1a;
        for (let r = 0; r < lambda; r++) {
          const k = order[r]!;
          if (P.weights[r]! < 0 && k < 2) continue; // mirrors: pycma CMA_active_injected = 0
          const zi = (a.proposals[k]!.genome[i]! - a.state.mean[i]!) / a.state.sigma / a.state.D[i]!;
          e += P.cmu * P.weights[r]! * zi * zi;
          wsum += P.cmu * P.weights[r]!;
        }
        close(next.C[i]!, a.state.C[i]! * 2 ** (e - wsum), 1e-10, `variance ${i}`);
      }
    }
    s = next;
  }
});

test('a TPA state survives a JSON round trip mid-run and asks the same points', () => {
  const n = 300;
  const fx = (x: number[]) => x.reduce((t, v) => t + v * v, 0);
  let s = sepCmaes.init(n, { bounds: null, x0: new Array(n).fill(1) }, 'rt');
  for (let g = 0; g < 4; g++) {
    const a = sepCmaes.ask(s);
    s = sepCmaes.tell(a.state, a.proposals.map((p) => ({ id: p.id, fitness: -fx(p.genome) })));
  }
  const copy = JSON.parse(JSON.stringify(s)) as CmaesState;
  assert.deepEqual(sepCmaes.ask(copy).proposals, sepCmaes.ask(s).proposals);
});

const FLAT_STOPS = ['tolfun', 'tolflatfitness', 'tolfunhist', 'tolstagnation'];

/** One generation told in asked order: `fit(genome, k)` per point, `null` for a failure. */
function generation(opt: typeof cmaes, s: CmaesState, fit: (x: number[], k: number) => number | null): CmaesState {
  const a = opt.ask(s);
  return opt.tell(a.state, a.proposals.map((p, k) => ({ id: p.id, fitness: fit(p.genome, k) })));
}

test('a run told only failures for 50 generations never stops for flat fitness and keeps its distribution', () => {
  const runs: Array<[typeof cmaes, number, Record<string, unknown>]> = [
    [cmaes, 5, {}], [cmaes, 12, {}], [sepCmaes, 12, {}], [cmaes, 5, { stepSize: 'tpa' }], [cmaes, 5, { restarts: 'ipop' }],
  ];
  for (const [opt, n, o] of runs) {
    const what = `${opt.id} n=${n} ${JSON.stringify(o)}`;
    const s0 = opt.init(n, o, 'all-failed');
    let s = s0;
    let firstGenome: number[] | null = null;
    for (let g = 0; g < 50; g++) {
      const a = opt.ask(s);
      if (g === 1) assert.notDeepEqual(a.proposals[0]!.genome, firstGenome, `${what}: a failed generation is resampled afresh`);
      firstGenome = a.proposals[0]!.genome;
      s = opt.tell(a.state, a.proposals.map((p) => ({ id: p.id, fitness: null })));
      assert.equal(opt.isDone(s), null, `${what}: done with ${opt.isDone(s)} after generation ${g + 1}`);
    }
    // nothing was learnt from index order: no mean shift, no sigma inflation, no history entry
    assert.equal(s.iteration, 50, what);
    assert.deepEqual(s.mean, s0.mean, what);
    assert.equal(s.sigma, s0.sigma, what);
    assert.deepEqual(s.C, s0.C, what);
    assert.equal(s.flatCount, 0, what);
    assert.deepEqual([s.histFit, s.histBest, s.histMedian], [[], [], []], what);
    assert.equal(s.run, 0, `${what}: no restart`);
  }
});

test('a run told only failures stops at maxiter and maxEvaluations when those limits are reached', () => {
  let s = cmaes.init(5, { maxiter: 20 }, 'fail-maxiter');
  while (!cmaes.isDone(s)) s = generation(cmaes, s, () => null);
  assert.equal(cmaes.isDone(s), 'maxiter');
  assert.equal(s.iteration, 20);
  let t = cmaes.init(12, { maxEvaluations: 110 }, 'fail-maxfevals');
  while (!cmaes.isDone(t)) t = generation(cmaes, t, () => null);
  assert.equal(cmaes.isDone(t), 'maxfevals');
  assert.equal(t.evaluations, 110);
});

test('a run with all-equal real fitness still stops with tolflatfitness as pycma does, inflating sigma each time', () => {
  // tolfun 0 so that pycma's earlier tolfun test cannot fire first
  const s0 = cmaes.init(5, { tolfun: 0 }, 'flat');
  const s1 = generation(cmaes, s0, () => 1);
  assert.equal(s1.flatCount, 1);
  assert.equal(cmaes.isDone(s1), null, 'one flat generation is allowed (tolflatfitness = 1)');
  const s2 = generation(cmaes, s1, () => 1);
  assert.equal(s2.flatCount, 2);
  assert.equal(cmaes.isDone(s2), 'tolflatfitness');
  // CSA factor of the generation times pycma's flat-fitness factor exp(0.2 + cs/damps)
  const P = s1.params;
  const csa = Math.exp(Math.max(-1, Math.min(1, (P.cs / P.damps) * (Math.hypot(...s2.ps) / P.chiN - 1))));
  close(s2.sigma, s1.sigma * csa * Math.exp(0.2 + P.cs / P.damps), 1e-12, 'sigma');
});

test('a run whose failures are mixed with real flat values stops on the same test and iteration as the real values alone', () => {
  // every third point fails; flatIdx = ceil(0.1 + 8/4) = 3 < 5 real values per generation of 8
  for (const [o, reason, iteration] of [[{}, 'tolfun', 1], [{ tolfun: 0 }, 'tolflatfitness', 2]] as const) {
    const stops: Array<[string | null, number]> = [];
    for (const failing of [false, true]) {
      let s = cmaes.init(5, o, 'mixed-flat');
      while (!cmaes.isDone(s) && s.iteration < 100) s = generation(cmaes, s, (_, k) => (failing && k % 3 === 1 ? null : 1));
      stops.push([cmaes.isDone(s), s.iteration]);
    }
    assert.deepEqual(stops, [[reason, iteration], [reason, iteration]], JSON.stringify(o));
  }
});

test('a run whose failures are mixed with real values keeps the flat count and histories its real values give', () => {
  // a plateau-rich objective (f rounded to 0.5) with failures among the best points, so that
  // some generations have fewer real values than the flat test needs
  const n = 4;
  let s = cmaes.init(n, { bounds: [0, 1], sigma0: 0.3 }, 'mixed');
  const lambda = s.params.lambda;
  const flatIdx = Math.min(lambda - 1, Math.ceil(0.1 + lambda / 4));
  const fOf = (x: number[]) => Math.round(2 * x.reduce((t, v) => t + (v - 0.3) ** 2, 0) * 10) / 2;
  let flat = 0;
  let hist: number[] = [];
  let sawFew = false;
  let sawFlat = false;
  for (let g = 1; g <= 60 && !cmaes.isDone(s); g++) {
    const a = cmaes.ask(s);
    const fails = g % 4 === 0 ? lambda - 2 : g % 3; // some generations keep only 2 real values
    const outs = a.proposals.map((p, k) => ({ id: p.id, fitness: k < fails ? null : -fOf(p.genome) }));
    s = cmaes.tell(a.state, outs);
    const real = outs.filter((o) => o.fitness !== null).map((o) => -o.fitness!).sort((x, y) => x - y);
    if (real.length > flatIdx) {
      flat = real[0] === real[flatIdx] ? flat + 1 : 0;
      sawFlat ||= real[0] === real[flatIdx];
    } else {
      sawFew = true;
    }
    hist = [...hist, real[0]!].slice(-Math.floor(10 + (30 * n) / lambda));
    assert.equal(s.flatCount, flat, `flatCount after generation ${g}`);
    assert.deepEqual(s.histFit, hist, `histFit after generation ${g}`);
    for (const v of [...s.histBest, ...s.histMedian]) assert.ok(v < 1e300, `a failure in the histories after generation ${g}`);
    assert.ok(!FLAT_STOPS.includes(cmaes.isDone(s) ?? '') || real.length >= 2, `stopped on ${cmaes.isDone(s)} with ${real.length} real values`);
  }
  assert.ok(sawFew && sawFlat, `few: ${sawFew}, flat: ${sawFlat}`);
});

test('a state saved with failure constants in its histories still loads, and the constants are dropped', () => {
  let s = cmaes.init(3, { bounds: [0, 1] }, 'old-state');
  for (let g = 0; g < 4; g++) s = generation(cmaes, s, (x) => -x.reduce((t, v) => t + v * v, 0));
  // as the previous version stored an all-failed generation (Number.MAX_VALUE in JSON)
  const old = JSON.parse(JSON.stringify({ ...s, histFit: [...s.histFit, Number.MAX_VALUE], histBest: [Number.MAX_VALUE], histMedian: [Number.MAX_VALUE] })) as CmaesState;
  let t = old;
  for (let g = 0; g < 6; g++) t = generation(cmaes, t, (x) => -x.reduce((u, v) => u + v * v, 0));
  assert.equal(cmaes.isDone(t), null);
  assert.equal(t.histFit.length, s.histFit.length + 6);
  for (const v of [...t.histFit, ...t.histBest, ...t.histMedian]) assert.ok(v < 1e300);
  assert.equal(t.histBest.length, 2, 'iterations 5 and 10, the old entry dropped');
});

// ---- warm start by initial points (option `initial`) ----

/** Evaluations until the best fitness reaches `target` on a sphere centred at 0.8 in [0,1]^n. */
function evalsToTarget(options: Record<string, unknown>, seed: string, n = 10, target = -1e-6, cap = 6000): number {
  const opt = getOptimizer('cmaes');
  let s = opt.init(n, { x0: new Array(n).fill(0.2), sigma0: 0.1, ...options }, seed);
  let evals = 0;
  while (!opt.isDone(s) && evals < cap) {
    const a = opt.ask(s);
    s = opt.tell(a.state, a.proposals.map((p) => ({ id: p.id, fitness: -p.genome.reduce((acc, x) => acc + (x - 0.8) ** 2, 0) })));
    evals += a.proposals.length;
    if (s.best && s.best.fitness >= target) return evals;
  }
  return cap;
}

test('cmaes: a known-good initial point reaches the optimum of a shifted sphere in fewer evaluations', () => {
  const near = [new Array(10).fill(0).map((_, i) => 0.8 + (i % 2 ? 0.01 : -0.01))];
  const seeds = ['a', 'b', 'c', 'd', 'e'];
  const med = (v: number[]) => v.slice().sort((x, y) => x - y)[v.length >> 1]!;
  const without = med(seeds.map((sd) => evalsToTarget({}, sd)));
  const withInit = med(seeds.map((sd) => evalsToTarget({ initial: near }, sd)));
  assert.ok(withInit < without, `with initial point ${withInit} evaluations, without ${without}`);
});

test('cmaes: a far-away initial point does not blow up sigma (its step is clipped)', () => {
  for (const separable of [false, true]) {
    const opt = getOptimizer('cmaes');
    const n = 10;
    // sigma0 small against the distance of the injected corner, which is also the best point
    let s = opt.init(n, { x0: new Array(n).fill(0.5), sigma0: 0.01, separable, initial: [new Array(n).fill(1)] }, 'far');
    const a = opt.ask(s);
    assert.equal(a.proposals[0]!.operator, 'init');
    s = opt.tell(a.state, a.proposals.map((p) => ({ id: p.id, fitness: p.genome.reduce((acc, x) => acc + x, 0) })));
    const st = s as unknown as { sigma: number; mean: number[] };
    assert.ok(st.sigma < 0.01 * 1.5 && st.sigma > 0.01 / 1.5, `separable ${separable}: sigma ${st.sigma}`);
    // the mean moved toward the point, but by a clipped step: far less than the full distance 0.5
    const shift = Math.max(...st.mean.map((m) => m - 0.5));
    assert.ok(shift > 0 && shift < 0.1, `separable ${separable}: mean shift ${shift}`);
  }
});

test('cmaes: with TPA the initial points take the slots after the mirrored pair, also after x0', () => {
  const opt = getOptimizer('cmaes');
  const n = 4;
  const init = Array.from({ length: 9 }, (_, k) => new Array(n).fill(0.1 * (k + 1)));
  let s = opt.init(n, { separable: true, stepSize: 'tpa', x0: [0.3, 0.3, 0.3, 0.3], initial: init }, 'tpa');
  const ops: string[][] = [];
  const genomes: number[][] = [];
  for (let g = 0; g < 3; g++) {
    const a = opt.ask(s);
    ops.push(a.proposals.map((p) => p.operator));
    for (const p of a.proposals) if (p.operator === 'init' && init.some((q) => q.every((v, i) => v === p.genome[i]))) genomes.push(p.genome);
    s = opt.tell(a.state, a.proposals.map((p) => ({ id: p.id, fitness: -p.genome.reduce((acc, x) => acc + (x - 0.6) ** 2, 0) })));
    if (g === 1) {
      // the second generation has TPA's mirrors in slots 0 and 1
      const pend = (a.state as unknown as { pending: { injected?: number; initialAt?: number; initial?: number } }).pending;
      assert.equal(pend.injected, 2);
      assert.equal(pend.initialAt, 2);
      assert.equal(pend.initial, 3); // lambda 8: 6 points after the pair in generation 0, the other 3 now
    }
  }
  assert.deepEqual(genomes, init);
  // (a first generation's own samples have operator 'init' too)
  assert.deepEqual(ops[0], new Array(8).fill('init'));
  assert.deepEqual(ops[1]!.slice(0, 2), ['sample', 'sample']);
});

test('cmaes: a JSON round trip with initial points pending gives the same proposals', () => {
  const opt = getOptimizer('cmaes');
  const init = Array.from({ length: 15 }, (_, k) => new Array(5).fill(0).map((_, i) => ((k + i) % 7) / 7));
  for (const options of [{ initial: init }, { initial: init, separable: true, stepSize: 'tpa' }, { initial: init, restarts: 'bipop', maxiter: 3 }]) {
    const run = (rt: boolean) => {
      let s = opt.init(5, options, 'rt');
      const out: unknown[] = [];
      for (let g = 0; g < 8; g++) {
        if (rt) s = JSON.parse(JSON.stringify(s));
        const a = opt.ask(s);
        out.push(a.proposals);
        s = rt ? JSON.parse(JSON.stringify(a.state)) : a.state;
        s = opt.tell(s, a.proposals.map((p) => ({ id: p.id, fitness: -p.genome.reduce((acc, x) => acc + (x - 0.4) ** 2, 0) })));
      }
      return out;
    };
    assert.deepEqual(run(true), run(false));
  }
});
