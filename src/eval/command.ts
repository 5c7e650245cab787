/**
 * The `command` evaluator: runs a user's program on the model written as a Hugging Face folder,
 * with its arguments passed as an array (never through a shell), under a timeout, and reads
 * the score as JSON from its standard output. This is how lm-eval-harness or any script plugs in.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RuntimeFailure, InputError } from '../errors.ts';
import type { RunnableModel } from '../models/load.ts';
import { manifestFitness, type CommandManifest } from './manifest.ts';
import type { EvalContext, EvalResult, Evaluator } from './types.ts';

export class CommandFailedError extends RuntimeFailure {
  constructor(code: string, message: string) {
    super(code, message);
  }
}

const MAX_OUTPUT = 16 * 1024 * 1024;

/**
 * Runs argv without a shell, in a fresh temporary working folder that is removed when the
 * program ends (so whatever it writes beside itself cannot pile up or land in the user's
 * folder); resolves with stdout, rejects on a non-zero exit or the timeout.
 */
export function runProgram(argv: readonly string[], options: { timeoutMs: number; env?: Record<string, string>; signal?: AbortSignal }): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const work = mkdtempSync(join(tmpdir(), 'evomerge-command-'));
    const removeWork = () => rmSync(work, { recursive: true, force: true });
    const child = spawn(argv[0]!, argv.slice(1), { shell: false, cwd: work, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    let timedOut = false;
    const kill = () => child.kill('SIGKILL');
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, options.timeoutMs);
    options.signal?.addEventListener('abort', kill, { once: true });
    child.stdout.on('data', (b: Buffer) => {
      size += b.length;
      if (size > MAX_OUTPUT) kill();
      else out.push(b);
    });
    child.stderr.on('data', (b: Buffer) => {
      if (err.reduce((n, x) => n + x.length, 0) < 65536) err.push(b);
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      removeWork();
      reject(new CommandFailedError('E_EVAL_COMMAND_START', `cannot start '${argv[0]}': ${e.message}; check the first entry of 'command' in the manifest`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      removeWork();
      options.signal?.removeEventListener('abort', kill);
      const stderr = Buffer.concat(err).toString('utf8');
      const tail = stderr.trim().split('\n').slice(-3).join(' | ');
      if (timedOut) return reject(new CommandFailedError('E_EVAL_COMMAND_TIMEOUT', `'${argv.join(' ')}' ran past its timeout of ${options.timeoutMs / 1000} s and was killed; raise timeout_s in the manifest`));
      if (size > MAX_OUTPUT) return reject(new CommandFailedError('E_EVAL_COMMAND_OUTPUT', `'${argv[0]}' wrote more than ${MAX_OUTPUT} bytes to stdout; print only the JSON score there`));
      if (code !== 0) return reject(new CommandFailedError('E_EVAL_COMMAND_EXIT', `'${argv.join(' ')}' exited with ${code ?? signal}${tail ? `: ${tail}` : ''}`));
      resolvePromise({ stdout: Buffer.concat(out).toString('utf8'), stderr });
    });
  });
}

/** The JSON object a program printed: all of stdout, or else its last line that parses. */
export function parseScore(stdout: string, program: string): Record<string, unknown> {
  const tryParse = (s: string): Record<string, unknown> | null => {
    try {
      const v = JSON.parse(s) as unknown;
      return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
    } catch {
      return null;
    }
  };
  const whole = tryParse(stdout.trim());
  if (whole) return whole;
  const lines = stdout.trim().split('\n').reverse();
  for (const l of lines) {
    const v = tryParse(l.trim());
    if (v) return v;
  }
  throw new CommandFailedError('E_EVAL_COMMAND_OUTPUT', `'${program}' printed no JSON object on stdout (last line: ${JSON.stringify(lines[0]?.slice(0, 200) ?? '')}); print e.g. {"score": 0.5}`);
}

function lookup(obj: Record<string, unknown>, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), obj);
}

/**
 * The standard error a program reports with its score: a number at `<metric>_stderr` (the name
 * lm-eval-harness gives it, e.g. acc_stderr), `<metric>_se`, `stderr` or `se`; or, from the spread
 * of its items, an `item_scores` array of the metric's per-item values: sqrt(s^2 / n), s^2 their
 * sample variance (./stderr.ts). Undefined when it reports neither.
 */
export function commandSE(score: Record<string, unknown>, metric: string): number | undefined {
  const dot = metric.lastIndexOf('.');
  const [prefix, leaf] = dot < 0 ? ['', metric] : [metric.slice(0, dot + 1), metric.slice(dot + 1)];
  for (const name of [`${prefix}${leaf}_stderr`, `${prefix}${leaf}_se`, 'stderr', 'se']) {
    const v = lookup(score, name);
    if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
  }
  const items = score.item_scores;
  if (Array.isArray(items) && items.length >= 2 && items.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    const xs = items as number[];
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const s2 = xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1);
    return Math.sqrt(s2 / xs.length);
  }
  return undefined;
}

export class CommandEvaluator implements Evaluator {
  readonly kind = 'command' as const;
  readonly needsModel = false;
  constructor(private readonly m: CommandManifest) {}
  get id() {
    return this.m.id;
  }
  get version() {
    return this.m.version;
  }
  get family() {
    return this.m.family;
  }
  get split() {
    return this.m.split;
  }
  get metric() {
    return this.m.metric;
  }

  async evaluate(_model: RunnableModel | null, ctx: EvalContext): Promise<EvalResult> {
    if (!ctx.modelDir) throw new InputError('E_EVAL_COMMAND_MODEL', `evaluator ${this.m.id} runs a program on a model folder, and none was given`);
    const dir = await ctx.modelDir();
    const vars: Record<string, string> = { model: dir, split: this.m.split, limit: String(this.m.limit ?? ''), manifest_dir: this.m.dir };
    const argv = this.m.command.map((a) => a.replace(/\{(model|split|limit|manifest_dir)\}/g, (_, k: string) => vars[k]!));
    const { stdout } = await runProgram(argv, { timeoutMs: this.m.timeout_s * 1000, env: this.m.env, signal: ctx.signal });
    const score = parseScore(stdout, argv[0]!);
    const metrics: Record<string, number> = {};
    for (const [k, v] of Object.entries(score)) if (typeof v === 'number' && Number.isFinite(v)) metrics[k] = v;
    const value = lookup(score, this.m.metric.name);
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new CommandFailedError('E_EVAL_COMMAND_OUTPUT', `'${argv[0]}' printed ${JSON.stringify(score).slice(0, 200)}, which has no finite number at '${this.m.metric.name}' (metric.name in ${this.m.file})`);
    }
    metrics[this.m.metric.name] = value;
    const samples = typeof score.samples === 'number' ? score.samples : 0;
    const se = commandSE(score, this.m.metric.name);
    return { fitness: manifestFitness(this.m, value), metrics, samples, ...(se !== undefined ? { se } : {}) };
  }

  dispose(): void {}
}
