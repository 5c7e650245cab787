/**
 * `evomerge bench faults`: a small seeded search on the reduced vision zoo, killed with SIGKILL
 * at random moments and resumed, must end exactly as an uninterrupted run of the same seed:
 * the same candidates with the same scores and metrics, each recorded once, the same best
 * recipe, and a database that passes SQLite's integrity check. Kill moments are spread over
 * evaluation (a timed kill from outside), merging (the worker kills the process after a
 * candidate's merge, EVOMERGE_FAULTS=kill@id), recording a result and writing the optimizer's
 * step (inside the SQLite transaction, and just after its commit; kill-points.ts) and export
 * (a timed kill of `evomerge export`, then a rerun). Injected evaluator faults (throw, hang past
 * the timeout, NaN, a worker thread that exits) must give failed candidates with their error
 * stored while the search finishes. A full disk (a small tmpfs, when this process may mount
 * one) must stop the search with a clear message and leave a database that resumes.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { InputError } from '../errors.ts';
import { RunStore } from '../store/index.ts';
import { Rng } from '../tensor/rng.ts';
import { zooBuilder } from '../zoo/index.ts';

/** The evomerge executable, run with the kill points preloaded: the bench calls the CLI as a user does, never imports it. */
const BIN = fileURLToPath(new URL('../cli/bin.mjs', import.meta.url));
const CHILD_ARGS = ['--import', pathToFileURL(fileURLToPath(new URL('./kill-points.mjs', import.meta.url))).href, BIN];
const RUN = 'faults';

export type KillPhase = 'evaluation' | 'merging' | 'recording' | 'recorded' | 'state-write' | 'state-written' | 'export';
export const KILL_PHASES: readonly KillPhase[] = ['evaluation', 'merging', 'recording', 'state-write', 'recorded', 'state-written', 'export'];

export interface FaultTrial {
  trial: number;
  phase: KillPhase;
  /** Where the kill was aimed: `record #5`, `candidate 7`, `after 1.40 s`. */
  point: string;
  /** The process died by SIGKILL (false: it finished before the kill point came). */
  killed: boolean;
  /** Processes run until the job was done (the killed one included). */
  sessions: number;
  candidates: number;
  integrity: string;
  ok: boolean;
  problems: string[];
}

export interface InjectedFaultCheck {
  faults: string;
  finished: boolean;
  candidates: number;
  failed: Array<{ id: number; fault: string; error: string | null; ok: boolean }>;
  otherFailures: number;
  bestIsFailure: boolean;
  ok: boolean;
  problems: string[];
}

export interface DiskFullCheck {
  tested: boolean;
  note: string;
  exitCode?: number | null;
  message?: string;
  candidatesAtStop?: number;
  resumed?: boolean;
  identical?: boolean;
  integrity?: string;
  ok: boolean;
}

export interface FaultsReport {
  zoo: string;
  budget: number;
  reference: { candidates: number; seconds: number; bestFitness: number | null; exportSeconds: number | null };
  exportAvailable: boolean;
  trials: FaultTrial[];
  injected: InjectedFaultCheck;
  diskFull: DiskFullCheck;
  ok: boolean;
}

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Run the CLI (with the kill points preloaded) and optionally SIGKILL it `killAfterMs` after its stage starts. */
export function runCli(args: string[], options: { env?: Record<string, string>; killAfterMs?: number; killFrom?: 'spawn' | 'stage'; cwd?: string; timeoutMs?: number } = {}): Promise<ChildResult> {
  return new Promise((resolvePromise) => {
    const t0 = performance.now();
    const proc = spawn(process.execPath, [...CHILD_ARGS, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env }, cwd: options.cwd });
    let stdout = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      if (timer || options.killAfterMs === undefined) return;
      timer = setTimeout(() => proc.kill('SIGKILL'), options.killAfterMs);
    };
    if (options.killFrom !== 'stage') arm();
    const guard = setTimeout(() => proc.kill('SIGKILL'), options.timeoutMs ?? 300_000);
    proc.stdout.on('data', (d: Buffer) => { stdout += d; });
    proc.stderr.on('data', (d: Buffer) => {
      stderr += d;
      if (options.killFrom === 'stage' && stderr.includes('worker thread')) arm();
    });
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(guard);
      resolvePromise({ code, signal, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

/** What a run must reproduce: every candidate with its state, score, error and metrics, the best, the integrity. */
export function runSnapshot(db: string, runName = RUN) {
  const store = RunStore.open(db, { readonly: true });
  try {
    const run = store.run(runName);
    if (!run) return null;
    const rows = store.candidates(run.id).map((c) => ({
      proposalId: c.proposalId, stage: c.stage, generation: c.generation, genome: c.genome, recipeHash: c.recipeHash,
      state: c.state, fitness: c.fitness, reusedFrom: c.reusedFrom, metrics: store.metrics(c.id),
    }));
    const best = store.best(run.id, 1)[0];
    return {
      rows, status: run.status,
      best: best ? { proposalId: best.proposalId, recipe: best.recipe, fitness: best.fitness } : null,
      unfinished: rows.filter((r) => r.state !== 'done' && r.state !== 'failed').length,
      /** Candidates whose outcome the optimizer was not yet told in a committed step. */
      untold: store.candidates(run.id).filter((c) => !c.told).length,
      integrity: store.integrityCheck(),
    };
  } finally {
    store.close();
  }
}

type Snapshot = NonNullable<ReturnType<typeof runSnapshot>>;

/** Differences of a resumed run from the reference, in words (empty: identical). */
export function compareSnapshots(got: Snapshot | null, want: Snapshot): string[] {
  if (!got) return ['the run is missing from the database'];
  const problems: string[] = [];
  if (got.integrity !== 'ok') problems.push(`integrity_check: ${got.integrity}`);
  // proposals past the budget stay unscored, in the uninterrupted run as in the resumed one
  if (got.unfinished !== want.unfinished) problems.push(`${got.unfinished} candidates never scored, the uninterrupted run has ${want.unfinished}`);
  if (got.untold !== want.untold) problems.push(`${got.untold} candidates not told to the optimizer, the uninterrupted run has ${want.untold}`);
  if (got.rows.length !== want.rows.length) problems.push(`${got.rows.length} candidates, the uninterrupted run has ${want.rows.length}`);
  const seen = new Set<string>();
  for (const r of got.rows) {
    const key = `${r.stage}/${r.proposalId}`;
    if (seen.has(key)) problems.push(`proposal ${key} recorded twice`);
    seen.add(key);
  }
  const n = Math.min(got.rows.length, want.rows.length);
  for (let i = 0; i < n; i++) {
    if (JSON.stringify(got.rows[i]) !== JSON.stringify(want.rows[i])) {
      problems.push(`candidate ${i + 1} differs: ${JSON.stringify(got.rows[i]).slice(0, 160)} vs ${JSON.stringify(want.rows[i]).slice(0, 160)}`);
      break;
    }
  }
  if (JSON.stringify(got.best) !== JSON.stringify(want.best)) problems.push(`best differs: ${got.best?.proposalId} (${got.best?.fitness}) vs ${want.best?.proposalId} (${want.best?.fitness})`);
  if (got.status !== 'finished') problems.push(`run status '${got.status}'`);
  return problems;
}

/** The small seeded space every trial runs: TIES on the reduced vision zoo. */
export function faultsSpace(dir: string, zoo: string, budget: number, extra: Record<string, unknown> = {}): string {
  const path = join(dir, `space-${createHash('sha1').update(JSON.stringify(extra)).digest('hex').slice(0, 8)}.yaml`);
  writeFileSync(path, stringify({
    name: RUN, zoo, mode: 'ps',
    ps: { method: 'ties', layers_per_group: 1, evolve: { weight: [0, 1.5], density: [0.1, 1] }, fixed: { lambda: 1 } },
    optimizer: { id: 'cmaes', options: { sigma0: 0.25 } },
    budget: { evaluations: budget }, seed: 3, workers: 2, timeout_seconds: 120, backend: 'wasm',
    ...extra,
  }));
  return path;
}

/** Resume until a session ends by itself; returns the sessions run and the last failure, if any. */
async function resumeToEnd(db: string, maxSessions = 4): Promise<{ sessions: number; error: string | null }> {
  for (let i = 1; i <= maxSessions; i++) {
    // the run never used a queue; --no-queue keeps the resume on the local pool
    const r = await runCli(['resume', RUN, '--db', db, '--no-queue']);
    if (r.code === 0) return { sessions: i, error: null };
    if (r.code !== null) return { sessions: i, error: `resume exited with ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}` };
  }
  return { sessions: maxSessions, error: 'resume was killed by something other than the bench' };
}

/** Files of a folder (recursively) by relative path -> SHA-256, leaving out evomerge's temporaries. */
function treeHashes(dir: string): { files: Map<string, string>; temporaries: string[] } {
  const files = new Map<string, string>();
  const temporaries: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (/^\..*\.tmp-\d+-[0-9a-f]+$/.test(name)) temporaries.push(relative(dir, p));
      else files.set(relative(dir, p), createHash('sha256').update(readFileSync(p)).digest('hex'));
    }
  };
  if (existsSync(dir)) walk(dir);
  return { files, temporaries };
}

function exportArgs(db: string, out: string): string[] {
  return ['export', RUN, '--db', db, '-o', out, '--format', 'recipe,mergekit,model,card', '--no-test-scores'];
}

function exportCommandExists(): boolean {
  const r = spawnSync(process.execPath, [...CHILD_ARGS, 'export', '--help'], { encoding: 'utf8' });
  return r.status === 0;
}

async function injectedFaults(dir: string, zoo: string, budget: number): Promise<InjectedFaultCheck> {
  const faults: Record<number, string> = { 3: 'throw', 5: 'hang', 7: 'nan', 9: 'exit' };
  const spec = Object.entries(faults).map(([id, f]) => `${f}@${id}`).join(',');
  const expect: Record<string, RegExp> = { throw: /^error: injected fault/, hang: /^timeout: /, nan: /NaN/, exit: /^worker-exit: / };
  const db = join(dir, 'injected', 'run.sqlite');
  const space = faultsSpace(dir, zoo, Math.max(budget, 12), { timeout_seconds: 8 });
  const r = await runCli(['search', space, '--db', db], { env: { EVOMERGE_FAULTS: spec } });
  const problems: string[] = [];
  if (r.code !== 0) problems.push(`the search exited with ${r.code ?? r.signal}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
  const store = RunStore.open(db, { readonly: true });
  try {
    const run = store.run(RUN)!;
    const all = store.candidates(run.id);
    const failed = Object.entries(faults).map(([id, fault]) => {
      const c = store.candidate(Number(id));
      const ok = !!c && c.state === 'failed' && c.fitness === null && expect[fault]!.test(c.error ?? '') && !store.metrics(c.id).some((m) => m.metric === 'fitness' && m.value !== null);
      if (!ok) problems.push(`candidate ${id} (${fault}): state ${c?.state}, fitness ${c?.fitness}, error ${JSON.stringify(c?.error)}`);
      return { id: Number(id), fault, error: c?.error ?? null, ok };
    });
    const otherFailures = all.filter((c) => c.state === 'failed' && !(c.id in faults)).length;
    if (otherFailures > 0) problems.push(`${otherFailures} other candidates failed`);
    const best = store.best(run.id, 1)[0];
    const bestIsFailure = !best || best.state !== 'done';
    if (bestIsFailure) problems.push('no successful best');
    // the budget is a limit: exactly that many evaluated, in proposal order, the rest of the last generation pending
    const evaluated = all.filter((c) => c.state === 'done' || c.state === 'failed');
    const limit = Math.max(budget, 12);
    if (evaluated.length !== limit || evaluated.some((c, i) => c.id !== all[i]!.id)) problems.push(`${evaluated.length} candidates evaluated, not the first ${limit} (the budget)`);
    if (all.some((c) => c.state === 'running')) problems.push('candidates left running');
    const finished = run.status === 'finished';
    if (!finished) problems.push(`run status ${run.status}`);
    return { faults: spec, finished, candidates: all.length, failed, otherFailures, bestIsFailure, ok: problems.length === 0, problems };
  } finally {
    store.close();
  }
}

/** Fill a tmpfs-backed database's disk mid-search, then free it and resume. */
async function diskFull(dir: string, zoo: string, budget: number, want: Snapshot, log: (l: string) => void): Promise<DiskFullCheck> {
  const mnt = join(dir, 'tiny-disk');
  mkdirSync(mnt, { recursive: true });
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt], { encoding: 'utf8' });
  if (mount.status !== 0) {
    return { tested: false, ok: true, note: `could not mount a small tmpfs (${(mount.stderr || mount.error?.message || '').trim()}); a full disk was not tested` };
  }
  try {
    const db = join(mnt, 'run.sqlite');
    const space = faultsSpace(dir, zoo, budget);
    // once the run has a few results, fill the disk: the next write of the search meets ENOSPC
    const running = runCli(['search', space, '--db', db]);
    let filled = false;
    while (!filled) {
      const exited = await Promise.race([running.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 100))]);
      if (exited) break;
      const snap = existsSync(db) ? (() => {
        try {
          return runSnapshot(db);
        } catch {
          return null;
        }
      })() : null;
      if (snap && snap.rows.filter((x) => x.state === 'done').length >= 4) {
        const avail = Number(spawnSync('df', ['--output=avail', '-B1', mnt], { encoding: 'utf8' }).stdout.trim().split('\n').pop());
        try {
          writeFileSync(join(mnt, 'filler'), new Uint8Array(avail));
        } catch {
          // ENOSPC part way: the disk is full, as wanted
        }
        filled = true;
        log(`disk full: filled the disk after ${snap.rows.filter((x) => x.state === 'done').length} results`);
      }
    }
    const r = await running;
    const message = r.stderr.trim().split('\n').filter((l) => l.startsWith('evomerge:')).pop() ?? r.stderr.trim().split('\n').pop() ?? '';
    const stopped = runSnapshot(db);
    const candidatesAtStop = stopped ? stopped.rows.filter((x) => x.state === 'done' || x.state === 'failed').length : 0;
    const clear = r.code === 1 && /disk is full/.test(message) && /E_DISK_FULL/.test(message);
    rmSync(join(mnt, 'filler'), { force: true });
    if (!filled) return { tested: false, ok: false, note: `the search ended (exit ${r.code}) before the disk could be filled` };
    const resumed = await resumeToEnd(db);
    const got = runSnapshot(db);
    const problems = [...(clear ? [] : [`unclear stop: exit ${r.code ?? r.signal}, ${message}`]), ...(resumed.error ? [resumed.error] : []), ...compareSnapshots(got, want)];
    return {
      tested: true, note: problems.join('; ') || 'stopped with E_DISK_FULL, resumed after space was freed, identical to the uninterrupted run',
      exitCode: r.code, message, candidatesAtStop, resumed: !resumed.error, identical: compareSnapshots(got, want).length === 0, integrity: got?.integrity ?? 'missing', ok: problems.length === 0,
    };
  } finally {
    spawnSync('umount', [mnt]);
  }
}

export async function runFaultsBench(options: { trials: number; seed: number; budget: number; zoo?: string; log?: (l: string) => void }): Promise<FaultsReport> {
  const log = options.log ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), 'evomerge-bench-faults-'));
  try {
    let zoo = options.zoo;
    if (!zoo) {
      zoo = join(dir, 'vision');
      log('building the reduced vision zoo ...');
      await zooBuilder('vision').build(zoo, { seed: 0, small: true });
    }
    const space = faultsSpace(dir, zoo, options.budget);
    log(`uninterrupted reference run (${options.budget} candidates) ...`);
    const refDb = join(dir, 'reference', 'run.sqlite');
    const ref = await runCli(['search', space, '--db', refDb]);
    if (ref.code !== 0) throw new InputError('E_BENCH_FAULTS', `the reference search failed (exit ${ref.code ?? ref.signal}): ${ref.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    const want = runSnapshot(refDb)!;
    const stepCount = (() => {
      const s = RunStore.open(refDb, { readonly: true });
      const n = (s.db.prepare('SELECT COUNT(*) AS n FROM generations').get() as { n: number }).n;
      s.close();
      return n;
    })();
    const exportAvailable = exportCommandExists();
    let refExport: ReturnType<typeof treeHashes> | null = null;
    let exportMs: number | null = null;
    if (exportAvailable) {
      const out = join(dir, 'reference-export');
      const e = await runCli(exportArgs(refDb, out));
      if (e.code !== 0) throw new InputError('E_BENCH_FAULTS', `the reference export failed (exit ${e.code ?? e.signal}): ${e.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      refExport = treeHashes(out);
      exportMs = e.ms;
    }
    const phases = KILL_PHASES.filter((p) => p !== 'export' || exportAvailable);
    const rng = Rng.seeded(`bench-faults-${options.seed}`);
    const trials: FaultTrial[] = [];
    for (let t = 0; t < options.trials; t++) {
      const phase = phases[t % phases.length]!;
      const problems: string[] = [];
      let point: string;
      let killed = false;
      let sessions = 1;
      if (phase === 'export') {
        const out = join(dir, `export-${t}`);
        const delay = Math.round(rng.next() * exportMs!);
        point = `after ${(delay / 1000).toFixed(2)} s`;
        const first = await runCli(exportArgs(refDb, out), { killAfterMs: delay });
        killed = first.signal === 'SIGKILL';
        const partial = treeHashes(out);
        for (const [f, h] of partial.files) if (refExport!.files.get(f) !== h) problems.push(`after the kill, ${f} holds other bytes than the uninterrupted export (half-written under its final name?)`);
        if (killed || first.code !== 0) {
          sessions++;
          const again = await runCli(exportArgs(refDb, out));
          if (again.code !== 0) problems.push(`the rerun did not finish the export: exit ${again.code ?? again.signal}: ${again.stderr.trim().split('\n').filter((l) => l.startsWith('evomerge')).pop() ?? ''}`);
        }
        const done = treeHashes(out);
        for (const [f, h] of refExport!.files) if (done.files.get(f) !== h) problems.push(`${f} ${done.files.has(f) ? 'differs' : 'is missing'} after the rerun`);
        trials.push({ trial: t + 1, phase, point, killed, sessions, candidates: want.rows.length, integrity: 'n/a', ok: problems.length === 0, problems: [...new Set(problems)].slice(0, 4) });
        log(`trial ${t + 1}/${options.trials}: ${phase} ${point}: ${problems.length === 0 ? 'ok' : problems[0]}`);
        continue;
      }
      const db = join(dir, `trial-${t}`, 'run.sqlite');
      let first: ChildResult;
      if (phase === 'evaluation') {
        // from the stage's start to about the end of the uninterrupted run (which also counts the process start)
        const delay = Math.round(200 + rng.next() * Math.max(500, 0.8 * ref.ms));
        point = `after ${(delay / 1000).toFixed(2)} s`;
        first = await runCli(['search', space, '--db', db], { killAfterMs: delay, killFrom: 'stage' });
      } else if (phase === 'merging') {
        const id = 1 + rng.int(want.rows.length);
        point = `candidate ${id}`;
        first = await runCli(['search', space, '--db', db], { env: { EVOMERGE_FAULTS: `kill@${id}` } });
      } else {
        const record = phase === 'recording' || phase === 'recorded';
        const at = 1 + rng.int(record ? want.rows.length : stepCount);
        point = `${record ? 'record' : 'step'} #${at}`;
        const kp = { recording: 'record', recorded: 'recorded', 'state-write': 'state', 'state-written': 'stepped' }[phase];
        first = await runCli(['search', space, '--db', db], { env: { EVOMERGE_BENCH_KILL: JSON.stringify({ phase: kp, at }) } });
      }
      killed = first.signal === 'SIGKILL';
      if (!killed && first.code !== 0) problems.push(`the search exited with ${first.code}: ${first.stderr.trim().split('\n').slice(-2).join(' | ')}`);
      if (killed) {
        const r = await resumeToEnd(db);
        sessions += r.sessions;
        if (r.error) problems.push(r.error);
      }
      const got = runSnapshot(db);
      problems.push(...compareSnapshots(got, want));
      trials.push({ trial: t + 1, phase, point, killed, sessions, candidates: got?.rows.length ?? 0, integrity: got?.integrity ?? 'missing', ok: problems.length === 0, problems });
      log(`trial ${t + 1}/${options.trials}: ${phase} ${point}: ${killed ? 'killed' : 'not killed'}, ${problems.length === 0 ? 'identical' : problems[0]}`);
      rmSync(join(dir, `trial-${t}`), { recursive: true, force: true });
    }
    log('injected evaluator and worker faults ...');
    const injected = await injectedFaults(dir, zoo, options.budget);
    log('a full disk ...');
    const disk = await diskFull(dir, zoo, options.budget, want, log);
    return {
      zoo, budget: options.budget,
      reference: { candidates: want.rows.length, seconds: ref.ms / 1000, bestFitness: want.best?.fitness ?? null, exportSeconds: exportMs === null ? null : exportMs / 1000 },
      exportAvailable, trials, injected, diskFull: disk,
      ok: trials.every((t) => t.ok) && injected.ok && disk.ok,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function formatFaultsReport(r: FaultsReport): string {
  const lines: string[] = [];
  lines.push(`reference: ${r.reference.candidates} candidates in ${r.reference.seconds.toFixed(1)} s, best fitness ${r.reference.bestFitness}${r.exportAvailable ? `; export ${r.reference.exportSeconds!.toFixed(1)} s` : '; evomerge export not available: export kills skipped'}`);
  lines.push(`${'trial'.padStart(5)}  ${'phase'.padEnd(14)} ${'kill point'.padEnd(16)} ${'killed'.padEnd(6)} ${'sessions'.padStart(8)} ${'cands'.padStart(5)} ${'integrity'.padEnd(9)} result`);
  for (const t of r.trials) {
    lines.push(`${String(t.trial).padStart(5)}  ${t.phase.padEnd(14)} ${t.point.padEnd(16)} ${(t.killed ? 'yes' : 'no').padEnd(6)} ${String(t.sessions).padStart(8)} ${String(t.candidates).padStart(5)} ${t.integrity.padEnd(9)} ${t.ok ? 'identical' : `FAIL: ${t.problems.join('; ')}`}`);
  }
  lines.push(`injected faults (${r.injected.faults}): ${r.injected.failed.map((f) => `candidate ${f.id} ${f.fault} -> ${f.ok ? 'failed' : 'WRONG'} (${(f.error ?? '').slice(0, 60)})`).join('; ')}; search ${r.injected.finished ? 'finished' : 'did not finish'} with ${r.injected.candidates} candidates${r.injected.ok ? '' : `: FAIL: ${r.injected.problems.join('; ')}`}`);
  lines.push(`disk full: ${r.diskFull.tested ? `${r.diskFull.ok ? 'ok' : 'FAIL'}: stopped after ${r.diskFull.candidatesAtStop} candidates with '${r.diskFull.message}'; ${r.diskFull.note}` : `not tested: ${r.diskFull.note}`}`);
  const killed = r.trials.filter((t) => t.killed).length;
  lines.push(`${r.trials.filter((t) => t.ok).length}/${r.trials.length} trials identical (${killed} killed), injected faults ${r.injected.ok ? 'ok' : 'FAIL'}, disk full ${r.diskFull.tested ? (r.diskFull.ok ? 'ok' : 'FAIL') : 'not tested'}: ${r.ok ? 'PASS' : 'FAIL'}`);
  return lines.join('\n');
}

export function registerBench(bench: Command): void {
  bench
    .command('faults')
    .description('SIGKILL a small seeded search at random moments (evaluation, merging, recording, optimizer state write, export), resume, compare with an uninterrupted run; injected evaluator faults; a full disk')
    .option('--trials <n>', 'kills', '20')
    .option('--budget <n>', 'candidates of the small search', '16')
    .option('--seed <n>', 'seed of the kill moments', '0')
    .option('--zoo <dir>', 'a built reduced vision zoo (default: build one in a temporary folder)')
    .option('--json', 'print one JSON object')
    .action(async (o: { trials: string; budget: string; seed: string; zoo?: string; json?: boolean }) => {
      const int = (flag: string, v: string, min: number) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < min) throw new InputError('E_BAD_FLAG', `${flag} must be an integer >= ${min}, got '${v}'`);
        return n;
      };
      const r = await runFaultsBench({
        trials: int('--trials', o.trials, 0), budget: int('--budget', o.budget, 4), seed: int('--seed', o.seed, 0), zoo: o.zoo,
        log: (l) => process.stderr.write(`${l}\n`),
      });
      process.stdout.write(o.json ? `${JSON.stringify(r)}\n` : `${formatFaultsReport(r)}\n`);
      if (!r.ok) process.exitCode = 1;
    });
}
