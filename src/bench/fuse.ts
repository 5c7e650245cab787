/**
 * `evomerge bench fuse`: FuseChat's whole path on this machine (Wan et al. 2024, sections 3.2 and
 * 3.3): the `fusion` zoo (a pivot and two sources of other tokenizers and architectures, fused
 * pairwise into two targets of the pivot's architecture), each fused target against the pivot on
 * its source's task (test split), a short search over the fused targets (search-spaces/
 * fusion-ps.yaml, tuned on the validation split), and the evolved merge against every fused
 * target and the pivot on the mean normalised score over the tasks (test split, normalised as
 * `evomerge baselines` does). Every phase is timed; a zoo already built for the same inputs is
 * reused and its recorded build times are reported as such.
 */
import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { InputError } from '../errors.ts';
import type { Recipe } from '../recipe/index.ts';
import { rowAgainst, scoreRecipeOnZoo } from '../zoo/score.ts';
import { localRunner } from '../pool/index.ts';
import { startSearch } from '../search/engine.ts';
import { runBaselines, type BaselineRow } from '../zoo/baselines.ts';
import { buildFusionZoo } from '../zoo/fusion.ts';

export interface FuseBenchReport {
  zoo: { dir: string; size: 'full' | 'small'; cached: boolean; buildSeconds: number; phases: Record<string, number> };
  /** Each fused target against the pivot on its own source's task, test split. */
  targets: Array<{ task: string; metric: string; direction: string; pivot: number; fused: number; beatsPivot: boolean }>;
  search: { evaluations: number; failed: number; seconds: number; bestValidationFitness: number | null; bestCandidate: number | null; bestOperator: string | null };
  /** Test split: pivot, fused targets, the evolved merge, mean normalised score each. */
  rows: Array<{ label: string; scores: Record<string, number>; meanNormalized: number }>;
  mergeBeatsAll: boolean;
  seconds: { zoo: number; baselines: number; search: number; scoreMerge: number; total: number };
  cores: number;
}

export async function runFuseBench(o: { dir: string; small: boolean; budget: number; workers: number; seed: number; log: (line: string) => void }): Promise<FuseBenchReport> {
  const started = performance.now();
  const dir = resolve(o.dir);
  let t = performance.now();
  o.log(`building (or reusing) the fusion zoo in ${dir} ...`);
  const zoo = await buildFusionZoo(dir, { seed: o.seed, small: o.small, onProgress: (p) => p.done === p.total && o.log(`  zoo: ${p.stage} done`) });
  const zooSeconds = (performance.now() - t) / 1000;
  const phases = (zoo.manifest.training.seconds ?? {}) as Record<string, number>;

  t = performance.now();
  o.log('scoring the pivot, the fused targets and the fixed recipes on the test split ...');
  const baselines = await runBaselines(dir, { split: 'test', backend: 'wasm' });
  const baselineSeconds = (performance.now() - t) / 1000;
  const pivotRow = baselines.rows.find((r) => r.kind === 'base')!;
  const targets = zoo.manifest.models.map((m) => {
    const task = baselines.tasks.find((x) => x.name === m.task)!;
    const fused = baselines.rows.find((r) => r.label === `specialist ${m.name}`)!.scores[m.task]!;
    const pivot = pivotRow.scores[m.task]!;
    return { task: m.task, metric: task.metric, direction: task.direction, pivot, fused, beatsPivot: task.direction === 'maximize' ? fused > pivot : fused < pivot };
  });

  t = performance.now();
  const runDir = join(dir, '..', `${zoo.manifest.zoo}-bench-run`);
  rmSync(runDir, { recursive: true, force: true });
  const spacePath = fileURLToPath(new URL('../../search-spaces/fusion-ps.yaml', import.meta.url));
  o.log(`searching ${spacePath} over the fused targets (${o.budget} evaluations, validation split) ...`);
  const search = await startSearch(spacePath, { runtime: { local: localRunner }, runName: 'fusion-bench', dbPath: join(runDir, 'run.sqlite'), zooOverride: dir, budget: { evaluations: o.budget }, workers: o.workers, seed: o.seed });
  const searchSeconds = (performance.now() - t) / 1000;
  const stage = search.stages[0]!;

  t = performance.now();
  const rows: Array<Pick<BaselineRow, 'label' | 'scores' | 'meanNormalized'>> = baselines.rows.filter((r) => r.kind !== 'merge');
  let mergeBeatsAll = false;
  if (search.best) {
    const scores = await scoreRecipeOnZoo(dir, search.best.recipe as Recipe, 'test', 'wasm');
    const evolved = rowAgainst(baselines, `evolved merge (candidate ${search.best.id})`, scores);
    mergeBeatsAll = rows.every((r) => evolved.meanNormalized > r.meanNormalized);
    rows.push(evolved);
  }
  const scoreSeconds = (performance.now() - t) / 1000;
  const { availableParallelism } = await import('node:os');
  return {
    zoo: { dir, size: zoo.manifest.size, cached: zoo.cached, buildSeconds: zoo.manifest.seconds, phases },
    targets,
    search: { evaluations: stage.evaluated, failed: stage.failed, seconds: searchSeconds, bestValidationFitness: search.best?.fitness ?? null, bestCandidate: search.best?.id ?? null, bestOperator: search.best?.operator ?? null },
    rows: rows.map((r) => ({ label: r.label.replace(/^base$/, 'pivot').replace(/^specialist /, 'fused '), scores: r.scores, meanNormalized: r.meanNormalized })),
    mergeBeatsAll,
    seconds: { zoo: zooSeconds, baselines: baselineSeconds, search: searchSeconds, scoreMerge: scoreSeconds, total: (performance.now() - started) / 1000 },
    cores: availableParallelism(),
  };
}

export function registerBench(bench: Command): void {
  bench
    .command('fuse')
    .description("knowledge fusion's whole path: the fusion zoo (pivot, two sources of other tokenizers and architectures, pairwise fusion), fused targets against the pivot, a search over them, and the time of each phase")
    .option('--dir <dir>', 'the zoo folder (built or reused)', 'runs/zoo/fusion')
    .option('--small', 'the small zoo (seconds), to check the benchmark itself')
    .option('--budget <n>', 'evaluations of the search', '100')
    .option('--workers <n>', 'worker threads of the search', '2')
    .option('--seed <n>', 'seed of the zoo and the search', '0')
    .option('--json', 'print one JSON object')
    .action(async (opts: { dir: string; small?: boolean; budget: string; workers: string; seed: string; json?: boolean }) => {
      const int = (flag: string, v: string, min: number) => {
        const n = Number(v);
        if (!Number.isSafeInteger(n) || n < min) throw new InputError('E_BAD_FLAG', `${flag} must be an integer of at least ${min}, got '${v}'`);
        return n;
      };
      const r = await runFuseBench({ dir: opts.dir, small: !!opts.small, budget: int('--budget', opts.budget, 2), workers: int('--workers', opts.workers, 1), seed: int('--seed', opts.seed, 0), log: (l) => process.stderr.write(`${l}\n`) });
      if (opts.json) return void process.stdout.write(`${JSON.stringify(r)}\n`);
      const p = (s: string) => process.stdout.write(`${s}\n`);
      const fmt = (v: number, metric: string) => (/exact|accuracy/.test(metric) ? `${(100 * v).toFixed(1)}%` : v.toFixed(3));
      p(`fusion zoo (${r.zoo.size}) in ${r.zoo.dir}: ${r.zoo.cached ? `reused; built earlier in ${r.zoo.buildSeconds} s` : `built in ${r.zoo.buildSeconds} s`} (${Object.entries(r.zoo.phases).map(([k, v]) => `${k} ${v} s`).join(', ')}), ${r.cores} cores`);
      p('fused target against the pivot on its source\'s task, test split:');
      for (const x of r.targets) p(`  ${x.task.padEnd(11)} ${x.metric.padEnd(12)} pivot ${fmt(x.pivot, x.metric).padStart(8)}  fused ${fmt(x.fused, x.metric).padStart(8)}  ${x.beatsPivot ? 'beats the pivot' : 'DOES NOT beat the pivot'}`);
      p(`search over the fused targets: ${r.search.evaluations} evaluations (${r.search.failed} failed) in ${r.search.seconds.toFixed(1)} s; best validation fitness ${r.search.bestValidationFitness?.toFixed(4) ?? 'none'} (candidate ${r.search.bestCandidate ?? '-'}, operator ${r.search.bestOperator ?? '-'}${r.search.bestOperator === 'init' ? ': a warm-start fixed recipe the search injects, not improved on' : ''})`);
      const tasks = Object.keys(r.rows[0]!.scores);
      p(`test split, mean normalised score (score / the task's fused target's score, inverted for perplexity):`);
      for (const row of r.rows) p(`  ${row.label.padEnd(32)} ${tasks.map((t) => `${t} ${row.scores[t]!.toFixed(4)}`).join('  ')}  mean normalised ${row.meanNormalized.toFixed(4)}`);
      p(`the evolved merge ${r.mergeBeatsAll ? 'beats' : 'DOES NOT beat'} every fused target and the pivot on the mean normalised score`);
      p(`time: zoo ${r.seconds.zoo.toFixed(1)} s, baselines ${r.seconds.baselines.toFixed(1)} s, search ${r.seconds.search.toFixed(1)} s, scoring the merge ${r.seconds.scoreMerge.toFixed(1)} s, total ${r.seconds.total.toFixed(1)} s`);
    });
}
