/**
 * `evomerge bench optimizer`: replays a CMA-ES efficiency protocol (below) so the figures
 * sit beside pycma 4.4 and CyberAgent cmaes 0.9.1 measured on the same kind of machine.
 *
 * Protocol: sphere, ellipsoid, rosenbrock (full CMA, n = 10, 40, 200), sphere and ellipsoid
 * (separable, n = 1000), rastrigin with IPOP (n = 10, 40); start points from
 * mulberry32(1000 n + s), s = 1..10; sigma0 = 2 (2.5 for rastrigin); default population; no
 * bounds; evaluations counted one by one in asked order; success at the first f < 1e-8; a run
 * stops at the optimizer's own termination or at 100 n^2 + 10000 evaluations, IPOP at 1e6.
 */
import type { Command } from 'commander';
import { InputError } from '../errors.ts';
import { cmaes, defaultPopsize, type CmaesState } from '../optim/cmaes.ts';

export type BenchFunction = 'sphere' | 'ellipsoid' | 'rosenbrock' | 'rastrigin';

export interface OptimizerBenchCase {
  function: BenchFunction;
  n: number;
  variant: 'full' | 'sep';
  restarts: 'none' | 'ipop';
  runs: number;
  successes: number;
  medianEvals: number | null;
}

export interface OptimizerBenchOverhead {
  n: number;
  variant: 'full' | 'sep';
  msPerGeneration: number;
}

export interface OptimizerBenchResult {
  cases: OptimizerBenchCase[];
  overhead: OptimizerBenchOverhead[];
}

/** The protocol's start-point generator (mulberry32, Tommy Ettinger 2017), exactly as the issue gives it. */
export function mulberry32(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Test functions (minimised, optimum 0). */
export const benchFunctions: Record<BenchFunction, (x: readonly number[]) => number> = {
  sphere: (x) => {
    let s = 0;
    for (const v of x) s += v * v;
    return s;
  },
  ellipsoid: (x) => {
    const n = x.length;
    let s = 0;
    for (let i = 0; i < n; i++) s += 10 ** ((6 * i) / Math.max(1, n - 1)) * x[i]! * x[i]!;
    return s;
  },
  rosenbrock: (x) => {
    let s = 0;
    for (let i = 0; i + 1 < x.length; i++) s += 100 * (x[i + 1]! - x[i]! * x[i]!) ** 2 + (1 - x[i]!) ** 2;
    return s;
  },
  rastrigin: (x) => {
    let s = 10 * x.length;
    for (const v of x) s += v * v - 10 * Math.cos(2 * Math.PI * v);
    return s;
  },
};

export const pycmaReference = {
  medians: [
    { function: 'sphere', n: 10, variant: 'full', median: 1428 },
    { function: 'sphere', n: 40, variant: 'full', median: 5166 },
    { function: 'sphere', n: 200, variant: 'full', median: 22143 },
    { function: 'ellipsoid', n: 10, variant: 'full', median: 3943 },
    { function: 'ellipsoid', n: 40, variant: 'full', median: 47980 },
    { function: 'rosenbrock', n: 10, variant: 'full', median: 5155, successes: '9/10' },
    { function: 'rosenbrock', n: 40, variant: 'full', median: 63284, successes: '9/10' },
    { function: 'rastrigin', n: 10, variant: 'full', median: 81233 },
    { function: 'rastrigin', n: 40, variant: 'full', median: 8.2e5 },
    { function: 'sphere', n: 1000, variant: 'sep', median: 65442 },
    { function: 'ellipsoid', n: 1000, variant: 'sep', median: 9.9e5 },
  ],
  msPerGeneration: [
    { n: 10, variant: 'full', ms: 0.26 },
    { n: 40, variant: 'full', ms: 0.48 },
    { n: 200, variant: 'full', ms: 1.96 },
    { n: 1000, variant: 'sep', ms: 1.33 },
  ],
} as const;

function startPoint(u: () => number, n: number, fn: BenchFunction): number[] {
  const [lo, hi] = fn === 'rastrigin' ? [-5, 5] : [-3, 3];
  const x = new Array<number>(n);
  for (let i = 0; i < n; i++) x[i] = lo + (hi - lo) * u();
  return x;
}

/**
 * One CMA-ES run from x0; returns the 1-based index of the first evaluation with f < 1e-8, or
 * null, and the evaluations used. Evaluations are counted in asked order.
 */
function singleRun(
  fn: BenchFunction, x0: number[], sigma0: number, separable: boolean, popsize: number, seed: string, budget: number,
): { hit: number | null; used: number } {
  const f = benchFunctions[fn];
  let state: CmaesState = cmaes.init(x0.length, { x0, sigma0, separable, popsize, bounds: null }, seed);
  let used = 0;
  while (!cmaes.isDone(state) && used < budget) {
    const asked = cmaes.ask(state);
    state = asked.state;
    const outcomes = [];
    for (const p of asked.proposals) {
      const v = f(p.genome);
      used++;
      if (v < 1e-8) return { hit: used, used };
      if (used >= budget) return { hit: null, used };
      outcomes.push({ id: p.id, fitness: -v });
    }
    state = cmaes.tell(state, outcomes);
  }
  return { hit: null, used };
}

function medianOf(a: number[]): number | null {
  if (a.length === 0) return null;
  const b = a.slice().sort((x, y) => x - y);
  const m = b.length >> 1;
  return b.length % 2 ? b[m]! : (b[m - 1]! + b[m]!) / 2;
}

export function runBenchCase(
  fn: BenchFunction, n: number, variant: 'full' | 'sep', restarts: 'none' | 'ipop', seeds: number,
  onRun?: (seed: number, hit: number | null) => void,
): OptimizerBenchCase {
  const hits: number[] = [];
  const sigma0 = fn === 'rastrigin' ? 2.5 : 2;
  for (let s = 1; s <= seeds; s++) {
    const u = mulberry32(1000 * n + s);
    if (restarts === 'none') {
      const r = singleRun(fn, startPoint(u, n, fn), sigma0, variant === 'sep', defaultPopsize(n), `bench-${s}`, 100 * n * n + 10000);
      if (r.hit !== null) hits.push(r.hit);
      onRun?.(s, r.hit);
    } else {
      // IPOP driven here so every restart's x0 comes from the same mulberry32 stream
      let total = 0;
      let popsize = defaultPopsize(n);
      let seedHit: number | null = null;
      for (let run = 0; total < 1e6; run++) {
        const r = singleRun(fn, startPoint(u, n, fn), sigma0, variant === 'sep', popsize, `bench-${s}-${run}`, 1e6 - total);
        if (r.hit !== null) {
          seedHit = total + r.hit;
          hits.push(seedHit);
          break;
        }
        total += r.used;
        popsize *= 2;
      }
      onRun?.(s, seedHit);
    }
  }
  return { function: fn, n, variant, restarts, runs: seeds, successes: hits.length, medianEvals: medianOf(hits) };
}

/** Milliseconds per generation of ask plus tell (objective excluded) on the sphere. */
export function measureOverhead(n: number, variant: 'full' | 'sep', minMs = 1500): OptimizerBenchOverhead {
  const u = mulberry32(1000 * n + 1);
  const x0 = startPoint(u, n, 'sphere');
  let state = cmaes.init(n, { x0, sigma0: 2, separable: variant === 'sep', bounds: null }, 'overhead');
  let spent = 0;
  let gens = 0;
  // warm up the JIT, then time at least minMs of optimizer work
  for (let phase = 0; phase < 2; phase++) {
    spent = 0;
    gens = 0;
    while (spent < (phase === 0 ? minMs / 4 : minMs) || gens < 20) {
      const t0 = performance.now();
      const asked = cmaes.ask(state);
      const t1 = performance.now();
      const outcomes = asked.proposals.map((p) => ({ id: p.id, fitness: -benchFunctions.sphere(p.genome) }));
      const t2 = performance.now();
      state = cmaes.tell(asked.state, outcomes);
      const t3 = performance.now();
      spent += t1 - t0 + (t3 - t2);
      gens++;
      if (cmaes.isDone(state)) state = cmaes.init(n, { x0, sigma0: 2, separable: variant === 'sep', bounds: null }, `overhead-${gens}`);
    }
  }
  return { n, variant, msPerGeneration: spent / gens };
}

export interface OptimizerBenchOptions {
  quick: boolean;
  /** Seeds per case (default 10, 3 with quick). */
  seeds?: number;
  /** Only these cases, as `function:n` (e.g. `sphere:200`); default all of the protocol. */
  cases?: string[];
  /** Skip the time-per-generation measurement. */
  noOverhead?: boolean;
  progress?: (line: string) => void;
}

export function runOptimizerBench(opts: OptimizerBenchOptions): OptimizerBenchResult {
  const seeds = opts.seeds ?? (opts.quick ? 3 : 10);
  const say = opts.progress ?? (() => {});
  const plan: Array<[BenchFunction, number, 'full' | 'sep', 'none' | 'ipop']> = [];
  for (const n of [10, 40, 200]) for (const fn of ['sphere', 'ellipsoid', 'rosenbrock'] as const) plan.push([fn, n, 'full', 'none']);
  for (const fn of ['sphere', 'ellipsoid'] as const) plan.push([fn, 1000, 'sep', 'none']);
  for (const n of [10, 40]) plan.push(['rastrigin', n, 'full', 'ipop']);
  const cases: OptimizerBenchCase[] = [];
  const overhead: OptimizerBenchOverhead[] = [];
  for (const [n, variant] of opts.noOverhead ? [] : ([[10, 'full'], [40, 'full'], [200, 'full'], [1000, 'sep']] as const)) {
    const o = measureOverhead(n, variant);
    say(`overhead n=${n} ${variant}: ${o.msPerGeneration.toFixed(3)} ms/generation`);
    overhead.push(o);
  }
  for (const [fn, n, variant, restarts] of plan) {
    if (opts.quick && n > 40) continue;
    if (opts.cases && !opts.cases.includes(`${fn}:${n}`)) continue;
    const t0 = performance.now();
    const c = runBenchCase(fn, n, variant, restarts, seeds, (seed, hit) => say(`  ${fn} n=${n} seed ${seed}: ${hit === null ? 'no success' : `success at evaluation ${hit}`}`));
    say(`${fn} n=${n} ${variant} ${restarts}: ${c.successes}/${c.runs} successes, median ${c.medianEvals} evaluations (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    cases.push(c);
  }
  return { cases, overhead };
}

function formatTable(r: OptimizerBenchResult): string {
  const lines = ['function    n     variant restarts  successes  median evals  pycma median  ratio'];
  for (const c of r.cases) {
    const ref = pycmaReference.medians.find((m) => m.function === c.function && m.n === c.n && m.variant === c.variant);
    const ratio = ref && c.medianEvals !== null ? (c.medianEvals / ref.median).toFixed(2) : '-';
    lines.push(
      `${c.function.padEnd(11)} ${String(c.n).padEnd(5)} ${c.variant.padEnd(7)} ${c.restarts.padEnd(9)} ${`${c.successes}/${c.runs}`.padEnd(10)} ${String(c.medianEvals ?? '-').padEnd(13)} ${String(ref?.median ?? '-').padEnd(13)} ${ratio}`,
    );
  }
  if (r.overhead.length > 0) lines.push('', 'n     variant  ms/generation  pycma ms  ratio');
  for (const o of r.overhead) {
    const ref = pycmaReference.msPerGeneration.find((m) => m.n === o.n && m.variant === o.variant);
    lines.push(`${String(o.n).padEnd(5)} ${o.variant.padEnd(8)} ${o.msPerGeneration.toFixed(3).padEnd(14)} ${String(ref?.ms ?? '-').padEnd(9)} ${ref ? (o.msPerGeneration / ref.ms).toFixed(2) : '-'}`);
  }
  return lines.join('\n');
}

export function registerBench(bench: Command): void {
  bench
    .command('optimizer')
    .description('CMA-ES sample efficiency and time per generation against pycma reference figures (full protocol: long)')
    .option('--json', 'print one JSON object { cases, overhead }')
    .option('--quick', 'only n <= 40 with 3 seeds (time per generation is still measured at every n)')
    .option('--seeds <k>', 'seeds per case (default 10, 3 with --quick)', (v) => Number.parseInt(v, 10))
    .option('--cases <list>', 'only these cases, comma-separated function:n (e.g. sphere:200,rastrigin:40)')
    .option('--no-overhead', 'skip the time-per-generation measurement')
    .action((o: { json?: boolean; quick?: boolean; seeds?: number; cases?: string; overhead?: boolean }) => {
      if (o.seeds !== undefined && !(Number.isInteger(o.seeds) && o.seeds > 0)) {
        throw new InputError('E_BENCH_SEEDS', `--seeds must be a positive integer, got '${o.seeds}'`);
      }
      const result = runOptimizerBench({
        quick: !!o.quick, seeds: o.seeds, cases: o.cases?.split(',').map((c) => c.trim()), noOverhead: o.overhead === false,
        progress: (l) => process.stderr.write(`${l}\n`),
      });
      if (o.json) process.stdout.write(`${JSON.stringify(result)}\n`);
      else process.stdout.write(`${formatTable(result)}\n`);
    });
}
