/** `evomerge search | resume | status | best | lineage | runs`: thin wrappers over src/search. */
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { InputError } from '../../errors.ts';
import { resumeSearch, startSearch, type SearchOptions, type SearchResult } from '../../search/engine.ts';
import { bestCandidates, listRuns, openRun, runStatus } from '../../search/inspect.ts';
import { itemsText, type Budget } from '../../search/loop.ts';
import { isFullFidelity } from '../../store/index.ts';
import { parseQueueUrl } from '../../queue/index.ts';
import { parseSize } from '../../search/preflight.ts';
import { bestTable, lineageChainText, lineageGraphText, lineageJson } from '../../report/index.ts';

const BACKENDS = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;

function positiveInt(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InputError('E_BAD_FLAG', `${flag} must be a positive integer, got '${v}'`);
  return n;
}

function backendFlag(v: string | undefined): (typeof BACKENDS)[number] | undefined {
  if (v === undefined) return undefined;
  if (!(BACKENDS as readonly string[]).includes(v)) throw new InputError('E_BAD_FLAG', `--backend must be one of ${BACKENDS.join(', ')}, got '${v}'`);
  return v as (typeof BACKENDS)[number];
}

/** Live progress: a bar on a terminal, a line every few seconds in logs; Ctrl-C stops gracefully. */
export function progressReporter(label: string) {
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts === 1) {
      process.stderr.write('\nstopping after the candidates in flight (Ctrl-C again to quit at once) ...\n');
      controller.abort();
    } else process.exit(130);
  };
  process.on('SIGINT', onSigint);
  const bar = new cliProgress.SingleBar({
    format: `${label} [{bar}] {value}/{total} | stage {stage} | best {best} | {rate}/min | failed {failed} | {eta_formatted} left`,
    noTTYOutput: true, notTTYSchedule: 5000, hideCursor: true, etaBuffer: 50,
  }, cliProgress.Presets.shades_classic);
  let started = false;
  let done = 0;
  let failed = 0;
  let best = -Infinity;
  let t0 = performance.now();
  const options: Pick<SearchOptions, 'signal' | 'onEvent' | 'onLog'> = {
    signal: controller.signal,
    onLog: (line) => process.stderr.write(`${line}\n`),
    onEvent: (e) => {
      if (e.type === 'stage') {
        if (started) bar.stop();
        // a resumed stage counts from the candidates already stored
        bar.start(e.budget ?? 0, 0, { stage: e.stage, best: '-', rate: '-', failed: 0 });
        started = true;
        done = 0;
        t0 = performance.now();
        return;
      }
      if (e.type !== 'result') return;
      done++;
      if (e.candidate.state === 'failed') failed++;
      // a score on part of the items (multi-fidelity) is never the best
      if (e.candidate.fitness !== null && isFullFidelity(e.candidate) && e.candidate.fitness > best) best = e.candidate.fitness;
      const minutes = (performance.now() - t0) / 60_000;
      bar.update(done, { stage: e.stage, best: Number.isFinite(best) ? best.toFixed(4) : '-', rate: (done / Math.max(minutes, 1e-9)).toFixed(1), failed });
    },
  };
  return {
    options,
    stop() {
      if (started) bar.stop();
      started = false;
      process.off('SIGINT', onSigint);
    },
  };
}

function printResult(r: SearchResult & { dbPath: string }, json: boolean | undefined): void {
  if (json) {
    process.stdout.write(`${JSON.stringify({ run: r.run.name, db: r.dbPath, stages: r.stages.map((s) => ({ stage: s.stage, kind: s.kind, reason: s.reason, evaluated: s.evaluated, reused: s.reused, failed: s.failed, best: s.best?.id ?? null })), best: r.best ? { id: r.best.id, fitness: r.best.fitness, recipe: r.best.recipe } : null })}\n`);
    return;
  }
  for (const s of r.stages) {
    process.stdout.write(`stage ${s.stage} (${s.kind}): ${s.reason}; ${s.evaluated} evaluated, ${s.reused} reused, ${s.failed} failed\n`);
  }
  if (r.best) process.stdout.write(`best: candidate ${r.best.id} (stage ${r.best.stage}, generation ${r.best.generation}), fitness ${r.best.fitness!.toFixed(4)}\n`);
  const stopped = r.stages.some((s) => s.reason === 'stopped');
  process.stdout.write(`run '${r.run.name}' ${stopped ? 'stopped' : 'finished'}: ${r.dbPath}\n${stopped ? `continue with: evomerge resume ${r.run.name}\n` : `see it with: evomerge best ${r.run.name}\n`}`);
}

export function register(program: Command): void {
  const common = (c: Command) => c
    .option('--budget <n>', 'candidates per stage (overrides the space)')
    .option('--minutes <n>', 'wall-clock limit per stage (overrides the space)')
    .option('--workers <n>', 'worker threads (overrides the space)')
    .option('--backend <name>', `tfjs backend: ${BACKENDS.join(', ')}`)
    .option('--db <path>', 'run database (default runs/<run>/run.sqlite)')
    .option('--queue <url>', 'evaluate on `evomerge worker` processes through a BullMQ queue on Redis: redis://host[:port][/db]')
    .option('--queue-slots <n>', 'candidates outstanding on the queue at once (default: --workers, or the space\'s workers); the sum of the workers\' concurrency keeps them all busy')
    .option('--max-memory <size>', 'refuse to start when the memory plan passes this (e.g. 12GB, 12GiB; default: the machine\'s memory)')
    .option('--json', 'print one JSON object at the end');
  // commander gives true for the queue when resume's --no-queue exists and neither flag is given
  type Flags = { budget?: string; minutes?: string; workers?: string; backend?: string; maxMemory?: string; db?: string; json?: boolean; queue?: string | boolean; queueSlots?: string };
  const queueFlag = (o: Flags): SearchOptions['queue'] =>
    o.queue === false ? null : typeof o.queue !== 'string' ? undefined : { url: parseQueueUrl(o.queue), slots: positiveInt('--queue-slots', o.queueSlots) };
  const overrides = (o: Flags): { budget?: Budget; workers?: number; backend?: ReturnType<typeof backendFlag>; queue?: SearchOptions['queue']; maxMemory?: number } => {
    const evaluations = positiveInt('--budget', o.budget);
    const minutes = o.minutes === undefined ? undefined : Number(o.minutes);
    if (minutes !== undefined && !(minutes > 0)) throw new InputError('E_BAD_FLAG', `--minutes must be a positive number, got '${o.minutes}'`);
    return {
      ...(evaluations !== undefined || minutes !== undefined ? { budget: { evaluations, seconds: minutes === undefined ? undefined : minutes * 60 } } : {}),
      workers: positiveInt('--workers', o.workers),
      backend: backendFlag(o.backend),
      ...(o.maxMemory !== undefined ? { maxMemory: parseSize(o.maxMemory) } : {}),
      ...(o.queue !== undefined && o.queue !== true ? { queue: queueFlag(o) } : {}),
    };
  };

  common(program.command('search')
    .description('run an evolutionary merge search described by a search-space YAML (see search-spaces/)')
    .argument('<space>', 'search-space YAML file')
    .option('--run <name>', 'run name (default: the space name)')
    .option('--seed <n>', 'seed (overrides the space)')
    .option('--allow-test-split', 'let evaluators score test splits during the search (normally refused: a search must not be tuned on the numbers it is judged by)'))
    .action(async (spacePath: string, o: Flags & { run?: string; seed?: string; allowTestSplit?: boolean }) => {
      const seed = o.seed === undefined ? undefined : Number(o.seed);
      if (seed !== undefined && !Number.isSafeInteger(seed)) throw new InputError('E_BAD_FLAG', `--seed must be an integer, got '${o.seed}'`);
      const ov = overrides(o);
      const progress = progressReporter(o.run ?? 'search');
      try {
        printResult(await startSearch(spacePath, { ...ov, ...progress.options, runName: o.run, dbPath: o.db, seed, allowTestSplit: o.allowTestSplit }), o.json);
      } finally {
        progress.stop();
      }
    });

  common(program.command('resume')
    .description('continue a run from its last committed step (after a stop, a crash or a kill); a queue run reattaches to its queue')
    .argument('<run>', 'run name')
    .option('--no-queue', 'evaluate on the local pool even though the run went through a queue'))
    .action(async (runName: string, o: Flags) => {
      const ov = overrides(o);
      const progress = progressReporter(runName);
      try {
        printResult(await resumeSearch(runName, { ...ov, ...progress.options, dbPath: o.db }), o.json);
      } finally {
        progress.stop();
      }
    });

  program.command('status')
    .description('progress of a run: candidates by state, best so far, failures, evaluations per minute (works while it runs)')
    .argument('<run>', 'run name')
    .option('--db <path>', 'run database')
    .option('--json', 'print one JSON object')
    .action((runName: string, o: { db?: string; json?: boolean }) => {
      const { store, run, dbPath } = openRun(runName, o.db);
      try {
        const s = runStatus(store, run, dbPath);
        if (o.json) return void process.stdout.write(`${JSON.stringify(s)}\n`);
        const c = s.counts;
        process.stdout.write([
          `run ${s.run} (${s.status}), ${s.db}`,
          `  candidates  ${c.done} done, ${c.failed} failed, ${c.running} running, ${c.pending} pending`,
          `  best        ${s.best ? `candidate ${s.best.id} (stage ${s.best.stage}, generation ${s.best.generation}): ${s.best.fitness.toFixed(4)}` : 'none yet'}`,
          `  speed       ${s.evaluationsPerMinute === null ? '-' : `${s.evaluationsPerMinute.toFixed(1)} evaluations/min`}`,
          `  items       ${itemsText({ items: s.items.evaluations, byFidelity: s.items.byFidelity })}`,
          ...s.failures.map((f) => `  failed      candidate ${f.id}: ${f.error}`),
        ].join('\n') + '\n');
      } finally {
        store.close();
      }
    });

  program.command('best')
    .description('the best candidates of a run as a table: id, fitness, method and the mean of each parameter per model (--json for the recipes and metrics)')
    .argument('<run>', 'run name')
    .option('--top <k>', 'how many', '1')
    .option('--db <path>', 'run database')
    .option('--json', 'print { run, candidates: [{ id, stage, generation, fitness, recipeHash, recipe, metrics }] }')
    .action((runName: string, o: { top: string; db?: string; json?: boolean }) => {
      const top = positiveInt('--top', o.top)!;
      const { store, run } = openRun(runName, o.db);
      try {
        const candidates = bestCandidates(store, run, top);
        if (o.json) return void process.stdout.write(`${JSON.stringify({ run: run.name, candidates })}\n`);
        if (candidates.length === 0) return void process.stdout.write(`run ${run.name} has no successful candidate yet\n`);
        process.stdout.write(`${bestTable(run, candidates, store.counts(run.id).done, top).join('\n')}\n`);
      } finally {
        store.close();
      }
    });

  program.command('lineage')
    .description('where a candidate comes from: the chain of its fittest parents, one line per generation (--full: every ancestor with its parents)')
    .argument('<run>', 'run name')
    .argument('<candidate>', 'candidate id')
    .option('--full', 'every ancestor once, nearest first, with its parents (the whole graph)')
    .option('--depth <n>', 'list ancestors at most N generations back (implies --full; default: all)')
    .option('--db <path>', 'run database')
    .option('--json', 'print { run, candidate, maxDepth, cut: { depth, frontier } | null, chain: [id], lineage: [{ id, depth, stage, generation, operator, fitness, state, parents: [{ id, operator }] }] }')
    .action((runName: string, id: string, o: { full?: boolean; depth?: string; db?: string; json?: boolean }) => {
      const candidateId = positiveInt('<candidate>', id)!;
      const depth = positiveInt('--depth', o.depth) ?? Infinity;
      const { store, run } = openRun(runName, o.db);
      try {
        const c = store.candidate(candidateId);
        if (!c || c.runId !== run.id) throw new InputError('E_NO_CANDIDATE', `run ${run.name} has no candidate ${candidateId}; evomerge best ${run.name} --top 10 lists some`);
        if (o.json) return void process.stdout.write(`${JSON.stringify(lineageJson(store, run, candidateId, depth))}\n`);
        const lines = o.full || o.depth !== undefined ? lineageGraphText(store, run, candidateId, depth) : lineageChainText(store, run, candidateId);
        // one write per line: a reader that stops early (| head) ends the command (cli/pipes.ts)
        for (const line of lines) process.stdout.write(`${line}\n`);
      } finally {
        store.close();
      }
    });

  program.command('runs')
    .description('list the runs under runs/')
    .option('--json', 'print one JSON object')
    .action((o: { json?: boolean }) => {
      const runs = listRuns();
      if (o.json) return void process.stdout.write(`${JSON.stringify({ runs })}\n`);
      if (runs.length === 0) return void process.stdout.write('no runs under runs/ yet (start one with evomerge search <space.yaml>)\n');
      for (const r of runs) process.stdout.write(`${r.run.padEnd(24)} ${r.status.padEnd(9)} ${String(r.candidates).padStart(6)} candidates  best ${r.best === null ? '-' : r.best.toFixed(4)}  ${r.db}\n`);
    });
}
