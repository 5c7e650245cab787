/**
 * The programs of command evaluators as this process's children: each runs in a process group
 * of its own (spawned detached), so stopping it stops whatever it started too (a vLLM engine's
 * workers, a shell's children), and a Ctrl-C at the terminal reaches evomerge alone, which then
 * stops them itself. Every child is registered here until it exits; if this process exits first
 * (process.exit after a second Ctrl-C, an error), the exit handler SIGKILLs every registered
 * group, so no evaluator outlives the run. A process killed with SIGKILL runs no handler: a
 * persistent evaluator then sees the end of its stdin and exits (the protocol asks it to,
 * src/eval/protocol.ts).
 */
import type { ChildProcess } from 'node:child_process';

const live = new Set<number>();
let installed = false;

function killAll(): void {
  for (const pid of live) signalGroup(pid, 'SIGKILL');
  live.clear();
}

/** Registers a child spawned with `detached: true` until it exits. */
export function guardChild(child: ChildProcess): void {
  const pid = child.pid;
  if (pid === undefined) return;
  if (!installed) {
    installed = true;
    process.on('exit', killAll);
  }
  live.add(pid);
  child.once('exit', () => live.delete(pid));
}

/** Sends `signal` to the process group led by `pid` (to the process alone if it has no group). Never throws. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** Whether a process with this pid exists (signal 0 probes without sending). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pids of the evaluator processes this process has running (tests check none is left). */
export function liveChildren(): number[] {
  return [...live];
}
