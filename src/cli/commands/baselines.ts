import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { InputError } from '../../errors.ts';
import { BACKEND_CHOICES, parseBackendChoice } from '../../models/backend.ts';
import { formatBaselines, runBaselines } from '../../zoo/baselines.ts';

export function register(program: Command): void {
  program
    .command('baselines')
    .description('score the base, each specialist and fixed merge recipes (linear, task_arithmetic, ties, dare_ties, sce, varm) on every task of a zoo: the bar an evolved merge must clear')
    .argument('<zoo-dir>', 'a folder written by evomerge zoo build')
    .option('--split <split>', 'validation or test', 'test')
    .option('--seed <n>', 'seed of random masks (dare_ties)', '0')
    .option('--backend <name>', `TensorFlow.js backend: ${BACKEND_CHOICES.join(', ')}`, 'auto')
    .option('--json', 'print one JSON object')
    .action(async (dir: string, opts: { split: string; seed: string; backend: string; json?: boolean }) => {
      if (opts.split !== 'validation' && opts.split !== 'test') throw new InputError('E_BAD_FLAG', `--split must be validation or test, got '${opts.split}'`);
      const seed = Number(opts.seed);
      if (!Number.isSafeInteger(seed)) throw new InputError('E_BAD_FLAG', `--seed must be an integer, got '${opts.seed}'`);
      const bar = new cliProgress.SingleBar({ format: 'baselines [{bar}] {value}/{total} | {what} | {eta_formatted} left', noTTYOutput: true, notTTYSchedule: 5000, stream: process.stderr }, cliProgress.Presets.shades_classic);
      let started = false;
      try {
        const report = await runBaselines(dir, {
          split: opts.split, seed, backend: parseBackendChoice(opts.backend),
          onProgress: (done, total, what) => {
            if (!started) { bar.start(total, 0, { what }); started = true; }
            bar.update(done, { what });
          },
        });
        if (started) bar.stop();
        started = false;
        process.stdout.write(opts.json ? `${JSON.stringify(report)}\n` : `${formatBaselines(report)}\n`);
      } finally {
        if (started) bar.stop();
      }
    });
}
