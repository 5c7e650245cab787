/**
 * The `command` evaluator: runs a user's program on the model written as a Hugging Face folder,
 * with its arguments passed as an array (never through a shell), under a timeout, and reads
 * the score as JSON from its standard output. This is how lm-eval-harness or any script plugs in.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../errors.ts';
import type { RunnableModel } from '../models/load.ts';
import { guardChild, signalGroup } from './children.ts';
import { CommandFailedError } from './errors.ts';
import { manifestFitness, type CommandManifest } from './manifest.ts';
import { EvaluatorProcess } from './persistent.ts';
import { buildRequest, checkAnswerError, checkCapabilities, placeholders, programEnv, readAnswer, readLoss, readPartial, substitute, type ItemSubset, type Placement } from './protocol.ts';
import type { EvalContext, EvalResult, Evaluator, PartialScore } from './types.ts';

export { CommandFailedError } from './errors.ts';

const MAX_OUTPUT = 16 * 1024 * 1024;

/**
 * Runs argv without a shell, in a fresh temporary working folder that is removed when the
 * program ends (so whatever it writes beside itself cannot pile up or land in the user's
 * folder); resolves with stdout, rejects on a non-zero exit or the timeout.
 */
export function runProgram(argv: readonly string[], options: { timeoutMs: number; env?: Record<string, string>; signal?: AbortSignal; log?: string | null }): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const work = mkdtempSync(join(tmpdir(), 'evomerge-command-'));
    const removeWork = () => rmSync(work, { recursive: true, force: true });
    // a process group of its own: a timeout or a stop ends whatever it started too (./children.ts)
    const child = spawn(argv[0]!, argv.slice(1), { shell: false, cwd: work, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
    guardChild(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    let timedOut = false;
    const kill = () => (child.pid === undefined ? child.kill('SIGKILL') : signalGroup(child.pid, 'SIGKILL'));
    const log = (b: Buffer) => {
      if (!options.log) return;
      try {
        appendFileSync(options.log, b);
      } catch {
        // the log is a convenience
      }
    };
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
      log(b);
      if (err.reduce((n, x) => n + x.length, 0) < 65536) err.push(b);
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      removeWork();
      reject(new CommandFailedError('E_EVAL_COMMAND_START', `cannot start '${argv[0]}': ${e.message}; check the first entry of 'command' in the manifest`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      // nothing it started outlives it
      if (child.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
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

/** How a command evaluator runs on its evaluation slot (src/candidate/slots.ts). */
export interface CommandOptions {
  /** The slot's GPU, given as CUDA_VISIBLE_DEVICES and `{gpu}`. */
  placement?: Placement;
  /** File the program's stderr is appended to (the run folder's evaluator log). */
  log?: string | null;
  /** Grace period between SIGTERM and SIGKILL when a persistent program is stopped. */
  graceMs?: number;
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

/** A number (or object) at a dotted path of a program's answer. */
function lookup(obj: Record<string, unknown>, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), obj);
}

/** An answer read as the evaluator's result (./protocol.ts readAnswer), with the standard error it reports (commandSE). */
function answerWithSE(answer: Record<string, unknown>, m: CommandManifest, program: string): EvalResult {
  const r = readAnswer(answer, m, program);
  const se = commandSE(answer, m.metric.name);
  return se === undefined ? r : { ...r, se };
}

/**
 * The `command` evaluator. One-shot (the default): the program is run on each candidate's
 * folder and prints its answer. Persistent (`persistent: true`): the program is started once,
 * on the first candidate, and kept; each candidate is one request line (src/eval/protocol.ts);
 * after a crash, a timeout or a broken line the next candidate starts a fresh process.
 * `close()` stops the program (SIGTERM, then SIGKILL after a grace period).
 */
export class CommandEvaluator implements Evaluator {
  readonly kind = 'command' as const;
  readonly needsModel = false;
  private proc: EvaluatorProcess | null = null;
  private starting: Promise<EvaluatorProcess> | null = null;
  private seq = 0;
  private readonly placement: Placement;
  constructor(private readonly m: CommandManifest, private readonly o: CommandOptions = {}) {
    this.placement = o.placement ?? { gpu: null };
  }
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
  get persistent(): boolean {
    return this.m.persistent;
  }
  /** The pid of the persistent program while it runs (tests check it is gone after a stop). */
  get pid(): number | null {
    return this.proc?.usable ? this.proc.pid : null;
  }

  async evaluate(_model: RunnableModel | null, ctx: EvalContext): Promise<EvalResult> {
    const { answer, program } = await this.ask(ctx, {});
    return answerWithSE(answer, this.m, program);
  }

  /** How the program takes a subset of its items (manifest `subset`), or null: every item. */
  get subset(): 'range' | 'first' | null {
    return this.m.subset?.form ?? null;
  }

  /** Items for multi-fidelity scoring: the manifest's subset.items (capped by its limit), or null without subset. */
  itemCount(): number | null {
    return this.m.subset ? Math.min(this.m.subset.items, this.m.limit ?? Infinity) : null;
  }

  /**
   * Scores positions from..to-1 of the program's own item order (form range) or its first `to`
   * items (form first; `from` is then 0): multi-fidelity's race (src/candidate/fidelity.ts)
   * asks these instead of item indices, since the order is the program's.
   */
  async scoreSubset(ctx: EvalContext, subset: ItemSubset): Promise<PartialScore> {
    const { answer, program } = await this.ask(ctx, { subset });
    checkAnswerError(answer, program);
    return readPartial(answer, this.m, program, subset.to - subset.from);
  }

  /** Contiguous positions only (see scoreSubset); the race passes them for an evaluator with `subset`. */
  scoreItems(_model: RunnableModel | null, ctx: EvalContext, indices: readonly number[]): Promise<PartialScore> {
    const from = indices[0] ?? 0;
    if (indices.some((v, i) => v !== from + i)) throw new Error(`evaluator ${this.m.id} scores contiguous positions of its program's order; it was given ${indices.length} scattered indices`);
    return this.scoreSubset(ctx, { from, to: from + indices.length });
  }

  /** The result that partial sums stand for: the primary metric is their mean. */
  resultOf(p: PartialScore): EvalResult {
    const value = p.count > 0 ? p.primary.sum / p.count : 0;
    return { fitness: manifestFitness(this.m, value), metrics: { [this.m.metric.name]: value, samples: p.count }, samples: p.count };
  }

  /**
   * The program's loss and its gradient with respect to the merged tensors (manifest
   * `gradient: true`), written by the program to `path` (read by src/refine/command.ts).
   */
  async gradient(ctx: EvalContext, o: { path: string; loss: 'supervised' | 'entropy' }): Promise<{ loss: number; answer: Record<string, unknown> }> {
    if (!this.m.gradient) throw new InputError('E_REFINE_EVALUATOR', `evaluator ${this.m.id} (${this.m.file}) does not set gradient: true, so its program returns no gradient`);
    const { answer, program } = await this.ask(ctx, { gradient: o });
    checkAnswerError(answer, program);
    return { loss: readLoss(answer, this.m, program), answer };
  }

  /** One request to the program (run once, or a line to the persistent one) and its answer object. */
  private async ask(ctx: EvalContext, extra: { subset?: ItemSubset; gradient?: { path: string; loss: 'supervised' | 'entropy' } }): Promise<{ answer: Record<string, unknown>; program: string }> {
    if (!ctx.modelDir) throw new InputError('E_EVAL_COMMAND_MODEL', `evaluator ${this.m.id} runs a program on a model folder, and none was given`);
    const dir = await ctx.modelDir();
    const req = buildRequest(this.m, { id: ctx.requestId ?? `r${++this.seq}`, model: dir, ...extra });
    // `{base}` without a known base: this first candidate's folder (a checkpoint of the family too)
    const placement = { ...this.placement, base: this.placement.base ?? dir };
    const argv = substitute(this.m.command, placeholders(this.m, req, placement));
    const env = programEnv(this.m, placement);
    if (!this.m.persistent) {
      const { stdout } = await runProgram(argv, { timeoutMs: this.m.timeout_s * 1000, env, signal: ctx.signal, log: this.o.log });
      return { answer: parseScore(stdout, argv[0]!), program: argv[0]! };
    }
    if (!this.proc?.usable) {
      await this.proc?.stop();
      this.proc = null;
      const started = this.starting ?? this.launch(placement);
      this.starting = null;
      let proc = await started;
      // one that ended while it waited for its first candidate is no fault of this candidate's
      if (!proc.usable) proc = await this.launch(placement);
      this.proc = proc;
    }
    try {
      checkCapabilities(this.m, this.proc.hello, argv[0]!);
    } catch (err) {
      await this.proc.stop();
      this.proc = null;
      throw err;
    }
    const answer = await this.proc.request(req, this.m.timeout_s * 1000, ctx.signal);
    return { answer, program: argv[0]! };
  }

  /**
   * Starts a persistent program now, before its first candidate (an evaluation slot does so when
   * it opens), so its start (interpreter, imports) overlaps the first merge. A start that fails
   * fails the first candidate with its reason.
   */
  prestart(): void {
    if (!this.m.persistent || this.proc || this.starting) return;
    // `{base}` without a known base is the first candidate's folder: start at the first request
    if (!this.placement.base && this.m.command.some((a) => a.includes('{base}'))) return;
    this.starting = this.launch(this.placement);
    this.starting.catch(() => {});
  }

  private launch(placement: Placement): Promise<EvaluatorProcess> {
    const argv = substitute(this.m.command, placeholders(this.m, null, placement));
    return EvaluatorProcess.start({ argv, env: programEnv(this.m, placement), log: this.o.log, startupTimeoutMs: this.m.startup_timeout_s * 1000, graceMs: this.o.graceMs });
  }

  /** Stops a persistent program (resolves once it exited). */
  async close(): Promise<void> {
    const p = this.proc;
    const starting = this.starting;
    this.proc = null;
    this.starting = null;
    await Promise.all([p?.stop(), starting?.then((s) => s.stop(), () => {})]);
  }

  /** Kills a persistent program at once (SIGKILL), for callers that cannot wait. */
  dispose(): void {
    this.proc?.kill();
    void this.starting?.then((s) => s.kill(), () => {});
    this.proc = null;
    this.starting = null;
  }
}
