/**
 * `evomerge merge <config.yaml|recipe.json> -o <dir>`: merge to a Hugging Face folder. Accepts
 * mergekit YAML as is, or an evomerge recipe (JSON or YAML). Every input error is reported before
 * any output is written. A file of several named configs (mergekit-multi) runs stage by stage,
 * one folder per stage under the output (src/report/multi-merge.ts), or only the final one with
 * `--final-only`. A single config merges its tensors on every core (`--threads`, bounded by
 * `--max-memory`: src/merge/parallel.ts); stages of a multi-stage file merge on one thread. What is accepted but ignored (parameters a method does not read, rows cut)
 * prints as `evomerge: warning: ...` lines on stderr.
 */
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { InputError } from '../../errors.ts';
import { parseFloatDType } from '../../tensor/dtype.ts';
import { loadMergeStages } from '../../recipe/index.ts';
import { mergeToDiskThreaded, type MergeResult } from '../../report/merge-folder.ts';
import { parseSize as parsePlanSize } from '../../search/preflight.ts';
import { mergeStages } from '../../report/multi-merge.ts';
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
    .option('--final-only', 'multi-stage configs: write only the final merge, to the output folder itself')
    .option('--threads <n>', 'threads merging tensors (default: the machine\'s cores; fewer when --max-memory does not hold them)')
    .option('--max-memory <size>', 'memory the merge\'s threads may hold together, e.g. 8GB (default: half the machine\'s memory)')
    .option('--json', 'print one JSON object')
    .option('--no-progress', 'no progress bar')
    .action(async (config: string, opts: { output: string; seed?: string; outDtype?: string; shardSize: string; threads?: string; maxMemory?: string; finalOnly?: boolean; json?: boolean; progress: boolean }) => {
      let seed: number | undefined;
      if (opts.seed !== undefined) {
        seed = Number(opts.seed);
        if (!Number.isInteger(seed) || seed < 0) throw new InputError('E_BAD_FLAG', `--seed must be a non-negative integer, got '${opts.seed}'`);
      }
      const outDtype = opts.outDtype === undefined ? undefined : parseFloatDType(opts.outDtype);
      if (opts.outDtype !== undefined && !outDtype) throw new InputError('E_BAD_FLAG', `--out-dtype must be f32, f16 or bf16, got '${opts.outDtype}'`);
      const maxShardBytes = parseSize(opts.shardSize);
      const threads = opts.threads === undefined ? undefined : Number(opts.threads);
      if (threads !== undefined && (!Number.isInteger(threads) || threads < 1)) throw new InputError('E_BAD_FLAG', `--threads must be a positive integer, got '${opts.threads}'`);
      const maxMemory = opts.maxMemory === undefined ? undefined : parsePlanSize(opts.maxMemory);
      const warnings: string[] = [];
      const stages = loadMergeStages(config, warnings);
      const warn = (lines: readonly string[] | undefined) => {
        for (const w of lines ?? []) process.stderr.write(`evomerge: warning: ${w}\n`);
      };
      warn(warnings);
      const multi = stages.length > 1 || stages[0]!.name !== null;
      const showBar = opts.progress && !opts.json;
      const bar = showBar ? new cliProgress.SingleBar({ format: 'merging [{bar}] {value}/{total} {name}', noTTYOutput: true, stream: process.stderr, etaBuffer: 20 }, cliProgress.Presets.shades_classic) : null;
      let started = false;
      const line = (r: MergeResult, label = '') => `merged ${label}${r.tensors} tensors (${formatBytes(r.bytesWritten)}) into ${r.dir} in ${r.seconds.toFixed(1)} s${r.threads && r.threads > 1 ? ` on ${r.threads} threads` : ''}; recipe ${r.recipeHash.slice(0, 12)}\n`;
      try {
        const common = {
          seed,
          outDtype,
          maxShardBytes,
          onProgress: (done: number, total: number, name: string) => {
            if (!bar) return;
            if (!started) {
              bar.start(total, 0, { name: '' });
              started = true;
            }
            bar.update(done, { name });
          },
        };
        if (!multi) {
          const result = await mergeToDiskThreaded(stages[0]!.recipe, opts.output, { ...common, threads, maxMemory });
          bar?.stop();
          warn(result.warnings);
          if (opts.json) process.stdout.write(`${JSON.stringify(result)}\n`);
          else process.stdout.write(line(result));
          return;
        }
        const results = mergeStages(stages, opts.output, {
          ...common,
          finalOnly: opts.finalOnly,
          onStage: () => {
            if (started) bar?.stop();
            started = false;
          },
        });
        bar?.stop();
        for (const r of results) warn(r.warnings?.map((w) => `${r.name ?? 'final'}: ${w}`));
        if (opts.json) process.stdout.write(`${JSON.stringify({ stages: results })}\n`);
        else for (const r of results) process.stdout.write(line(r, `stage ${r.name ?? '(final)'}: `));
      } catch (err) {
        if (started) bar?.stop();
        throw err;
      }
    });
}
