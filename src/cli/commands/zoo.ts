import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { InputError } from '../../errors.ts';
import { ZOOS, defaultZooDir, zooBuilder, type ZooProgress, type ZooResult } from '../../zoo/index.ts';

function isTrained(r: unknown): r is ZooResult {
  return typeof r === 'object' && r !== null && 'manifest' in r;
}

export function register(program: Command): void {
  const zoo = program.command('zoo').description('build families of small checkpoints (a base and its fine-tunes) to search over');
  zoo
    .command('list')
    .description('list the zoos evomerge can build')
    .action(() => {
      for (const z of ZOOS) process.stdout.write(`${z.name.padEnd(12)} ${z.description}\n`);
    });
  zoo
    .command('build')
    .description('build a zoo into a folder (default runs/zoo/<name>); a second build with the same inputs reuses the first')
    .argument('<name>', `zoo name (${ZOOS.map((z) => z.name).join(', ')})`)
    .option('-o, --output <dir>', 'output folder')
    .option('--seed <n>', 'random seed', '0')
    .option('--small', 'the reduced size, for tests and quick looks')
    .option('--force', 'rebuild even when the folder holds an identical build')
    .option('--data-root <dir>', 'where Debian data packages are (default /; or a folder made by dpkg -x)')
    .option('--json', 'print zoo.json as one JSON object')
    .action(async (name: string, opts: { output?: string; seed: string; small?: boolean; force?: boolean; json?: boolean; dataRoot?: string }) => {
      const seed = Number(opts.seed);
      if (!Number.isSafeInteger(seed)) throw new InputError('E_BAD_FLAG', `--seed must be an integer, got '${opts.seed}'`);
      const builder = zooBuilder(name);
      const dir = opts.output ?? defaultZooDir(name);
      const bar = new cliProgress.SingleBar({
        format: `zoo ${name} [{bar}] {percentage}% | {stage} | {duration_formatted} elapsed, {eta_formatted} left`,
        noTTYOutput: true,
        notTTYSchedule: 5000,
        stream: process.stderr,
        etaBuffer: 200,
      }, cliProgress.Presets.shades_classic);
      let started = false;
      const onProgress = (p: ZooProgress) => {
        if (!started) {
          bar.start(p.total, 0, { stage: p.stage });
          started = true;
        }
        bar.update(p.done, { stage: p.stage });
      };
      let result;
      try {
        result = await builder.build(dir, { seed, small: opts.small ?? false, force: opts.force ?? false, onProgress, ...(opts.dataRoot ? { dataRoot: opts.dataRoot } : {}) });
      } finally {
        if (started) bar.stop();
      }
      if (opts.json && isTrained(result)) {
        process.stdout.write(`${JSON.stringify({ dir: result.dir, cached: result.cached, ...result.manifest })}\n`);
        return;
      }
      process.stdout.write(`built zoo '${name}' in ${dir}${isTrained(result) && result.cached ? ' (cached: same inputs as the build already there)' : ''}\n  base    ${result.base}\n${result.models.map((m) => `  model   ${m}`).join('\n')}\n`);
      if (isTrained(result)) {
        const m = result.manifest;
        const fmt = (v: number, metric: string) => (/accuracy|exact/.test(metric) ? `${(100 * v).toFixed(2)}%` : v.toFixed(3)).padStart(8);
        process.stdout.write(`  built in ${m.seconds} s on the ${m.backend} backend\n  specialist against base on its own task, held-out data:\n`);
        for (const c of m.checks) {
          process.stdout.write(`    ${c.task.padEnd(10)} ${c.split.padEnd(10)} ${c.metric.padEnd(11)} base ${fmt(c.base, c.metric)}  specialist ${fmt(c.specialist, c.metric)}  ${c.beatsBase ? 'beats base' : 'DOES NOT beat base'}\n`);
        }
      }
    });
}
