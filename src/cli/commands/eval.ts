import type { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import { BACKEND_CHOICES, parseBackendChoice } from '../../models/backend.ts';
import { runEval, type EvalReport } from '../../eval/run.ts';

function formatReport(r: EvalReport): string {
  const lines: string[] = [];
  if (r.evaluator) lines.push(`evaluator ${r.evaluator.id} v${r.evaluator.version} (${r.evaluator.kind}, split ${r.evaluator.split}; ${r.evaluator.direction} ${r.evaluator.metric})`);
  else lines.push('perplexity of a plain text');
  const width = Math.max(...Object.keys(r.metrics).map((k) => k.length));
  for (const [k, v] of Object.entries(r.metrics)) lines.push(`  ${k.padEnd(width)}  ${Number.isInteger(v) ? v : v.toPrecision(6)}`);
  if (r.se !== null && r.evaluator) lines.push(`  standard error of ${r.evaluator.metric}: ${r.se.toPrecision(3)} (on unseen items of the same kind)`);
  lines.push(`backend ${r.backend}, ${r.samples} samples, ${r.seconds.toFixed(2)} s`);
  return lines.join('\n');
}

export function register(program: Command): void {
  program
    .command('eval')
    .description('score a model folder with an evaluator manifest (evaluators/*.yaml), or the perplexity of a text file')
    .argument('<model-dir>', 'a Hugging Face checkpoint folder (config.json, safetensors, tokenizer.json)')
    .option('--evaluator <manifest>', 'an evaluator manifest (YAML)')
    .option('--perplexity <text-file>', 'score a plain text with a causal LM (no manifest)')
    .option('--backend <name>', `TensorFlow.js backend: ${BACKEND_CHOICES.join(', ')}`, 'auto')
    .option('--json', 'print one JSON object with metrics, backend, samples, se (standard error) and seconds')
    .action(async (dir: string, opts: { evaluator?: string; perplexity?: string; backend: string; json?: boolean }) => {
      const backend = parseBackendChoice(opts.backend);
      const bar = opts.json || !process.stderr.isTTY ? null : new SingleBar({ noTTYOutput: true, clearOnComplete: true, format: 'eval [{bar}] {value}/{total}' });
      let started = false;
      const report = await runEval(dir, {
        evaluator: opts.evaluator,
        perplexity: opts.perplexity,
        backend,
        onProgress: bar ? (done, total) => {
          if (!started) {
            bar.start(total, 0);
            started = true;
          }
          bar.update(done);
        } : undefined,
      }).finally(() => started && bar?.stop());
      if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
      else process.stdout.write(`${formatReport(report)}\n`);
    });
}
