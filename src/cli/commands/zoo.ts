import type { Command } from 'commander';
import { InputError } from '../../errors.ts';
import { ZOOS, defaultZooDir, zooBuilder } from '../../zoo/index.ts';

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
    .description('build a zoo into a folder (default runs/zoo/<name>)')
    .argument('<name>', `zoo name (${ZOOS.map((z) => z.name).join(', ')})`)
    .option('-o, --output <dir>', 'output folder')
    .option('--seed <n>', 'random seed', '0')
    .action((name: string, opts: { output?: string; seed: string }) => {
      const seed = Number(opts.seed);
      if (!Number.isSafeInteger(seed)) throw new InputError('E_BAD_FLAG', `--seed must be an integer, got '${opts.seed}'`);
      const builder = zooBuilder(name);
      const dir = opts.output ?? defaultZooDir(name);
      const result = builder.build(dir, { seed });
      process.stdout.write(`built zoo '${name}' in ${dir}\n  base    ${result.base}\n${result.models.map((m) => `  model   ${m}`).join('\n')}\n`);
    });
}
