/**
 * `evomerge bench queue`: what the BullMQ queue (src/queue) costs against the local pool. The
 * same seeded PS search on the small vision zoo runs four times: the local pool with 1 and 2
 * threads, and through the queue with 1 and 2 `evomerge worker` processes (one candidate at a
 * time each, so the widths match). Every variant must give the same candidates and the same
 * best recipe; the table gives evaluations per minute and the overhead per candidate of the
 * queue against the local pool of the same width.
 *
 * Rates are taken between the first and the last result of a search, so the one-off start
 * (opening the zoo, a worker finding the run in the registry and loading its sources) does not
 * spread over the candidates; the start is reported apart.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { Queue } from 'bullmq';
import { stringify } from 'yaml';
import { InputError, RuntimeFailure } from '../errors.ts';
import { localRunner } from '../pool/index.ts';
import { checkReachable, parseQueueUrl, queueNameFor, queueRuntime, type QueueUrl } from '../queue/index.ts';
import { startSearch } from '../search/engine.ts';
import { RunStore } from '../store/index.ts';
import { zooBuilder } from '../zoo/index.ts';

const BIN = fileURLToPath(new URL('../cli/bin.mjs', import.meta.url));

export interface QueueBenchRow {
  variant: string;
  via: 'local' | 'queue';
  /** Threads of the local pool, or worker processes on the queue. */
  width: number;
  evaluations: number;
  /** Wall time of the whole search. */
  seconds: number;
  /** Until the first result: opening the run, workers attaching and loading sources. */
  startSeconds: number;
  /** Between the first and the last result. */
  evaluationsPerMinute: number;
  msPerCandidate: number;
  /** msPerCandidate minus that of the local pool of the same width (0 for the local rows). */
  overheadMsPerCandidate: number;
  sameAsLocal: boolean;
}

export interface QueueBenchResult {
  queue: string;
  budget: number;
  zoo: string;
  rows: QueueBenchRow[];
  identical: boolean;
}

/** Candidates in proposal order with their scores, and the best recipe: what must not depend on the executor. */
function outcome(db: string, runName: string): { fingerprint: string; queueName: string } {
  const store = RunStore.open(db, { readonly: true });
  try {
    const run = store.run(runName)!;
    const rows = store.candidates(run.id).map((c) => [c.proposalId, c.genome, c.state, c.fitness]);
    const best = store.best(run.id, 1)[0];
    return { fingerprint: JSON.stringify({ rows, best: best ? [best.recipe, best.fitness] : null }), queueName: queueNameFor(run) };
  } finally {
    store.close();
  }
}

function spaceFile(dir: string, zoo: string, budget: number): string {
  const path = join(dir, 'bench-queue.yaml');
  writeFileSync(path, stringify({
    name: 'bench-queue', zoo, mode: 'ps',
    ps: { method: 'task_arithmetic', layers_per_group: 1, evolve: { weight: [0, 1] }, fixed: { lambda: 1 } },
    optimizer: { id: 'cmaes', options: { sigma0: 0.25, popsize: 6 } },
    budget: { evaluations: budget }, seed: 3, workers: 1, timeout_seconds: 120, backend: 'wasm',
  }));
  return path;
}

function startWorkers(url: string, runName: string, n: number): { procs: ChildProcess[]; logs: string[][]; stop(): Promise<void> } {
  const procs: ChildProcess[] = [];
  const logs: string[][] = [];
  for (let i = 0; i < n; i++) {
    const proc = spawn(process.execPath, [BIN, 'worker', '--queue', url, '--concurrency', '1', '--run', runName], { stdio: ['ignore', 'ignore', 'pipe'] });
    const log: string[] = [];
    proc.stderr!.on('data', (d: Buffer) => { log.push(...d.toString().split('\n').filter(Boolean)); if (log.length > 200) log.splice(0, log.length - 200); });
    procs.push(proc);
    logs.push(log);
  }
  return {
    procs, logs,
    async stop() {
      await Promise.all(procs.map((p) => new Promise<void>((resolve) => {
        if (p.exitCode !== null || p.signalCode !== null) return resolve();
        // SIGTERM lets a worker close its BullMQ connections; the search is over, so nothing is in flight
        const hard = setTimeout(() => p.kill('SIGKILL'), 10_000);
        p.once('exit', () => { clearTimeout(hard); resolve(); });
        p.kill('SIGTERM');
      })));
    },
  };
}

async function obliterate(url: QueueUrl, queueName: string): Promise<void> {
  const q = new Queue(queueName, { connection: { ...url.connection, maxRetriesPerRequest: null }, prefix: url.prefix });
  try {
    await q.obliterate({ force: true });
  } finally {
    await q.close();
  }
}

export async function runQueueBench(options: { queue: string; budget: number; widths?: number[]; zooDir?: string; log?: (l: string) => void }): Promise<QueueBenchResult> {
  const log = options.log ?? (() => {});
  const url = parseQueueUrl(options.queue);
  await checkReachable(url);
  const widths = options.widths ?? [1, 2];
  // a fixed folder, so a second run finds the zoo in the zoo cache instead of training it again
  const zoo = options.zooDir ?? join(tmpdir(), 'evomerge-bench-queue-zoo');
  mkdirSync(zoo, { recursive: true });
  log(`small vision zoo in ${zoo} (built once, then reused from the zoo cache) ...`);
  await zooBuilder('vision').build(zoo, { seed: 0, small: true });
  const root = mkdtempSync(join(tmpdir(), 'evomerge-bench-queue-'));
  const space = spaceFile(root, zoo, options.budget);
  const rows: Array<Omit<QueueBenchRow, 'overheadMsPerCandidate' | 'sameAsLocal'> & { fingerprint: string }> = [];
  try {
    for (const via of ['local', 'queue'] as const) {
      for (const width of widths) {
        const variant = via === 'local' ? `local pool, ${width} thread${width === 1 ? '' : 's'}` : `queue, ${width} worker${width === 1 ? '' : 's'}`;
        const runName = `bench-queue-${via}-${width}`;
        const db = join(root, runName, 'run.sqlite');
        log(`${variant}: ${options.budget} candidates ...`);
        const workers = via === 'queue' ? startWorkers(options.queue, runName, width) : null;
        const times: number[] = [];
        const t0 = performance.now();
        try {
          await startSearch(space, {
            runtime: { local: localRunner, queue: queueRuntime }, dbPath: db, runName, workers: width,
            queue: via === 'queue' ? { url, slots: width } : undefined,
            onEvent: (e) => { if (e.type === 'result' && !e.reused) times.push(performance.now()); },
          });
        } catch (err) {
          const tail = workers?.logs.flatMap((l, i) => l.slice(-5).map((x) => `worker ${i + 1}: ${x}`)).join('\n');
          throw tail ? new RuntimeFailure('E_BENCH_QUEUE', `${variant} failed: ${(err as Error).message}\n${tail}`, { cause: err }) : err;
        } finally {
          await workers?.stop();
        }
        const seconds = (performance.now() - t0) / 1000;
        const { fingerprint, queueName } = outcome(db, runName);
        if (via === 'queue') await obliterate(url, queueName).catch((e: Error) => log(`could not remove queue ${queueName}: ${e.message}`));
        const first = times[0] ?? t0;
        const steady = times.length > 1 ? (times[times.length - 1]! - first) / (times.length - 1) : NaN;
        rows.push({
          variant, via, width, evaluations: times.length, seconds, startSeconds: (first - t0) / 1000,
          evaluationsPerMinute: 60_000 / steady, msPerCandidate: steady, fingerprint,
        });
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  const reference = rows[0]!.fingerprint;
  const out = rows.map(({ fingerprint, ...r }) => {
    const local = rows.find((x) => x.via === 'local' && x.width === r.width)!;
    return { ...r, overheadMsPerCandidate: r.msPerCandidate - local.msPerCandidate, sameAsLocal: fingerprint === reference };
  });
  return { queue: url.display, budget: options.budget, zoo, rows: out, identical: out.every((r) => r.sameAsLocal) };
}

export function registerBench(bench: Command): void {
  bench
    .command('queue')
    .description('overhead per candidate of the BullMQ queue against the local pool, and evaluations per minute with 1 and 2 worker processes (needs Redis)')
    .option('--queue <url>', 'Redis to use', 'redis://127.0.0.1:6379')
    .option('--budget <n>', 'candidates per search', '48')
    .option('--json', 'print one JSON object')
    .action(async (o: { queue: string; budget: string; json?: boolean }) => {
      const budget = Number(o.budget);
      if (!Number.isInteger(budget) || budget < 2) throw new InputError('E_BAD_FLAG', `--budget must be an integer of at least 2, got '${o.budget}'`);
      const r = await runQueueBench({ queue: o.queue, budget, log: (l) => process.stderr.write(`${l}\n`) });
      if (o.json) process.stdout.write(`${JSON.stringify(r)}\n`);
      else {
        const w = [22, 6, 8, 8, 10, 10, 14, 5];
        const line = (cells: string[]) => `${cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' ')}\n`;
        process.stdout.write(line(['variant', 'evals', 'seconds', 'start s', 'evals/min', 'ms/cand', 'overhead ms', 'same']));
        for (const x of r.rows) {
          process.stdout.write(line([x.variant, String(x.evaluations), x.seconds.toFixed(1), x.startSeconds.toFixed(1), x.evaluationsPerMinute.toFixed(1), x.msPerCandidate.toFixed(0), x.via === 'local' ? '-' : `${x.overheadMsPerCandidate >= 0 ? '+' : ''}${x.overheadMsPerCandidate.toFixed(0)}`, x.sameAsLocal ? 'yes' : 'NO']));
        }
        process.stdout.write('rates between the first and last result; overhead: ms per candidate against the local pool of the same width\n');
      }
      if (!r.identical) throw new RuntimeFailure('E_BENCH_QUEUE_DIFFERS', `the variants marked NO gave other candidates or another best recipe than the local pool with 1 thread; the queue must not change a seeded search`);
    });
}
