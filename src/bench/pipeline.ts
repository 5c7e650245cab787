/**
 * `evomerge bench pipeline`: the evaluation path at a real model size, persistent against
 * one-shot, with merges pipelined with scoring (src/pool/pipeline.ts).
 *
 * - The family of `bench scale` (./scale.ts): a generated 1.1B-parameter BF16 Llama shape, a base
 *   and 3 fine-tunes, 8.8 GB, cached in the same folder.
 * - Baseline, in the same run: a durable copy (fsync) of one model's shards, the bytes a
 *   candidate is, and `evomerge merge` of a DARE-TIES config over the family (to disk, durable).
 * - Two searches of the same DARE-TIES space and seed, scored by
 *   evaluators/scripts/lm_eval_score.py with `--simulate S`: the candidate's tensors are really
 *   read into a model held in memory (torch tensors on the CPU where torch is installed, else
 *   numpy arrays), then the task sleeps S seconds, the stand-in for scoring on a GPU. One
 *   search runs it one-shot (a process per candidate: interpreter, imports, model build, load),
 *   the other persistent (one process per slot, started when the search opens, the model built
 *   once from `{base}` while the first candidate is merged, each candidate loaded in place).
 * - Per candidate, from the run database's phase timestamps and the evaluator's answer: merge,
 *   write, evaluator load (the scoring window less the task's own time), scoring, the slot's
 *   idle time before it, and its wall time; per search, the slot's busy fraction.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { InputError } from '../errors.ts';
import { formatBytes, formatCount } from '../format.ts';
import { RunStore } from '../store/index.ts';
import { checkpointBytes, FULL, generateFamily, llamaTensors, plainCopy, runSampled, SMALL } from './scale.ts';

const SCRIPT = fileURLToPath(new URL('../../evaluators/scripts/lm_eval_score.py', import.meta.url));

export interface CandidatePhaseRow {
  id: number;
  slot: string;
  /** Seconds. */
  merge: number;
  write: number;
  /** The scoring window less the task's own time: process start, imports, model build, weight load, protocol. */
  evaluatorLoad: number;
  /** What the evaluator measured for its weight load (build or in place). */
  loadReported: number;
  scoring: number;
  /** The slot's wait for this candidate since its previous one ended (the first: since the search's first merge began). */
  idle: number;
  /** From the start of its merge to the end of its score. */
  wall: number;
}

export interface PipelineArm {
  evaluator: 'persistent' | 'one-shot';
  /** The search process, start to exit. */
  seconds: number;
  peakRssGiB: number;
  candidates: CandidatePhaseRow[];
  failed: number;
  /** Medians over candidates, seconds. */
  median: { merge: number; write: number; mergeAndWrite: number; evaluatorLoad: number; scoring: number; wall: number };
  /** Means over candidates, seconds: the overhead goal reads the mean (the first candidate's start included). */
  mean: { evaluatorLoad: number; scoring: number; idle: number };
  /** Wall time per candidate from the first merge to the last score. */
  secondsPerCandidate: number;
  /** Fraction of the search process's wall time the slot spent scoring (loading included). */
  busyFraction: number;
  /** The same from the first merge's start to the last score's end (without process start and set-up). */
  busyFractionActive: number;
}

export interface PipelineBenchResult {
  family: { parameters: number; bytesPerModel: number };
  scoreSeconds: number;
  framework: string;
  workers: number;
  copy: { bytes: number; seconds: number; secondsWithoutFsync: number };
  merge: { seconds: number; peakRssGiB: number; ratioToCopy: number };
  arms: PipelineArm[];
  loadAverage: { min: number; max: number; mean: number };
  goals: Array<{ goal: string; value: string; met: boolean }>;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : NaN;
};
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

/** The framework lm_eval_score.py's simulated model will use with this Python (auto: torch where it imports, as the script decides). */
function frameworkOf(python: string, wanted: string): string {
  if (wanted !== 'auto') return wanted;
  const probe = spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' });
  if (probe.error) throw new InputError('E_BENCH_PYTHON', `cannot run ${python}: ${probe.error.message}; give --python (or EVOMERGE_PYTHON) a Python with numpy`);
  return probe.status === 0 ? 'torch' : 'numpy';
}

function arm(db: string, kind: PipelineArm['evaluator'], seconds: number, peak: number): PipelineArm {
  const store = RunStore.open(db, { readonly: true });
  try {
    const run = store.run('pipeline')!;
    const all = store.candidates(run.id);
    const done = all.filter((c) => c.state === 'done' && c.phases?.scoreStart != null && c.phases.mergeStart != null);
    const start = Math.min(...done.map((c) => c.phases!.mergeStart!));
    const end = Math.max(...done.map((c) => c.phases!.scoreEnd!));
    const lastEnd = new Map<string, number>();
    const rows: CandidatePhaseRow[] = [...done].sort((a, b) => a.phases!.scoreStart! - b.phases!.scoreStart!).map((c) => {
      const p = c.phases!;
      const metric = (name: string) => store.metrics(c.id).find((m) => m.metric === name)?.value ?? NaN;
      const scoring = metric('score_seconds');
      const idle = (p.scoreStart! - (lastEnd.get(p.slot!) ?? start)) / 1000;
      lastEnd.set(p.slot!, p.scoreEnd!);
      return {
        id: c.id, slot: p.slot!, merge: (p.mergeEnd! - p.mergeStart! - p.writeMs!) / 1000, write: p.writeMs! / 1000,
        evaluatorLoad: (p.scoreEnd! - p.scoreStart!) / 1000 - scoring, loadReported: metric('load_seconds'), scoring, idle, wall: (p.scoreEnd! - p.mergeStart!) / 1000,
      };
    });
    const busy = rows.reduce((n, r) => n + r.evaluatorLoad + r.scoring, 0);
    const slots = new Set(rows.map((r) => r.slot)).size || 1;
    return {
      evaluator: kind, seconds, peakRssGiB: peak / 2 ** 30, candidates: rows, failed: all.length - done.length,
      median: {
        merge: median(rows.map((r) => r.merge)), write: median(rows.map((r) => r.write)), mergeAndWrite: median(rows.map((r) => r.merge + r.write)),
        evaluatorLoad: median(rows.map((r) => r.evaluatorLoad)), scoring: median(rows.map((r) => r.scoring)), wall: median(rows.map((r) => r.wall)),
      },
      mean: { evaluatorLoad: mean(rows.map((r) => r.evaluatorLoad)), scoring: mean(rows.map((r) => r.scoring)), idle: mean(rows.map((r) => r.idle)) },
      secondsPerCandidate: (end - start) / 1000 / Math.max(1, rows.length),
      busyFraction: busy / (seconds * slots), busyFractionActive: busy / (((end - start) / 1000) * slots),
    };
  } finally {
    store.close();
  }
}

export async function runPipelineBench(o: { dir: string; small: boolean; candidates: number; workers: number; scoreSeconds?: number; python: string; framework: string; keep: boolean; log: (l: string) => void }): Promise<PipelineBenchResult> {
  const f = o.small ? SMALL : FULL;
  const S = o.scoreSeconds ?? (o.small ? 0.3 : 60);
  const framework = frameworkOf(o.python, o.framework);
  const familyDir = resolve(o.dir, o.small ? 'family-small' : 'family');
  o.log(`family: Llama shape hidden ${f.hidden}, ${f.layers} layers, BF16, in ${familyDir}`);
  const [base, ...fts] = generateFamily(familyDir, f, o.log);
  const bytesPerModel = checkpointBytes(base!);
  const work = mkdtempSync(join(o.dir, 'pipeline-'));
  const loads: number[] = [];
  const sampler = setInterval(() => loads.push(loadavg()[0]!), 5000);
  try {
    loads.push(loadavg()[0]!);
    o.log('baseline: a durable copy (fsync) of one model\'s shards, and one without ...');
    const copy = plainCopy(base!, join(work, 'copy'), true);
    rmSync(join(work, 'copy'), { recursive: true, force: true });
    const cached = plainCopy(base!, join(work, 'copy'), false);
    rmSync(join(work, 'copy'), { recursive: true, force: true });
    o.log(`  ${formatBytes(copy.bytes)} in ${copy.seconds.toFixed(2)} s with fsync, ${cached.seconds.toFixed(2)} s without`);

    // evomerge merge of the DARE-TIES recipe, as a mergekit config over the family
    const config = join(work, 'dare-ties.yml');
    writeFileSync(config, [
      'merge_method: dare_ties', `base_model: ${base}`, 'dtype: bfloat16', 'parameters: { lambda: 1.0 }', 'models:',
      ...fts.map((p, i) => `  - model: ${p}\n    parameters: { weight: ${(0.3 + 0.1 * i).toFixed(1)}, density: 0.5 }`),
    ].join('\n') + '\n');
    o.log('merge: evomerge merge of a DARE-TIES config to disk ...');
    const m = await runSampled(['merge', config, '-o', join(work, 'merged'), '--json'], o.log);
    rmSync(join(work, 'merged'), { recursive: true, force: true });

    const arms: PipelineArm[] = [];
    for (const kind of ['persistent', 'one-shot'] as const) {
      const manifest = join(work, `${kind}.yaml`);
      const command = [o.python, SCRIPT, ...(kind === 'persistent' ? ['--serve', '--base', '{base}'] : ['--model', '{model}']), '--simulate', String(S), '--framework', framework];
      writeFileSync(manifest, `id: simulated\nversion: 1\nkind: command\nfamily: any\nsplit: validation\npersistent: ${kind === 'persistent'}\ncommand: ${JSON.stringify(command)}\ntimeout_s: ${Math.ceil(S * 4 + 900)}\nstartup_timeout_s: 600\nmetric: { name: score, direction: maximize }\n`);
      const space = join(work, `${kind}-space.yaml`);
      writeFileSync(space, [
        'name: pipeline', `base: ${base}`, 'models:', ...fts.map((p, i) => `  - { name: ft${i + 1}, path: ${p} }`),
        'mode: ps', 'ps:', '  method: dare_ties', `  layers_per_group: ${Math.max(1, Math.floor(f.layers / 2))}`, '  evolve: { weight: [0, 1], density: [0.2, 1] }', '  fixed: { lambda: 1 }',
        'evaluators:', `  - { manifest: ${manifest}, weight: 1 }`,
        `optimizer: { id: cmaes, options: { popsize: ${o.candidates}, sigma0: 0.2 } }`, `budget: { evaluations: ${o.candidates} }`,
        'seed: 0', `workers: ${o.workers}`, 'timeout_seconds: 3600', 'backend: auto',
      ].join('\n'));
      o.log(`search: ${o.candidates} DARE-TIES candidates, ${o.workers} merge thread${o.workers === 1 ? '' : 's'}, ${kind} evaluator (${framework}, S = ${S} s) ...`);
      const db = join(work, `${kind}.sqlite`);
      const s = await runSampled(['search', space, '--db', db, '--json'], o.log);
      arms.push(arm(db, kind, s.seconds, s.peak));
    }
    const [persistent, oneShot] = arms as [PipelineArm, PipelineArm];
    const goals = [
      { goal: 'persistent evaluator: overhead beyond scoring under 10% of the one-shot evaluator\'s (mean per candidate)', value: `${persistent.mean.evaluatorLoad.toFixed(2)} s against ${oneShot.mean.evaluatorLoad.toFixed(2)} s = ${((100 * persistent.mean.evaluatorLoad) / oneShot.mean.evaluatorLoad).toFixed(1)}%`, met: persistent.mean.evaluatorLoad < 0.1 * oneShot.mean.evaluatorLoad },
      { goal: `with S (${S} s) at least the merge time (${persistent.median.mergeAndWrite.toFixed(1)} s: ${S >= persistent.median.mergeAndWrite ? 'yes' : 'NO'}), the slot busy 90% of the wall time or more`, value: `${(100 * persistent.busyFraction).toFixed(1)}% of the search process's wall time (${(100 * persistent.busyFractionActive).toFixed(1)}% from the first merge to the last score)`, met: S >= persistent.median.mergeAndWrite && persistent.busyFraction >= 0.9 },
      { goal: 'evomerge merge of the DARE-TIES recipe within 2x of a durable copy of the same bytes', value: `${m.seconds.toFixed(1)} s = ${(m.seconds / copy.seconds).toFixed(2)}x the copy (${copy.seconds.toFixed(2)} s)`, met: m.seconds <= 2 * copy.seconds },
      { goal: 'search merge and write per candidate within 3x of the durable copy', value: `${persistent.median.mergeAndWrite.toFixed(1)} s = ${(persistent.median.mergeAndWrite / copy.seconds).toFixed(2)}x`, met: persistent.median.mergeAndWrite <= 3 * copy.seconds },
    ];
    loads.push(loadavg()[0]!);
    return {
      family: { parameters: llamaTensors(f).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0), bytesPerModel },
      scoreSeconds: S, framework, workers: o.workers,
      copy: { bytes: copy.bytes, seconds: copy.seconds, secondsWithoutFsync: cached.seconds },
      merge: { seconds: m.seconds, peakRssGiB: m.peak / 2 ** 30, ratioToCopy: m.seconds / copy.seconds },
      arms, loadAverage: { min: Math.min(...loads), max: Math.max(...loads), mean: mean(loads) }, goals,
    };
  } finally {
    clearInterval(sampler);
    if (!o.keep) rmSync(work, { recursive: true, force: true });
  }
}

/** The report as text lines (the CLI prints them; README quotes them). */
export function pipelineReport(r: PipelineBenchResult): string[] {
  const out = [
    `family: ${formatCount(r.family.parameters)} parameters per model, ${formatBytes(r.family.bytesPerModel)} BF16 each; simulated scoring S = ${r.scoreSeconds} s, model held as ${r.framework}; ${r.workers} merge thread${r.workers === 1 ? '' : 's'}`,
    `durable copy of one model: ${r.copy.seconds.toFixed(2)} s (${r.copy.secondsWithoutFsync.toFixed(2)} s without fsync); evomerge merge: ${r.merge.seconds.toFixed(1)} s = ${r.merge.ratioToCopy.toFixed(2)}x, peak RSS ${formatBytes(r.merge.peakRssGiB * 2 ** 30)}`,
  ];
  for (const a of r.arms) {
    out.push(`${a.evaluator}: ${a.candidates.length} candidates (${a.failed} failed) in ${a.seconds.toFixed(1)} s, ${a.secondsPerCandidate.toFixed(1)} s per candidate, slot busy ${(100 * a.busyFraction).toFixed(1)}% (${(100 * a.busyFractionActive).toFixed(1)}% from the first merge), peak RSS ${formatBytes(a.peakRssGiB * 2 ** 30)}`);
    out.push('  candidate  slot   merge  write  ev.load (reported)  scoring  idle   wall');
    for (const c of a.candidates) {
      out.push(`  ${String(c.id).padStart(9)}  ${c.slot.padEnd(5)} ${c.merge.toFixed(2).padStart(6)} ${c.write.toFixed(2).padStart(6)} ${c.evaluatorLoad.toFixed(2).padStart(8)} (${c.loadReported.toFixed(2).padStart(6)}) ${c.scoring.toFixed(2).padStart(8)} ${c.idle.toFixed(2).padStart(6)} ${c.wall.toFixed(1).padStart(6)}`);
    }
    out.push(`  median: merge ${a.median.merge.toFixed(2)}, write ${a.median.write.toFixed(2)}, evaluator load ${a.median.evaluatorLoad.toFixed(2)} (mean ${a.mean.evaluatorLoad.toFixed(2)}), scoring ${a.median.scoring.toFixed(2)}, wall ${a.median.wall.toFixed(1)}; mean idle ${a.mean.idle.toFixed(2)}`);
  }
  out.push(`load average (1 min) during the run: ${r.loadAverage.min.toFixed(2)} to ${r.loadAverage.max.toFixed(2)}, mean ${r.loadAverage.mean.toFixed(2)}`);
  for (const g of r.goals) out.push(`goal ${g.met ? 'met' : 'NOT met'}: ${g.goal}: ${g.value}`);
  return out;
}

export function registerBench(bench: Command): void {
  bench
    .command('pipeline')
    .description('persistent against one-shot command evaluators at 1.1B BF16, merges pipelined with a simulated GPU scoring: merge, write, load, scoring and idle time per candidate')
    .option('--dir <dir>', 'where the generated family is cached (shared with bench scale) and the runs work', 'runs/bench-scale')
    .option('--small', 'a small family and S = 0.3 s (seconds), to check the benchmark itself')
    .option('--candidates <n>', 'candidates of each search', '8')
    .option('--workers <n>', 'merge threads (and evaluation slots) of each search', '1')
    .option('--score-seconds <s>', 'simulated scoring time S per candidate (default 60, --small 0.3)')
    .option('--python <path>', 'the Python that runs evaluators/scripts/lm_eval_score.py', process.env.EVOMERGE_PYTHON ?? 'python3')
    .option('--framework <name>', 'how the simulated model is held: torch, numpy, or auto (torch where it imports)', 'auto')
    .option('--keep', 'keep the work folder (run databases, configs)')
    .option('--json', 'print one JSON object')
    .action(async (opts: { dir: string; small?: boolean; candidates: string; workers: string; scoreSeconds?: string; python: string; framework: string; keep?: boolean; json?: boolean }) => {
      const candidates = Number(opts.candidates);
      const workers = Number(opts.workers);
      const scoreSeconds = opts.scoreSeconds === undefined ? undefined : Number(opts.scoreSeconds);
      if (!Number.isInteger(candidates) || candidates < 2) throw new InputError('E_BAD_FLAG', `--candidates must be an integer of at least 2, got '${opts.candidates}'`);
      if (!Number.isInteger(workers) || workers < 1) throw new InputError('E_BAD_FLAG', `--workers must be a positive integer, got '${opts.workers}'`);
      if (scoreSeconds !== undefined && !(scoreSeconds >= 0)) throw new InputError('E_BAD_FLAG', `--score-seconds must be a number of seconds, got '${opts.scoreSeconds}'`);
      if (!['auto', 'torch', 'numpy'].includes(opts.framework)) throw new InputError('E_BAD_FLAG', `--framework must be auto, torch or numpy, got '${opts.framework}'`);
      mkdirSync(opts.dir, { recursive: true });
      const r = await runPipelineBench({ dir: opts.dir, small: !!opts.small, candidates, workers, scoreSeconds, python: opts.python, framework: opts.framework, keep: !!opts.keep, log: (l) => process.stderr.write(`${l}\n`) });
      if (opts.json) return void process.stdout.write(`${JSON.stringify(r)}\n`);
      for (const line of pipelineReport(r)) process.stdout.write(`${line}\n`);
    });
}
