/**
 * `evomerge bench <what>`: measurements that take longer than a test. Each benchmark module in
 * src/bench/ exports `registerBench(bench)` adding its subcommand; list it here.
 */
import type { Command } from 'commander';
import { registerBench as io } from '../../bench/io.ts';
import { registerBench as merge } from '../../bench/merge.ts';
import { registerBench as optimizer } from '../../bench/optimizer.ts';
import { registerBench as evaluation } from '../../bench/eval.ts';
import { registerBench as search } from '../../bench/search.ts';
import { registerBench as faults } from '../../bench/faults.ts';
import { registerBench as fuzz } from '../../bench/fuzz.ts';
import { registerBench as queue } from '../../bench/queue.ts';
import { registerBench as scale } from '../../bench/scale.ts';
import { registerBench as pipeline } from '../../bench/pipeline.ts';
import { registerBench as quality } from '../../bench/quality.ts';
import { registerBench as fuse } from '../../bench/fuse.ts';

const benches: Array<(bench: Command) => void> = [io, optimizer, evaluation, merge, search, faults, fuzz, queue, scale, pipeline, quality, fuse];

export function register(program: Command): void {
  const bench = program.command('bench').description('measure throughput and optimizer efficiency (long; not part of the tests)');
  for (const add of benches) add(bench);
}
