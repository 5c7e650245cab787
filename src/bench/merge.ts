/**
 * `evomerge bench merge`: per-tensor merge throughput on one thread, in GB/s of source bytes
 * (base plus models, F32), beside a memcpy (`Float32Array.set`) of the same bytes measured in the
 * same run, so the ratio is meaningful on a busy machine. Goals: linear and
 * task_arithmetic at >= 30% of memcpy, ties and dare_ties (density 0.5) at >= 10%.
 */
import type { Command } from 'commander';
import { InputError } from '../errors.ts';
import { formatBytes } from '../format.ts';
import { getMethod, resolveScope } from '../methods/index.ts';
import type { TensorInput } from '../methods/index.ts';

export interface MergeBenchRow {
  method: string;
  seconds: number;
  gbPerSecond: number;
  /** Throughput as a fraction of the memcpy of the same bytes. */
  ratioToMemcpy: number;
  goal: number;
  meetsGoal: boolean;
}

export interface MergeBenchResult {
  rows: number;
  cols: number;
  models: number;
  sourceBytes: number;
  repeats: number;
  memcpyGbPerSecond: number;
  results: MergeBenchRow[];
}

const CASES: Array<{ method: string; perModel: Record<string, unknown>; goal: number }> = [
  { method: 'linear', perModel: { weight: 1 }, goal: 0.3 },
  { method: 'task_arithmetic', perModel: { weight: 0.5 }, goal: 0.3 },
  { method: 'ties', perModel: { weight: 0.5, density: 0.5 }, goal: 0.1 },
  { method: 'dare_ties', perModel: { weight: 0.5, density: 0.5 }, goal: 0.1 },
];

function fill(seed: number, n: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 4294967296 - 0.5) * 0.04;
  }
  return a;
}

function best(repeats: number, fn: () => void): number {
  fn(); // warm-up: JIT and page faults of the output
  let bestT = Infinity;
  for (let r = 0; r < repeats; r++) {
    const t0 = process.hrtime.bigint();
    fn();
    const t = Number(process.hrtime.bigint() - t0) / 1e9;
    if (t < bestT) bestT = t;
  }
  return bestT;
}

export function runMergeBench(options: { rows?: number; cols?: number; models?: number; repeats?: number; methods?: string[]; log?: (line: string) => void } = {}): MergeBenchResult {
  const rows = options.rows ?? 4096;
  const cols = options.cols ?? 4096;
  const m = options.models ?? 3;
  const repeats = options.repeats ?? 3;
  const n = rows * cols;
  const base = fill(1, n);
  const models = Array.from({ length: m }, (_, j) => {
    const x = fill(100 + j, n);
    for (let i = 0; i < n; i++) x[i] = base[i]! + x[i]! * 0.1;
    return x;
  });
  const sources = [base, ...models];
  const sourceBytes = sources.length * n * 4;
  const copy = new Float32Array(n);
  const memcpyT = best(repeats, () => {
    for (const s of sources) copy.set(s);
  });
  const memcpyGbPerSecond = sourceBytes / memcpyT / 1e9;
  options.log?.(`memcpy of ${formatBytes(sourceBytes)}: ${memcpyGbPerSecond.toFixed(2)} GB/s`);
  const out = new Float32Array(n);
  const results: MergeBenchRow[] = [];
  for (const c of CASES) {
    if (options.methods && !options.methods.includes(c.method)) continue;
    const method = getMethod(c.method);
    const usesBase = method.requiresBase !== 'none';
    const input: TensorInput = { name: 'model.layers.0.mlp.up_proj.weight', shape: [rows, cols], base: usesBase ? base : null, models: usesBase ? models : sources };
    const g = resolveScope(method, 'global', {}, 'bench');
    const pm = input.models.map(() => resolveScope(method, 'per-model', c.perModel, 'bench'));
    const t = best(repeats, () => method.merge(input, g, pm, { seed: 0 }, out));
    const gb = sourceBytes / t / 1e9;
    const row = { method: c.method, seconds: t, gbPerSecond: gb, ratioToMemcpy: gb / memcpyGbPerSecond, goal: c.goal, meetsGoal: gb / memcpyGbPerSecond >= c.goal };
    options.log?.(`${c.method}: ${gb.toFixed(2)} GB/s (${(row.ratioToMemcpy * 100).toFixed(1)}% of memcpy; goal ${c.goal * 100}%)`);
    results.push(row);
  }
  return { rows, cols, models: m, sourceBytes, repeats, memcpyGbPerSecond, results };
}

export function formatMergeBench(r: MergeBenchResult): string {
  const lines = [
    `merge throughput, one thread: base + ${r.models} models of ${r.rows}x${r.cols} F32 (${formatBytes(r.sourceBytes)} of sources), best of ${r.repeats}`,
    `memcpy      ${r.memcpyGbPerSecond.toFixed(2).padStart(7)} GB/s`,
  ];
  for (const row of r.results) {
    lines.push(`${row.method.padEnd(16)}${row.gbPerSecond.toFixed(2).padStart(7)} GB/s  ${(row.ratioToMemcpy * 100).toFixed(1).padStart(5)}% of memcpy  goal ${(row.goal * 100).toFixed(0)}% ${row.meetsGoal ? 'met' : 'NOT met'}`);
  }
  return lines.join('\n');
}

export function registerBench(bench: Command): void {
  bench
    .command('merge')
    .description('merge kernels (linear, task_arithmetic, ties, dare_ties) in GB/s of source bytes beside memcpy of the same bytes')
    .option('--size <n>', 'tensor side (n x n F32)', '4096')
    .option('--models <n>', 'models besides the base', '3')
    .option('--repeats <n>', 'timed passes (best is kept)', '3')
    .option('--json', 'print one JSON object')
    .action((opts: { size: string; models: string; repeats: string; json?: boolean }) => {
      const size = Number(opts.size);
      const models = Number(opts.models);
      const repeats = Number(opts.repeats);
      for (const [flag, v] of [['--size', size], ['--models', models], ['--repeats', repeats]] as const) {
        if (!Number.isInteger(v) || v < 1) throw new InputError('E_BAD_FLAG', `${flag} must be a positive integer, got '${v}'`);
      }
      const result = runMergeBench({ rows: size, cols: size, models, repeats, log: opts.json ? undefined : (l) => process.stderr.write(`${l}\n`) });
      process.stdout.write(opts.json ? `${JSON.stringify(result)}\n` : `${formatMergeBench(result)}\n`);
    });
}
