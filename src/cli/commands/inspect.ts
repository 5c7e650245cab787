import type { Command } from 'commander';
import { formatInspectReport, inspectCheckpoint } from '../../checkpoint/index.ts';

export function register(program: Command): void {
  program
    .command('inspect')
    .description('show what a checkpoint holds: format, tensors, parameters, layers, config (a .safetensors file, a Hugging Face folder or a LoRA adapter)')
    .argument('<path>', 'a .safetensors file or a checkpoint folder')
    .option('--json', 'print one JSON object')
    .option('--all', 'list every tensor (default: the first 200)')
    .action((path: string, opts: { json?: boolean; all?: boolean }) => {
      const report = inspectCheckpoint(path);
      if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
      else process.stdout.write(`${formatInspectReport(report, { maxTensors: opts.all ? Infinity : 200 })}\n`);
    });
}
