/**
 * A closed pipe is not a failure: `evomerge lineage demo 848 | head -40` ends when `head` has read
 * its lines, as `git log | head` does. Node ignores SIGPIPE and reports the closed pipe as an
 * 'error' event with code EPIPE on process.stdout or process.stderr, which, unhandled, crashes
 * with a stack trace.
 *
 * `watchPipes()` (installed once by main.ts) handles those events: from the first EPIPE on, writes
 * to that stream are no-ops, and the command ends quietly with exit code 0. A command that must
 * stop cleanly instead (a search stops after the candidates in flight, so its run stays
 * resumable) registers its own handler with `onOutputClosed(handler)`, which replaces the exit
 * for as long as it is registered:
 *
 *   const release = onOutputClosed(() => controller.abort());
 *   try { await search(...) } finally { release(); }
 *
 * The handler is called once, for the first stream that closes; its writes to the closed stream
 * keep being no-ops, and the other stream still works (stderr stays open when only stdout's
 * reader went away). Errors other than EPIPE are thrown as before.
 */

export type ClosedStream = 'stdout' | 'stderr';
export type OutputClosedHandler = (stream: ClosedStream) => void;

const closed = new Set<ClosedStream>();
const handlers: OutputClosedHandler[] = [];
let installed = false;
let notified = false;
let defaultHandler: OutputClosedHandler = () => process.exit(0);

function mute(stream: NodeJS.WriteStream): void {
  // a no-op write that still calls back, so code awaiting a write's callback goes on
  stream.write = ((_chunk: unknown, encoding?: unknown, cb?: unknown) => {
    const done = typeof encoding === 'function' ? encoding : cb;
    if (typeof done === 'function') process.nextTick(done as () => void);
    return true;
  }) as NodeJS.WriteStream['write'];
}

function closedPipe(name: ClosedStream, stream: NodeJS.WriteStream): void {
  if (closed.has(name)) return;
  closed.add(name);
  mute(stream);
  if (notified) return;
  notified = true;
  const handler = handlers.at(-1) ?? defaultHandler;
  handler(name);
}

/**
 * Handle EPIPE on stdout and stderr (idempotent). `onClosed` replaces the default (exit 0) for
 * every command; `onOutputClosed` is the per-command way.
 */
export function watchPipes(onClosed?: OutputClosedHandler): void {
  if (onClosed) defaultHandler = onClosed;
  if (installed) return;
  installed = true;
  for (const [name, stream] of [['stdout', process.stdout], ['stderr', process.stderr]] as const) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') closedPipe(name, stream);
      else throw err;
    });
  }
}

/** Replace the default exit by `handler` while registered; call the returned function to release it. */
export function onOutputClosed(handler: OutputClosedHandler): () => void {
  handlers.push(handler);
  return () => {
    const i = handlers.lastIndexOf(handler);
    if (i >= 0) handlers.splice(i, 1);
  };
}

/** Whether a reader of stdout (or stderr) went away: a long command may stop producing output. */
export function outputClosed(stream: ClosedStream = 'stdout'): boolean {
  return closed.has(stream);
}
