/**
 * `evomerge merge <config.yaml|recipe.json> -o <dir>`: merge to a Hugging Face folder. Accepts
 * mergekit YAML as is, or an evomerge recipe (JSON or YAML). Every input error is reported before
 * any output is written.
 */
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { InputError } from '../../errors.ts';
import { parseFloatDType } from '../../tensor/dtype.ts';
import { loadRecipeFile } from '../../recipe/index.ts';
import { mergeToDisk } from '../../report/merge-folder.ts';
import { formatBytes } from '../../format.ts';

/** "5GB", "500MB", "2GiB", "1000000" -> bytes. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?\s*$/i.exec(text);
  if (!m) throw new InputError('E_BAD_FLAG', `--shard-size '${text}' is not a size like 5GB, 500MB or 2GiB`);
  const unit = (m[2] ?? 'b').toLowerCase();
  const mult: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };
  const bytes = Math.floor(Number(m[1]) * mult[unit]!);
  if (!(bytes > 0)) throw new InputError('E_BAD_FLAG', `--shard-size must be positive, got '${text}'`);
  return bytes;
}

export function register(program: Command): void {
  program
    .command('merge')
    .description('merge models from a mergekit YAML config or an evomerge recipe into a Hugging Face folder')
    .argument('<config>', 'mergekit config (.yaml/.yml) or recipe (.json/.yaml)')
    .requiredOption('-o, --output <dir>', 'output folder (must not exist or be empty)')
    .option('--seed <n>', 'seed of random masks (DARE, DELLA); default: the recipe\'s')
    .option('--out-dtype <dtype>', 'f32, f16 or bf16 (default: the recipe\'s out_dtype, else the sources\')')
    .option('--shard-size <size>', 'largest shard, e.g. 5GB', '5GB')
    .option('--json', 'print one JSON object')
    .option('--no-progress', 'no progress bar')
    .action((config: string, opts: { output: string; seed?: string; outDtype?: string; shardSize: string; json?: boolean; progress: boolean }) => {
      let seed: number | undefined;
      if (opts.seed !== undefined) {
        seed = Number(opts.seed);
        if (!Number.isInteger(seed) || seed < 0) throw new InputError('E_BAD_FLAG', `--seed must be a non-negative integer, got '${opts.seed}'`);
      }
      const outDtype = opts.outDtype === undefined ? undefined : parseFloatDType(opts.outDtype);
      if (opts.outDtype !== undefined && !outDtype) throw new InputError('E_BAD_FLAG', `--out-dtype must be f32, f16 or bf16, got '${opts.outDtype}'`);
      const maxShardBytes = parseSize(opts.shardSize);
      const recipe = loadRecipeFile(config);
      const showBar = opts.progress && !opts.json;
      const bar = showBar ? new cliProgress.SingleBar({ format: 'merging [{bar}] {value}/{total} {name}', noTTYOutput: true, stream: process.stderr, etaBuffer: 20 }, cliProgress.Presets.shades_classic) : null;
      let started = false;
      try {
        const result = mergeToDisk(recipe, opts.output, {
          seed,
          outDtype,
          maxShardBytes,
          onProgress: (done, total, name) => {
            if (!bar) return;
            if (!started) {
              bar.start(total, 0, { name: '' });
              started = true;
            }
            bar.update(done, { name });
          },
        });
        bar?.stop();
        if (opts.json) process.stdout.write(`${JSON.stringify(result)}\n`);
        else process.stdout.write(`merged ${result.tensors} tensors (${formatBytes(result.bytesWritten)}) into ${result.dir} in ${result.seconds.toFixed(1)} s; recipe ${result.recipeHash.slice(0, 12)}\n`);
      } catch (err) {
        if (started) bar?.stop();
        throw err;
      }
    });
}
