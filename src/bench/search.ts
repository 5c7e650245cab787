/**
 * `evomerge bench search`: throughput of the search engine on a real space (default: the demo's
 * vision PS space): evaluations per minute, worker utilisation (share of thread time spent on
 * candidates) and peak resident memory of the process, for each worker count, in one run.
 * Worker threads live in the owner's process, so RSS covers them: sources are read per tensor
 * from their files, so it grows by a worker's working set, not by a copy of the sources.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { InputError } from '../errors.ts';
import { formatBytes } from '../format.ts';
import { localRunner } from '../pool/index.ts';
import { gradientStage } from '../refine/index.ts';
import { startSearch } from '../search/engine.ts';
import { RunStore } from '../store/index.ts';

export interface SearchBenchRow {
  workers: number;
  evaluations: number;
  seconds: number;
  evaluationsPerMinute: number;
  utilisation: number;
  peakRssMb: number;
  baselineRssMb: number;
}

export async function runSearchBench(options: { space: string; budget: number; workers: number[]; log?: (l: string) => void }): Promise<{ space: string; rows: SearchBenchRow[] }> {
  const rows: SearchBenchRow[] = [];
  const root = mkdtempSync(join(tmpdir(), 'evomerge-bench-search-'));
  try {
    for (const workers of options.workers) {
      options.log?.(`search with ${workers} worker${workers === 1 ? '' : 's'}, ${options.budget} candidates ...`);
      const baselineRssMb = process.memoryUsage().rss / 2 ** 20;
      let peak = baselineRssMb;
      const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss / 2 ** 20); }, 100);
      const db = join(root, `w${workers}`, 'run.sqlite');
      const t0 = performance.now();
      let evaluations = 0;
      try {
        await startSearch(options.space, {
          runtime: { local: localRunner, gradient: gradientStage }, dbPath: db, runName: 'bench', workers, budget: { evaluations: options.budget },
          onEvent: (e) => { if (e.type === 'result' && !e.reused) evaluations++; },
        });
      } finally {
        clearInterval(sampler);
      }
      const seconds = (performance.now() - t0) / 1000;
      const store = RunStore.open(db, { readonly: true });
      const stage = store.events(store.run('bench')!.id).find((e) => e.kind === 'stage');
      store.close();
      rows.push({
        workers, evaluations, seconds, evaluationsPerMinute: evaluations / (seconds / 60),
        utilisation: (stage?.data as { utilisation?: number } | null)?.utilisation ?? NaN, peakRssMb: peak, baselineRssMb,
      });
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return { space: resolve(options.space), rows };
}

export function registerBench(bench: Command): void {
  bench
    .command('search')
    .description('search throughput: evaluations per minute, worker utilisation and resident memory per worker count')
    .option('--space <file>', 'search space', 'search-spaces/vision-ps.yaml')
    .option('--budget <n>', 'candidates per measurement', '120')
    .option('--workers <list>', 'worker counts to compare', '1,2')
    .option('--json', 'print one JSON object')
    .action(async (o: { space: string; budget: string; workers: string; json?: boolean }) => {
      const budget = Number(o.budget);
      const workers = o.workers.split(',').map(Number);
      if (!Number.isInteger(budget) || budget < 1) throw new InputError('E_BAD_FLAG', `--budget must be a positive integer, got '${o.budget}'`);
      if (workers.some((w) => !Number.isInteger(w) || w < 1)) throw new InputError('E_BAD_FLAG', `--workers must list positive integers, got '${o.workers}'`);
      const r = await runSearchBench({ space: o.space, budget, workers, log: (l) => process.stderr.write(`${l}\n`) });
      if (o.json) return void process.stdout.write(`${JSON.stringify(r)}\n`);
      process.stdout.write(`${'workers'.padEnd(8)} ${'evals'.padStart(6)} ${'seconds'.padStart(8)} ${'evals/min'.padStart(10)} ${'utilisation'.padStart(12)} ${'peak RSS'.padStart(12)}\n`);
      for (const x of r.rows) {
        process.stdout.write(`${String(x.workers).padEnd(8)} ${String(x.evaluations).padStart(6)} ${x.seconds.toFixed(1).padStart(8)} ${x.evaluationsPerMinute.toFixed(1).padStart(10)} ${(100 * x.utilisation).toFixed(1).padStart(11)}% ${formatBytes(x.peakRssMb * 2 ** 20).padStart(12)}\n`);
      }
    });
}
