/**
 * A persistent evaluator's process: started once, it keeps its runtime (and its model, and its
 * GPU) loaded between candidates and answers one request line per candidate (the protocol:
 * src/eval/protocol.ts). This class owns the process: it starts it and waits for its hello,
 * sends requests one at a time and reads each answer under a timeout, and stops it (SIGTERM to
 * its process group, SIGKILL after a grace period). A crash, a timeout, a line that breaks the
 * protocol, or a line printed while no request is outstanding leaves the process unusable
 * (`usable` false, stopped before the failure is reported): the caller starts a fresh one for the
 * next candidate. The program's stderr is appended to a log file (in the run folder, see
 * src/candidate/slots.ts), read back for the tail an error message quotes.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { guardChild, signalGroup } from './children.ts';
import { CommandFailedError } from './errors.ts';
import { parseAnswerLine, parseHello, requestLine, type EvaluationRequest, type EvaluatorHello } from './protocol.ts';

/** Longest line read from a program (a longer one breaks the protocol). */
const MAX_LINE = 16 * 1024 * 1024;
/** Time a program has to exit after SIGTERM before SIGKILL. */
export const STOP_GRACE_MS = 5000;

export interface EvaluatorProcessOptions {
  argv: readonly string[];
  env: Record<string, string>;
  /** File the program's stderr is appended to; absent: a temporary file removed with the process. */
  log?: string | null;
  startupTimeoutMs: number;
  graceMs?: number;
}

type Waiter = { resolve: (line: string) => void; reject: (err: Error) => void };

export class EvaluatorProcess {
  readonly hello: EvaluatorHello;
  private constructor(
    private readonly child: ChildProcessByStdio<Writable, Readable, null>,
    private readonly io: Io,
    hello: EvaluatorHello,
  ) {
    this.hello = hello;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** False once the process exited, broke the protocol or timed out: start a fresh one. */
  get usable(): boolean {
    return this.io.exit === null && !this.io.broken;
  }

  /** Starts the program and waits for its hello line (at most `startupTimeoutMs`). */
  static async start(o: EvaluatorProcessOptions): Promise<EvaluatorProcess> {
    const program = o.argv[0]!;
    const work = mkdtempSync(join(tmpdir(), 'evomerge-evaluator-'));
    const ownLog = !o.log;
    const log = o.log ?? join(work, 'stderr.log');
    mkdirSync(dirname(log), { recursive: true });
    const logFd = openSync(log, 'a');
    const logStart = statSync(log).size;
    let child: ChildProcessByStdio<Writable, Readable, null>;
    try {
      child = spawn(program, o.argv.slice(1), { shell: false, cwd: work, detached: true, stdio: ['pipe', 'pipe', logFd], env: { ...process.env, ...o.env } }) as ChildProcessByStdio<Writable, Readable, null>;
    } finally {
      closeSync(logFd); // the child holds its own descriptor
    }
    guardChild(child);
    const io = new Io(child, program, log, logStart, () => {
      rmSync(work, { recursive: true, force: true });
      if (ownLog) rmSync(log, { force: true });
    }, o.graceMs ?? STOP_GRACE_MS);
    io.note(`started pid ${child.pid ?? '-'}: ${o.argv.join(' ')}`);
    try {
      const line = await io.next(o.startupTimeoutMs, 'its hello line');
      const hello = parseHello(line, program);
      io.note(`pid ${child.pid} speaks protocol ${hello.version}${hello.capabilities.length ? ` (${hello.capabilities.join(', ')})` : ''}`);
      return new EvaluatorProcess(child, io, hello);
    } catch (err) {
      const timedOut = err instanceof TimeoutError;
      const tail = io.tail();
      await io.shutdown(timedOut);
      throw timedOut ? new CommandFailedError('E_EVAL_COMMAND_TIMEOUT', `'${program}' (a persistent evaluator) printed no hello line within its startup_timeout_s of ${o.startupTimeoutMs / 1000} s and was stopped${tail}`) : err;
    }
  }

  /**
   * One request and its answer (the answer's JSON object). Rejects, after stopping the process,
   * on a timeout, a crash or a line that breaks the protocol.
   */
  async request(req: EvaluationRequest, timeoutMs: number, signal?: AbortSignal): Promise<Record<string, unknown>> {
    const program = this.io.program;
    if (!this.usable) throw new CommandFailedError('E_EVAL_PROTOCOL', `'${program}' (pid ${this.pid}) can take no more requests`);
    const onAbort = () => this.io.fail(new CommandFailedError('E_EVAL_ABORTED', `the request to '${program}' was cancelled`));
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      this.io.write(requestLine(req));
      const line = await this.io.next(timeoutMs, `its answer to request ${req.id}`);
      return parseAnswerLine(line, req.id, program);
    } catch (err) {
      const timedOut = err instanceof TimeoutError;
      const tail = this.io.tail();
      this.io.broken = true;
      await this.io.shutdown(timedOut);
      if (timedOut) throw new CommandFailedError('E_EVAL_COMMAND_TIMEOUT', `'${program}' (pid ${this.pid}) gave no answer to request ${req.id} within its timeout of ${timeoutMs / 1000} s and was stopped; raise timeout_s in the manifest${tail}`);
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** SIGTERM to the program's group, SIGKILL after the grace period; resolves once it exited. */
  stop(): Promise<void> {
    return this.io.shutdown(false);
  }

  /** SIGKILL at once, without waiting (for a synchronous dispose). */
  kill(): void {
    this.io.broken = true;
    signalGroup(this.pid, 'SIGKILL');
  }
}

class TimeoutError extends Error {}

/** The process's stdout as lines, its exit, and the log. */
class Io {
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  broken = false;
  private buffer = '';
  private readonly lines: string[] = [];
  private waiter: Waiter | null = null;
  private readonly exited: Promise<void>;
  private stopping: Promise<void> | null = null;

  constructor(
    private readonly child: ChildProcessByStdio<Writable, Readable, null>,
    readonly program: string,
    private readonly log: string,
    private readonly logStart: number,
    private readonly cleanup: () => void,
    private readonly graceMs: number,
  ) {
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => this.data(chunk));
    // a program that died leaves a closed pipe: the exit handler reports it
    child.stdin.on('error', () => {});
    this.exited = new Promise((resolve) => {
      child.on('error', (e) => {
        this.exit ??= { code: null, signal: null };
        this.fail(new CommandFailedError('E_EVAL_COMMAND_START', `cannot start '${program}': ${e.message}; check the first entry of 'command' in the manifest`));
        this.cleanup();
        resolve();
      });
      child.on('close', (code, signal) => {
        this.exit = { code, signal };
        // anything it started in its group goes with it
        if (child.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
        this.note(`pid ${child.pid} exited with ${code ?? signal}`);
        this.fail(new CommandFailedError('E_EVAL_COMMAND_EXIT', `'${program}' (a persistent evaluator, pid ${child.pid}) exited with ${code ?? signal}${this.tail()}`));
        this.cleanup();
        resolve();
      });
    });
  }

  private data(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 1);
      if (line.trim() === '') continue;
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = null;
        w.resolve(line);
      } else {
        // a line nobody asked for: the program does not follow the protocol, so it is not trusted again
        this.broken = true;
        this.note(`pid ${this.child.pid} printed a line while no request was outstanding, and will be replaced: ${JSON.stringify(line.slice(0, 200))}`);
        this.lines.push(line);
      }
    }
    if (this.buffer.length > MAX_LINE) {
      this.buffer = '';
      this.fail(new CommandFailedError('E_EVAL_PROTOCOL', `'${this.program}' printed a line longer than ${MAX_LINE} bytes on stdout; a persistent evaluator prints only protocol lines there`));
    }
  }

  /** The next line, within `timeoutMs` (0: no limit); rejects with TimeoutError, or with the exit. */
  next(timeoutMs: number, what: string): Promise<string> {
    if (this.lines.length > 0) return Promise.reject(new CommandFailedError('E_EVAL_PROTOCOL', `'${this.program}' printed ${JSON.stringify(this.lines[0]!.slice(0, 200))} on stdout before it was asked; a persistent evaluator prints only its hello and one answer per request there (logs go to stderr)`));
    if (this.exit) return Promise.reject(new CommandFailedError('E_EVAL_COMMAND_EXIT', `'${this.program}' exited with ${this.exit.code ?? this.exit.signal} before ${what}${this.tail()}`));
    return new Promise<string>((resolve, reject) => {
      const timer = timeoutMs > 0 ? setTimeout(() => {
        if (this.waiter?.resolve !== done) return;
        this.waiter = null;
        reject(new TimeoutError(what));
      }, timeoutMs) : null;
      const done = (line: string) => {
        if (timer) clearTimeout(timer);
        resolve(line);
      };
      this.waiter = { resolve: done, reject: (e) => { if (timer) clearTimeout(timer); reject(e); } };
    });
  }

  /** Rejects the outstanding read (if any) with `err`. */
  fail(err: Error): void {
    const w = this.waiter;
    this.waiter = null;
    w?.reject(err);
  }

  write(line: string): void {
    this.child.stdin.write(line);
  }

  /** Stops the program: SIGKILL at once (`now`) or SIGTERM then SIGKILL after the grace period. */
  shutdown(now: boolean): Promise<void> {
    if (this.exit) return this.exited;
    if (this.stopping && !now) return this.stopping;
    const pid = this.child.pid!;
    this.broken = true;
    this.child.stdin.end();
    signalGroup(pid, now ? 'SIGKILL' : 'SIGTERM');
    this.note(`${now ? 'SIGKILL' : 'SIGTERM'} sent to pid ${pid}`);
    const killer = now ? null : setTimeout(() => {
      signalGroup(pid, 'SIGKILL');
      this.note(`pid ${pid} still alive ${this.graceMs / 1000} s after SIGTERM: SIGKILL sent`);
    }, this.graceMs);
    this.stopping = this.exited.then(() => { if (killer) clearTimeout(killer); });
    return this.stopping;
  }

  /** A line of evomerge's own in the log. */
  note(text: string): void {
    try {
      const fd = openSync(this.log, 'a');
      try {
        writeSync(fd, `[evomerge ${new Date().toISOString()}] ${text}\n`);
      } finally {
        closeSync(fd);
      }
    } catch {
      // the log is a convenience: a full disk must not fail the candidate
    }
  }

  /** The last lines the program wrote to stderr since it started, for an error message (empty: none). */
  tail(): string {
    try {
      const size = statSync(this.log).size;
      const from = Math.max(this.logStart, size - 4096);
      const buf = Buffer.alloc(size - from);
      const fd = openSync(this.log, 'r');
      try {
        readSync(fd, buf, 0, buf.length, from);
      } finally {
        closeSync(fd);
      }
      const lines = buf.toString('utf8').split('\n').filter((l) => l.trim() && !l.startsWith('[evomerge ')).slice(-3);
      return lines.length ? `: ${lines.join(' | ')} (stderr in ${this.log})` : ` (stderr in ${this.log})`;
    } catch {
      return '';
    }
  }
}
