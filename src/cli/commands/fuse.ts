import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { InputError } from '../../errors.ts';
import { FUSE_FUNCTIONS, fuseModels, type FuseFunction, type FuseProgress } from '../../fuse/fuse.ts';
import { FUSE_MAPPINGS, type FuseMapping } from '../../fuse/teacher.ts';

const collect = (v: string, prev: string[]) => [...prev, v];

function num(flag: string, v: string | undefined, integer: boolean): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || (integer && !Number.isSafeInteger(n))) throw new InputError('E_BAD_FLAG', `${flag} must be ${integer ? 'an integer' : 'a number'}, got '${v}'`);
  return n;
}

export function register(program: Command): void {
  program
    .command('fuse')
    .description('knowledge fusion, stage 1 of FuseLLM / FuseChat: distil source models of other tokenizers and architectures into copies of a pivot model')
    .requiredOption('--pivot <dir>', 'the pivot (target) model folder: Llama family, with tokenizer.json')
    .option('--source <dir>', 'a source model folder (repeat for several); its own tokenizer.json is used', collect, [] as string[])
    .option('--data <file>', 'training text: a text file or an evaluator manifest with a train split (repeat with --pairwise: one per source, in --source order)', collect, [] as string[])
    .requiredOption('-o, --output <dir>', 'output folder: <dir>/<source-name>/ per source with --pairwise, else <dir>/fused/')
    .option('--pairwise', "FuseChat's pairwise fusion: one target per source, each fused from the pivot and that source")
    .option('--mapping <m>', `vocabulary mapping: ${FUSE_MAPPINGS.join(', ')}`, 'mined')
    .option('--fusion <f>', `fusion function: ${FUSE_FUNCTIONS.join(', ')}`, 'minCE')
    .option('--lambda <x>', 'weight of the causal-LM loss; 1 - lambda goes to the fusion loss', '0.9')
    .option('--epochs <n>', 'training epochs over the corpus', '1')
    .option('--lr <x>', 'Adam learning rate', '0.001')
    .option('--batch <n>', 'windows per step', '16')
    .option('--context <n>', "tokens per training window (default: the pivot's max_position_embeddings, at most 128)")
    .option('--k <n>', 'top-k kept per position', '10')
    .option('--seed <n>', 'random seed', '0')
    .option('--json', 'print one JSON object with the targets written')
    .action(async (opts: { pivot: string; source: string[]; data: string[]; output: string; pairwise?: boolean; mapping: string; fusion: string; lambda: string; epochs: string; lr: string; batch: string; context?: string; k: string; seed: string; json?: boolean }) => {
      if (opts.data.length === 0) throw new InputError('E_FUSE_DATA', 'fuse: --data is required; give a text file or an evaluator manifest with a train split');
      const bar = new cliProgress.SingleBar({
        format: 'fuse [{bar}] {percentage}% | {stage}{loss} | {duration_formatted} elapsed, {eta_formatted} left',
        noTTYOutput: true, notTTYSchedule: 5000, stream: process.stderr, etaBuffer: 50,
      }, cliProgress.Presets.shades_classic);
      let stage = '';
      const onProgress = (p: FuseProgress) => {
        const loss = p.loss === undefined ? '' : ` loss ${p.loss.toFixed(4)}`;
        if (p.stage.split(' epoch')[0] !== stage) {
          if (stage) bar.stop();
          stage = p.stage.split(' epoch')[0]!;
          bar.start(p.total, 0, { stage: p.stage, loss });
        }
        bar.update(p.done, { stage: p.stage, loss });
      };
      let result;
      try {
        result = await fuseModels({
          pivot: opts.pivot, sources: opts.source, data: opts.data.length === 1 ? opts.data[0]! : opts.data, out: opts.output,
          pairwise: opts.pairwise ?? false, mapping: opts.mapping as FuseMapping, fusion: opts.fusion as FuseFunction,
          lambda: num('--lambda', opts.lambda, false), epochs: num('--epochs', opts.epochs, true), lr: num('--lr', opts.lr, false),
          batch: num('--batch', opts.batch, true), context: num('--context', opts.context, true), k: num('--k', opts.k, true), seed: num('--seed', opts.seed, true),
          onProgress,
        });
      } finally {
        if (stage) bar.stop();
      }
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(result)}\n`);
        return;
      }
      process.stdout.write(`fused (${result.mode}) into ${result.out} on the ${result.backend} backend in ${result.seconds.toFixed(1)} s\n`);
      for (const t of result.targets) {
        process.stdout.write(`  ${t.name.padEnd(14)} ${t.dir}  ${t.windows} windows, loss per epoch ${t.losses.map((l) => l.toFixed(4)).join(' ')}${t.cached ? ' (already complete)' : ''}${t.resumedFrom > 0 && !t.cached ? ` (resumed after epoch ${t.resumedFrom})` : ''}\n`);
      }
    });
}
