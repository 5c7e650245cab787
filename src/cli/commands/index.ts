/**
 * The list of CLI commands, explicit and in help order. Each module exports one
 * `register(program)` function; add new commands here.
 */
import type { Command } from 'commander';
import { register as inspect } from './inspect.ts';
import { register as zoo } from './zoo.ts';
import { register as evaluate } from './eval.ts';
import { register as bench } from './bench.ts';
import { register as methods } from './methods.ts';
import { register as merge } from './merge.ts';
import { register as baselines } from './baselines.ts';
import { register as search } from './search.ts';
import { register as demo } from './demo.ts';
import { register as worker } from './worker.ts';
import { register as exportCmd } from './export.ts';
import { register as report } from './report.ts';
import { register as fuse } from './fuse.ts';

export function registerCommands(program: Command): void {
  for (const register of [demo, search, worker, exportCmd, report, inspect, zoo, evaluate, bench, methods, merge, baselines, fuse]) register(program);
}
