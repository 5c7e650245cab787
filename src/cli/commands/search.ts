/** `evomerge search | resume | status | best | lineage | runs`: thin wrappers over src/search. */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { InputError } from '../../errors.ts';
import { onOutputClosed } from '../pipes.ts';
import { resumeSearch, startSearch, type SearchOptions, type SearchResult } from '../../search/engine.ts';
import { bestCandidates, listRuns, openRun, runStatus } from '../../search/inspect.ts';
import { describeStop, itemsText, type Budget } from '../../search/loop.ts';
import { isFullFidelity, type RunSettings } from '../../store/index.ts';
import { parseQueueUrl } from '../../queue/index.ts';
import { parseSize } from '../../search/preflight.ts';
import { SEARCH_RUNTIME } from '../runtime.ts';
import { bestTable, lineageChainText, lineageGraphText, lineageJson } from '../../report/index.ts';

const BACKENDS = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;

function positiveInt(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InputError('E_BAD_FLAG', `${flag} must be a positive integer, got '${v}'`);
  return n;
}

/** `--gpus 0,1,2`: GPU ids as CUDA_VISIBLE_DEVICES takes them (numbers, or GPU-/MIG- UUIDs). */
export function gpusFlag(v: string | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  const ids = v.split(',').map((x) => x.trim());
  if (ids.length === 0 || ids.some((x) => !/^[A-Za-z0-9:._-]+$/.test(x))) throw new InputError('E_BAD_FLAG', `--gpus must be a comma-separated list of GPU ids such as 0,1,2,3 (as CUDA_VISIBLE_DEVICES takes them), got '${v}'`);
  return ids;
}

function backendFlag(v: string | undefined): (typeof BACKENDS)[number] | undefined {
  if (v === undefined) return undefined;
  if (!(BACKENDS as readonly string[]).includes(v)) throw new InputError('E_BAD_FLAG', `--backend must be one of ${BACKENDS.join(', ')}, got '${v}'`);
  return v as (typeof BACKENDS)[number];
}

/** A duration for a progress line: `45s`, `2m05s`, `1h02m` (never `2m60s`). */
export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '-';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  const m = Math.round(s / 60);
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/**
 * Live progress of a search: a bar on a terminal, a line every few seconds in logs, counting
 * the stage's budget (candidates evaluated, or full-set equivalents with multi-fidelity) and
 * never past it. Ctrl-C stops after the candidates in flight (the signal's reason says why), a
 * second Ctrl-C quits at once.
 */
export function progressReporter(label: string) {
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts === 1) {
      process.stderr.write('\nstopping after the candidates in flight (Ctrl-C again to quit at once) ...\n');
      controller.abort('Ctrl-C');
    } else process.exit(130);
  };
  process.on('SIGINT', onSigint);
  // a reader that went away (`evomerge search ... | head`): stop cleanly, the run stays resumable
  const release = onOutputClosed(() => controller.abort('the output was closed'));
  const bar = new cliProgress.SingleBar({
    format: '{run} [{bar}] {shown}/{total} | stage {stage} | best {best} | {rate}/min | failed {failed} | {remaining} left',
    noTTYOutput: true, notTTYSchedule: 5000, hideCursor: true, stream: process.stderr,
  }, cliProgress.Presets.shades_classic);
  let started = false;
  let run = label;
  let failed = 0;
  let best = -Infinity;
  let t0 = performance.now();
  let usedAtStart = 0;
  let total = 0;
  const shown = (used: number) => (Number.isInteger(used) ? String(used) : used.toFixed(1));
  const options: Pick<SearchOptions, 'signal' | 'onEvent' | 'onLog'> = {
    signal: controller.signal,
    onLog: (line) => {
      // a log line between two bar lines on a terminal would be overwritten by the next one
      process.stderr.write(`${started && process.stderr.isTTY ? '\n' : ''}${line}\n`);
    },
    onEvent: (e) => {
      if (e.type === 'stage') {
        if (started) bar.stop();
        run = e.run ?? label;
        total = e.budget ?? 0;
        usedAtStart = e.used ?? 0;
        // a resumed stage counts from the budget its stored candidates used
        bar.start(total, Math.min(usedAtStart, total), { run, shown: shown(usedAtStart), stage: e.stage, best: '-', rate: '-', failed: 0, remaining: '-' });
        started = true;
        t0 = performance.now();
        return;
      }
      if (e.type === 'done' && started) {
        // the stage's last line before the engine's closing lines
        bar.stop();
        started = false;
        return;
      }
      if (e.type !== 'result') return;
      if (e.candidate.state === 'failed') failed++;
      // a score on part of the items (multi-fidelity) is never the best
      if (e.candidate.fitness !== null && isFullFidelity(e.candidate) && e.candidate.fitness > best) best = e.candidate.fitness;
      const used = e.used ?? 0;
      const seconds = (performance.now() - t0) / 1000;
      const perSecond = (used - usedAtStart) / Math.max(seconds, 1e-9);
      bar.update(Math.min(used, total || used), {
        run, shown: shown(used), stage: e.stage, best: Number.isFinite(best) ? best.toFixed(4) : '-', rate: (perSecond * 60).toFixed(1), failed,
        remaining: total > 0 && perSecond > 0 ? formatEta((total - used) / perSecond) : '-',
      });
    },
  };
  return {
    options,
    /** Whether the search was stopped by Ctrl-C (the command then exits 130, as shells expect). */
    interrupted: () => interrupts > 0,
    stop() {
      if (started) bar.stop();
      started = false;
      process.off('SIGINT', onSigint);
      release();
    },
  };
}

/** The chosen candidate of a run with `select`, for `status`: both its scores and the optimism. */
function selectedLine(x: NonNullable<ReturnType<typeof runStatus>['selected']>): string {
  const f = (v: number) => v.toFixed(4);
  if (x.selectionFitness === null) return x.pool === 0 && x.rule === 'max' ? `candidate ${x.id}: not yet scored on the selection split (at the end of the stage)` : `candidate ${x.id} (stage ${x.stage}) by ${x.rule} over the top ${x.pool}: fitness ${f(x.searchFitness)}`;
  const gains = x.reference ? `; gains over the best fixed recipe (candidate ${x.reference.id}) ${f(x.searchFitness - x.reference.searchFitness)} on the search's split, ${f(x.selectionFitness - x.reference.selectionFitness)} on the selection split` : '';
  return `candidate ${x.id} (stage ${x.stage}), best of the top ${x.pool} on the selection split (${x.rule}): search ${f(x.searchFitness)}, selection ${f(x.selectionFitness)}${x.selectionSE !== null ? ` +- ${f(x.selectionSE)}` : ''}, optimism ${f(x.optimism!)}${gains}`;
}

/** How a run stands, for `status`: who holds it, or why it ended. */
function statusLine(s: ReturnType<typeof runStatus>): string {
  const w = s.owner;
  if (s.status === 'running') return `process ${w!.pid} on ${w!.host} since ${w!.startedAt}${w!.heartbeatAt ? `, last heartbeat ${Math.max(0, Math.round((Date.now() - Date.parse(w!.heartbeatAt)) / 1000))} s ago` : ''}`;
  if (s.status === 'interrupted') return `${w ? `process ${w.pid} on ${w.host}` : 'its process'} ended without a clean stop (killed, crashed, or the machine went down); continue with: evomerge resume ${s.run}`;
  if (s.status === 'failed') return `failed: ${s.error ?? s.reason ?? 'unknown error'}`;
  if (s.status === 'stopped') return `stopped: ${s.reason ?? 'stopped'}; continue with: evomerge resume ${s.run}`;
  return s.reason ?? 'finished';
}

/** A run's effective settings in one line, the ones given on the command line marked. */
function settingsLine(st: RunSettings): string {
  const mark = (name: string) => (st.given.includes(name) ? ` (--${name})` : '');
  return [
    `budget ${st.budget.evaluations ?? 'none'} evaluations per stage${mark('budget')}`,
    ...(st.budget.minutes !== undefined ? [`${st.budget.minutes} min per session${mark('minutes')}`] : []),
    `${st.workers} workers${mark('workers')}`, `seed ${st.seed}${mark('seed')}`, `backend ${st.backend}${mark('backend')}`,
    ...(st.gpus ? [`gpus ${st.gpus.join(',')}${mark('gpus')}`] : []),
    ...(st.candidateDir ? [`candidate folders in ${st.candidateDir}${mark('candidate-dir')}`] : []),
    ...(st.queue ? [`queue ${st.queue.url}`] : []),
  ].join(', ');
}

function printResult(r: SearchResult & { dbPath: string }, json: boolean | undefined): void {
  if (json) {
    process.stdout.write(`${JSON.stringify({ run: r.run.name, db: r.dbPath, status: r.run.status, reason: r.reason ?? null, alreadyFinished: r.alreadyFinished === true, stages: r.stages.map((s) => ({ stage: s.stage, kind: s.kind, reason: s.reason, evaluated: s.evaluated, reused: s.reused, failed: s.failed, best: s.best?.id ?? null })), best: r.best ? { id: r.best.id, fitness: r.best.fitness, recipe: r.best.recipe } : null, ...(r.chosen && r.chosen.selectionFitness !== null ? { selection: { fitness: r.chosen.selectionFitness, optimism: r.chosen.optimism, searchBest: r.chosen.searchBest.id } } : {}) })}\n`);
    return;
  }
  const budget = (r.run.settings ?? null)?.budget ?? {};
  if (r.alreadyFinished) {
    const b = budget.evaluations;
    process.stdout.write(`run '${r.run.name}' is finished (${r.reason}); nothing to resume. ${b === undefined ? '' : `Extend it with a larger budget (resume ${r.run.name} --budget N, N > ${b}), or s`}${b === undefined ? 'S' : ''}ee it with: evomerge best ${r.run.name}\n`);
    return;
  }
  for (const s of r.stages) {
    process.stdout.write(`stage ${s.stage} (${s.kind}) ended: ${describeStop(s.reason, budget)}; ${s.evaluated} evaluated, ${s.reused} reused, ${s.failed} failed\n`);
  }
  if (r.best) process.stdout.write(`best: candidate ${r.best.id} (stage ${r.best.stage}, generation ${r.best.generation}), fitness ${r.best.fitness!.toFixed(4)}${r.chosen && r.chosen.selectionFitness !== null ? `, selection split ${r.chosen.selectionFitness.toFixed(4)} (chosen there; optimism of the search ${r.chosen.optimism!.toFixed(4)})` : ''}\n`);
  const stopped = r.run.status === 'stopped';
  process.stdout.write(`run '${r.run.name}' ${stopped ? `stopped (${r.reason})` : 'finished'}: ${r.dbPath}\n${stopped ? `continue with: evomerge resume ${r.run.name}\n` : `see it with: evomerge best ${r.run.name}\n`}`);
}

/** Run a search session with live progress, print its result, and exit 130 after Ctrl-C. */
async function withProgress(label: string, json: boolean | undefined, session: (o: ReturnType<typeof progressReporter>['options']) => Promise<SearchResult & { dbPath: string }>): Promise<void> {
  const progress = progressReporter(label);
  let result: SearchResult & { dbPath: string };
  try {
    result = await session(progress.options);
  } finally {
    // the bar's last line before the summary, not after it
    progress.stop();
  }
  printResult(result, json);
  if (progress.interrupted()) process.exitCode = 130;
}

export function register(program: Command): void {
  const common = (c: Command) => c
    .option('--budget <n>', 'at most this many candidates evaluated per stage (scored, failed, or given an identical recipe\'s score; with fidelity: full-set equivalents); overrides the space; on resume, a larger one extends a finished run')
    .option('--minutes <n>', 'stop asking for candidates after this many minutes of a session, per stage (overrides the space)')
    .option('--workers <n>', 'worker threads (overrides the space)')
    .option('--backend <name>', `tfjs backend: ${BACKENDS.join(', ')}`)
    .option('--db <path>', 'run database (default runs/<run>/run.sqlite)')
    .option('--queue <url>', 'evaluate on `evomerge worker` processes through a BullMQ queue on Redis: redis://host[:port][/db]')
    .option('--queue-slots <n>', 'candidates outstanding on the queue at once (default: --workers, or the space\'s workers); the sum of the workers\' concurrency keeps them all busy')
    .option('--max-memory <size>', 'refuse to start when the memory plan passes this (e.g. 12GB, 12GiB; default: the machine\'s memory)')
    .option('--gpus <ids>', 'command evaluators: one evaluation slot per GPU (e.g. 0,1,2,3), given to the program as CUDA_VISIBLE_DEVICES and {gpu} (overrides the space\'s gpus)')
    .option('--candidate-dir <dir>', 'where merged candidates are written for command evaluators (default: /dev/shm when the memory plan allows, else the temporary folder)')
    .option('--json', 'print one JSON object at the end');
  // commander gives true for the queue when resume's --no-queue exists and neither flag is given
  type Flags = { budget?: string; minutes?: string; workers?: string; backend?: string; maxMemory?: string; db?: string; json?: boolean; queue?: string | boolean; queueSlots?: string; gpus?: string; candidateDir?: string };
  const queueFlag = (o: Flags): SearchOptions['queue'] =>
    o.queue === false ? null : typeof o.queue !== 'string' ? undefined : { url: parseQueueUrl(o.queue), slots: positiveInt('--queue-slots', o.queueSlots) };
  const overrides = (o: Flags): { budget?: Budget; workers?: number; backend?: ReturnType<typeof backendFlag>; queue?: SearchOptions['queue']; maxMemory?: number; gpus?: string[]; candidateDir?: string } => {
    const evaluations = positiveInt('--budget', o.budget);
    const minutes = o.minutes === undefined ? undefined : Number(o.minutes);
    if (minutes !== undefined && !(minutes > 0)) throw new InputError('E_BAD_FLAG', `--minutes must be a positive number, got '${o.minutes}'`);
    return {
      ...(evaluations !== undefined || minutes !== undefined ? { budget: { evaluations, seconds: minutes === undefined ? undefined : minutes * 60 } } : {}),
      workers: positiveInt('--workers', o.workers),
      backend: backendFlag(o.backend),
      ...(o.maxMemory !== undefined ? { maxMemory: parseSize(o.maxMemory) } : {}),
      ...(o.gpus !== undefined ? { gpus: gpusFlag(o.gpus) } : {}),
      ...(o.candidateDir !== undefined ? { candidateDir: resolve(o.candidateDir) } : {}),
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
      await withProgress(o.run ?? 'search', o.json, (p) => startSearch(spacePath, { runtime: SEARCH_RUNTIME, ...ov, ...p, runName: o.run, dbPath: o.db, seed, allowTestSplit: o.allowTestSplit }));
    });

  common(program.command('resume')
    .description('continue a run from its last committed step (after a stop, a crash or a kill); a queue run reattaches to its queue')
    .argument('<run>', 'run name')
    .option('--no-queue', 'evaluate on the local pool even though the run went through a queue'))
    .action(async (runName: string, o: Flags) => {
      const ov = overrides(o);
      await withProgress(runName, o.json, (p) => resumeSearch(runName, { runtime: SEARCH_RUNTIME, ...ov, ...p, dbPath: o.db }));
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
        const live = s.status === 'running';
        process.stdout.write([
          `run ${s.run} (${s.status}), ${s.db}`,
          `  ${live ? 'owner' : 'ended'}       ${statusLine(s)}`,
          ...(s.settings ? [`  settings    ${settingsLine(s.settings)}`] : []),
          // not running: a pending candidate waits for a resume, or lies past the budget
          `  candidates  ${c.done} done, ${c.failed} failed${live ? `, ${c.running} running, ${c.pending} pending` : c.pending + c.running > 0 ? `, ${c.pending + c.running} not evaluated` : ''}`,
          `  best        ${s.best ? `candidate ${s.best.id} (stage ${s.best.stage}, generation ${s.best.generation}): ${s.best.fitness.toFixed(4)}` : 'none yet'}`,
          ...(s.selected ? [`  selected    ${selectedLine(s.selected)}`] : []),
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
    .option('--json', 'print { run, candidates: [{ id, stage, generation, fitness, recipeHash, recipe, metrics }] } (with select: selection and chosen too)')
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
      for (const r of runs) process.stdout.write(`${r.run.padEnd(24)} ${r.status.padEnd(11)} ${String(r.candidates).padStart(6)} candidates  best ${r.best === null ? '-' : r.best.toFixed(4)}  ${r.db}\n`);
    });
}
