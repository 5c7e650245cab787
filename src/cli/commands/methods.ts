/** `evomerge methods [--json]`: every merge method with its parameters, ranges, defaults and reference. */
import type { Command } from 'commander';
import { describeMethods, formatMethods } from '../../methods/index.ts';

export function register(program: Command): void {
  program
    .command('methods')
    .description('list every merge method with its parameters, ranges, defaults and reference')
    .option('--json', 'print one JSON object')
    .action((opts: { json?: boolean }) => {
      if (opts.json) process.stdout.write(`${JSON.stringify({ methods: describeMethods() })}\n`);
      else process.stdout.write(`${formatMethods()}\n`);
    });
}
