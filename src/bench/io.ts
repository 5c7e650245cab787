/**
 * `evomerge bench io`: read throughput of evomerge's checkpoint reader against plain
 * `fs.readSync` of the same byte ranges, measured in the same run on a generated checkpoint
 * (sharded, F32 and BF16). Both read from the page cache after a warm-up pass, so the ratio
 * measures the reader's own overhead (validation, lookup, allocation, dtype conversion).
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { CheckpointWriter, openCheckpoint, SafetensorsFile, type Checkpoint } from '../checkpoint/index.ts';
import { InputError } from '../errors.ts';
import { formatBytes } from '../format.ts';
import type { FloatDType } from '../tensor/dtype.ts';

export interface IoBenchRow {
  case: string;
  dtype: FloatDType;
  bytes: number;
  seconds: number;
  gbPerSecond: number;
  /** Throughput relative to the plain fs.readSync baseline of the same bytes. */
  ratioToFs: number;
}

export interface IoBenchResult {
  sizeBytes: number;
  tensors: number;
  shards: number;
  repeats: number;
  rows: IoBenchRow[];
}

function generate(dir: string, dtype: FloatDType, totalBytes: number): void {
  const rows = 1024;
  const cols = 2048;
  const elementBytes = dtype === 'F32' ? 4 : 2;
  const count = Math.max(1, Math.round(totalBytes / (rows * cols * elementBytes)));
  const tensors = Array.from({ length: count }, (_, i) => ({ name: `model.layers.${i}.mlp.up_proj.weight`, dtype, shape: [rows, cols] }));
  const writer = new CheckpointWriter(dir, { tensors, maxShardBytes: 256 * 2 ** 20 });
  const values = new Float32Array(rows * cols);
  for (let i = 0; i < values.length; i++) values[i] = Math.sin(i) * 0.02;
  for (const t of tensors) writer.write(t.name, values);
  writer.finish({ config: { architectures: ['Benchmark'], num_hidden_layers: count } });
}

/** The baseline: the same byte ranges read with fs.readSync into fresh buffers. */
function plainRead(ckpt: Checkpoint): number {
  let bytes = 0;
  for (const file of ckpt.files) {
    const st = SafetensorsFile.open(file);
    const ranges = st.header.entries.map((e) => [st.header.dataStart + e.begin, e.byteLength] as const);
    st.close();
    const fd = openSync(file, 'r');
    for (const [pos, len] of ranges) {
      const buf = new Uint8Array(len);
      let off = 0;
      while (off < len) off += readSync(fd, buf, off, len - off, pos + off);
      bytes += len;
    }
    closeSync(fd);
  }
  return bytes;
}

function readerRead(dir: string): number {
  // opening (header validation) is part of the measured cost
  const ckpt = openCheckpoint(dir);
  let bytes = 0;
  for (const name of ckpt.names()) {
    ckpt.readFloat32(name);
    bytes += ckpt.info(name).byteLength;
  }
  ckpt.close();
  return bytes;
}

/** Best time of each function over `repeats` interleaved passes (both see the same machine load). */
function timeInterleaved(fns: ReadonlyArray<() => number>, repeats: number): Array<{ seconds: number; bytes: number }> {
  const best = fns.map(() => ({ seconds: Infinity, bytes: 0 }));
  for (let r = 0; r < repeats; r++) {
    fns.forEach((fn, i) => {
      const t0 = process.hrtime.bigint();
      const bytes = fn();
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (seconds < best[i]!.seconds) best[i] = { seconds, bytes };
    });
  }
  return best;
}

export function runIoBench(options: { sizeMb: number; repeats: number; log?: (line: string) => void }): IoBenchResult {
  const log = options.log ?? (() => {});
  const root = mkdtempSync(join(tmpdir(), 'evomerge-bench-io-'));
  const rows: IoBenchRow[] = [];
  let tensors = 0;
  let shards = 0;
  try {
    for (const dtype of ['F32', 'BF16'] as const) {
      const dir = join(root, dtype);
      log(`generating a ${formatBytes(options.sizeMb * 2 ** 20)} ${dtype} checkpoint in ${dir} ...`);
      generate(dir, dtype, options.sizeMb * 2 ** 20);
      const ckpt = openCheckpoint(dir);
      tensors = ckpt.names().length;
      shards = ckpt.files.length;
      plainRead(ckpt); // warm the page cache
      log(`measuring ${dtype}: fs.readSync baseline and evomerge readFloat32, interleaved, best of ${options.repeats} ...`);
      const [base, ours] = timeInterleaved([() => plainRead(ckpt), () => readerRead(dir)], options.repeats) as [{ seconds: number; bytes: number }, { seconds: number; bytes: number }];
      ckpt.close();
      const gb = (b: number, s: number) => b / s / 1e9;
      rows.push({ case: 'fs.readSync (baseline)', dtype, bytes: base.bytes, seconds: base.seconds, gbPerSecond: gb(base.bytes, base.seconds), ratioToFs: 1 });
      rows.push({
        case: dtype === 'F32' ? 'evomerge readFloat32' : 'evomerge readFloat32 (BF16 -> F32)',
        dtype, bytes: ours.bytes, seconds: ours.seconds, gbPerSecond: gb(ours.bytes, ours.seconds),
        ratioToFs: base.seconds / ours.seconds,
      });
      rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return { sizeBytes: options.sizeMb * 2 ** 20, tensors, shards, repeats: options.repeats, rows };
}

export function formatIoBench(r: IoBenchResult): string {
  const lines = [`checkpoint: ${formatBytes(r.sizeBytes)} per dtype, ${r.tensors} tensors in ${r.shards} shards, best of ${r.repeats}`];
  lines.push(`${'case'.padEnd(38)} ${'dtype'.padEnd(5)} ${'GB/s'.padStart(8)} ${'vs fs'.padStart(7)}`);
  for (const row of r.rows) lines.push(`${row.case.padEnd(38)} ${row.dtype.padEnd(5)} ${row.gbPerSecond.toFixed(2).padStart(8)} ${row.ratioToFs.toFixed(2).padStart(7)}`);
  return lines.join('\n');
}

export function registerBench(bench: Command): void {
  bench
    .command('io')
    .description('checkpoint read throughput against plain fs.readSync of the same bytes (generates a temporary checkpoint)')
    .option('--size-mb <n>', 'checkpoint size per dtype in MiB', '1024')
    .option('--repeats <n>', 'timed passes (best is kept)', '5')
    .option('--json', 'print one JSON object')
    .action((opts: { sizeMb: string; repeats: string; json?: boolean }) => {
      const sizeMb = Number(opts.sizeMb);
      const repeats = Number(opts.repeats);
      if (!(sizeMb > 0)) throw new InputError('E_BAD_FLAG', `--size-mb must be a positive number, got '${opts.sizeMb}'`);
      if (!Number.isInteger(repeats) || repeats < 1) throw new InputError('E_BAD_FLAG', `--repeats must be a positive integer, got '${opts.repeats}'`);
      const result = runIoBench({ sizeMb, repeats, log: (l) => process.stderr.write(`${l}\n`) });
      process.stdout.write(opts.json ? `${JSON.stringify(result)}\n` : `${formatIoBench(result)}\n`);
    });
}
