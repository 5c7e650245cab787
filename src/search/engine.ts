/**
 * Starting and resuming searches: a search space becomes stage problems (PS, DFS, or PS then
 * DFS for a hybrid, a PS stage optionally followed by the gradient stage), the sources are read
 * as catalogues, the runner the caller gives (SearchOptions.runtime: the local pool or the
 * queue) evaluates candidates, and the run database records everything: every stage runs through
 * the one stage loop (./loop.ts runStage). The run stores the space as resolved at its start, so
 * `resume` needs only the database.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { InputError, isEvomergeError } from '../errors.ts';
import { loadManifest, partialScoring } from '../eval/index.ts';
import { getMethod } from '../methods/index.ts';
import { canonicalJson, recipeHash, type Recipe } from '../recipe/index.ts';
import { baselineGenomes, DfsCodec, MultiMethodCodec, PsCodec, loadSearchSpace, type SearchSpace } from '../space/index.ts';
import { HEARTBEAT_SECONDS, newOwner, runState, RunStore, type CandidateRow, type RunRow, type RunSettings } from '../store/index.ts';
import { describeStop, itemsText, runStage, type Budget, type SearchEvent, type StageProblem, type StageSummary } from './loop.ts';
import { fingerprint, loadSourceModel, mergedSourceModel, planCandidate, type CandidateRunner, type CandidateTask, type EvaluationPlan, type SourceModels, type WorkerData } from '../candidate/index.ts';
import { checkStage, memoryPlan, SetupError, type MemoryPlan } from './preflight.ts';
import { architectureSource, resolveSpace, type ResolvedSpace } from './resolve.ts';
import { budgetOf, effectiveSpace, legacySettings, resumeSettings, settingsOf, type SettingFlags } from './settings.ts';
import { dfsStage, psStage, sourceCatalogues, type StagePlan } from './stages.ts';
import type { GradientStage, QueueRuntime, QueueTarget, SearchRuntime } from './runtime.ts';
import { noiseCheck, noiseLines } from './noise.ts';
import { chosenCandidate, partsOf, scoreSelection, selectionSettings, type Chosen } from './select.ts';
import { Rng, deriveSeed } from '../tensor/rng.ts';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

/** The search log's line on a stage's multi-fidelity evaluation: rungs, and the evaluators that always score every item. */
function fidelityLine(r: ResolvedSpace): string {
  const f = r.space.fidelity!;
  const whole = r.evaluators.filter((e) => !partialScoring(loadManifest(e.manifest)));
  return `fidelity: candidates race the best full-fidelity fitness on rungs ${f.rungs.join(', ')} of each evaluator's items (confidence z = ${f.confidence})` +
    (whole.length ? `; ${whole.map((e) => e.id).join(', ')} always score every item (only a classification accuracy or a choice acc/acc_norm can be scored on a subset)` : '') +
    (whole.length === r.evaluators.length ? ', so every candidate is scored in full and fidelity changes nothing but the budget' : '');
}

/** The search log's line at a stage's end: item-evaluations spent and where candidates stopped. */
function itemsLine(store: RunStore, run: RunRow, stage: number): string {
  return `stage ${stage}: ${itemsText(store.itemEvaluations(run.id, stage))}`;
}

export interface SearchOptions extends SettingFlags {
  /** Where candidates are evaluated, and the gradient stage: given by the caller (./runtime.ts). */
  runtime: SearchRuntime;
  signal?: AbortSignal;
  onEvent?: (e: SearchEvent & { stage: number }) => void;
  onLog?: (line: string) => void;
  /** Stop a stage whose first N results all failed alike (default 3; 0: never). */
  failFast?: number;
}

export interface SearchResult {
  run: RunRow;
  stages: Array<StageSummary & { stage: number; kind: 'ps' | 'dfs' }>;
  /** The run's chosen candidate: the search's best, or with `select` the best on the selection split (./select.ts). */
  best: CandidateRow | null;
  /** How the chosen candidate was chosen, with both its scores (null: nothing succeeded). */
  chosen?: Chosen | null;
  /** Why the session ended: the stages' stop reasons, or why it was stopped. */
  reason?: string;
  /** `resume` of a finished run that nothing extends: nothing was evaluated. */
  alreadyFinished?: boolean;
}

/**
 * Before anything is written: the sources' catalogues (headers and configs, no weights), every
 * evaluator checked against them with the first candidate's merge planned (preflight.ts), and
 * the memory plan, printed, which refuses a run that cannot fit.
 */
function prepareRun(r: ResolvedSpace, o: SearchOptions): { sources: SourceModels; plan: MemoryPlan } {
  const log = o.onLog ?? (() => {});
  const sources = sourceCatalogues(r);
  const space = r.space;
  const files = [r.base, ...r.models.map((m) => m.path)].filter((p): p is string => !!p).map((p) => sources[p]!);
  if (space.mode === 'ps' || space.mode === 'hybrid') {
    const ps = psStage(r, sources, 0);
    const first = () => {
      const { task } = ps.problem.prepare(ps.initialGenome, { id: -1, proposalId: 'preflight' });
      if (task.kind !== 'ps') throw new Error('a PS stage prepared a DFS task');
      return planCandidate(task.recipe, sources);
    };
    checkStage(r, { kind: 'ps', sources: files, firstPlan: first });
    if (space.refine) gradientRuntime(o).check(r, sources, first());
  }
  if (space.mode === 'dfs' || space.mode === 'hybrid') {
    const dfs = space.dfs!;
    // a hybrid's first DFS source is the PS best, of the same architecture as the base
    const stageSources = space.mode === 'hybrid' ? [files[0]!, ...r.models.map((m) => sources[m.path]!)] : r.models.map((m) => sources[m.path]!);
    checkStage(r, { kind: 'dfs', sources: stageSources, dfs: { scaleRange: dfs.scale_range, embeddings: dfs.embeddings_from, head: dfs.head_from ?? dfs.embeddings_from } });
  }
  const plan = memoryPlan(r, sources, { workers: space.workers, maxMemory: o.maxMemory, queue: !!o.queue, hybrid: space.mode === 'hybrid', gpus: o.gpus, candidateDir: o.candidateDir });
  for (const line of plan.lines) log(line);
  return { sources, plan };
}

async function runStages(store: RunStore, run: RunRow, r: ResolvedSpace, o: SearchOptions, prepared: { sources: SourceModels; plan: MemoryPlan }): Promise<SearchResult> {
  const { sources, plan: memory } = prepared;
  const log = o.onLog ?? (() => {});
  const space = r.space;
  const backend = space.backend;
  const stages: SearchResult['stages'] = [];

  const execute = async (plan: StagePlan): Promise<StageSummary> => {
    const data: WorkerData = { sources: plan.sources, evaluators: r.evaluators, backend, objective: space.objective === 'multi' ? 'multi' : 'weighted-sum', allowTestSplit: r.allowTestSplit === true, baseCheckpoint: architectureSource(r) };
    const timeoutMs = space.timeout_seconds * 1000;
    // candidates go to the local pool, or to workers on other machines through the run's queue
    let runner: CandidateRunner;
    let threads: number;
    if (o.queue) {
      threads = o.queue.slots ?? space.workers;
      runner = await queueRuntime(o).open({ url: o.queue.url, store, run, stage: plan.stage, data, timeoutMs, slots: threads, onLog: log });
    } else {
      // every evaluator a command: merges on the threads pipelined with scoring on this process's
      // evaluation slots, their programs' stderr in the run folder (src/pool/pipeline.ts)
      const p = memory.pipeline;
      const evaluation = p ? { slots: p.slots, ahead: p.ahead, candidateDir: p.candidateDir, logDir: join(dirname(store.path), 'evaluators') } : undefined;
      runner = o.runtime.local({ data, workers: space.workers, timeoutMs, ...(evaluation ? { evaluation } : {}) });
      threads = runner.threads;
      log(`stage ${plan.stage} (${plan.kind.toUpperCase()}): ${plan.problem.dimension} genes, optimizer ${plan.problem.optimizer.id}, ${p
        ? `${space.workers} merge thread${space.workers === 1 ? '' : 's'}, ${p.slots.length} evaluation slot${p.slots.length === 1 ? '' : 's'} (${p.slots.map((x) => x.name).join(', ')}), up to ${p.ahead} merged ahead; evaluator logs in ${evaluation!.logDir}`
        : `${threads} worker thread${threads === 1 ? '' : 's'}`}`);
      // full CMA-ES learns n(n+1)/2 covariance entries: at a few hundred genes its step size adapts before its shape does
      if (plan.problem.dimension > 100 && plan.problem.optimizer.id === 'cmaes') log(`note: ${plan.problem.dimension} genes is a long genome for full CMA-ES (its covariance needs on the order of n^2 / popsize generations to learn); sep-cmaes (linear in n), fewer layer groups, or ps.layer_anchors keep it within a few hundred evaluations`);
      // the fixed recipes are injected into a stage's first generation only, not on resume
      if (plan.warmStart.length > 0 && !store.latestGeneration(run.id, plan.stage)) log(`warm start: the first candidates are the fixed recipes ${plan.warmStart.join(', ')} (space init: baselines)`);
    }
    if (space.fidelity) log(fidelityLine(r));
    const budget = budgetOf(space);
    o.onEvent?.({ type: 'stage', stage: plan.stage, kind: plan.kind, dimension: plan.problem.dimension, budget: budget.evaluations ?? null, threads, run: run.name, used: store.stageCost(run.id, plan.stage) });
    const noise = noiseChecker(store, run, r, plan.stage, budget.evaluations, log);
    try {
      const summary = await runStage(store, run, plan.problem, runner, {
        budget, signal: o.signal, failFast: o.failFast, onEvent: (e) => {
          if (e.type === 'result') noise(e.candidate);
          o.onEvent?.({ ...e, stage: plan.stage });
        },
      });
      store.event(run.id, 'stage', `stage ${plan.stage} ended: ${summary.reason}`, { utilisation: runner.utilisation(), ...summary, best: summary.best?.id ?? null });
      log(itemsLine(store, run, plan.stage));
      if (summary.failure !== undefined) {
        throw new SetupError('E_FAIL_FAST', `run '${run.name}' stopped: its first ${o.failFast ?? 3} candidates of stage ${plan.stage} all failed with the same error, so no candidate can succeed as set up: ${summary.failure}. Nothing is lost: fix the cause, then continue with 'evomerge resume ${run.name}' (the failed candidates run again)`);
      }
      return summary;
    } finally {
      await runner.close();
    }
  };

  // selection on a second split at the end of each stage (space select, ./select.ts)
  const selection = selectionSettings(r);
  const select = async (plan: StagePlan, s: StageSummary, stage: number): Promise<StageSummary> => {
    if (!selection || s.reason === 'stopped') return s;
    if (selection.evaluators) {
      const runner = o.runtime.local({ data: { sources: plan.sources, evaluators: selection.evaluators, backend, objective: 'weighted-sum', allowTestSplit: r.allowTestSplit === true, baseCheckpoint: architectureSource(r) }, workers: space.workers, timeoutMs: space.timeout_seconds * 1000 });
      try {
        const done = await scoreSelection({
          store, run, stage, settings: selection, runner, signal: o.signal, onLog: log,
          // the candidate's recipe scored in full on the selection evaluators (no race, no injected fault)
          task: (c) => {
            const { candidateId: _id, fidelity: _f, ...task } = plan.problem.prepare(c.genome, { id: c.id, proposalId: c.proposalId }).task;
            return task as CandidateTask;
          },
        });
        if (done.reason === 'stopped') return { ...s, reason: 'stopped' };
      } finally {
        await runner.close();
      }
    }
    const chosen = chosenCandidate(store, run, { stages: [stage] });
    if (chosen) {
      const line = selectionLine(chosen, stage);
      log(line);
      store.event(run.id, 'select', line, { stage, candidate: chosen.candidate.id, searchBest: chosen.searchBest.id, searchFitness: chosen.searchFitness, selectionFitness: chosen.selectionFitness, optimism: chosen.optimism, rule: chosen.rule, pool: chosen.pool });
    }
    return s;
  };
  const finish = (): SearchResult => {
    const chosen = chosenCandidate(store, run);
    return { run, stages, best: chosen?.candidate ?? null, chosen };
  };

  const dfsOptimizer = space.dfs_optimizer ?? space.optimizer;
  if (space.mode === 'ps' || space.mode === 'hybrid') {
    const plan = psStage(r, sources, 0);
    recordWarmStart(store, run, plan);
    const s = await select(plan, await execute(plan), 0);
    stages.push({ ...s, stage: 0, kind: 'ps' });
    if (s.reason === 'stopped') return finish();
    if (space.refine) {
      // with select, the gradient stage starts from the PS stage's chosen candidate
      const start = selection ? chosenCandidate(store, run, { stages: [0] })?.candidate : undefined;
      // every evaluator a command: the steps are scored on one evaluation slot of this process (a persistent program lives there)
      const p = memory.pipeline;
      const evaluation = p ? { slots: p.slots.slice(0, 1), ahead: 1, candidateDir: p.candidateDir, logDir: join(dirname(store.path), 'evaluators') } : undefined;
      const rs = await select(plan, await gradientStage(store, run, r, plan, o, start, evaluation), 1);
      stages.push({ ...rs, stage: 1, kind: 'ps' });
      if (rs.reason === 'stopped') return finish();
    }
  }
  if (space.mode === 'dfs') {
    const plan = dfsStage(r, sources, r.models, 0, dfsOptimizer);
    const s = await select(plan, await execute(plan), 0);
    stages.push({ ...s, stage: 0, kind: 'dfs' });
  } else if (space.mode === 'hybrid') {
    // the PS stage's best merged model becomes source 0 of the DFS stage (Sakana AI 2024, section 3.3)
    // a DFS stage already begun keeps its source, even if a resume with a larger budget found a better PS candidate since
    const begun = store.candidates(run.id, { stage: 1 })[0]?.recipe as { sources?: Array<{ path: string }> } | undefined;
    const begunId = /^ps-best:candidate-(\d+)$/.exec(begun?.sources?.[0]?.path ?? '')?.[1];
    // with select, the PS stage's chosen candidate (the best on the selection split)
    const best = (begunId !== undefined ? store.candidate(Number(begunId)) : undefined)
      ?? (selection ? chosenCandidate(store, run, { stages: [0] })?.candidate : undefined)
      ?? store.best(run.id, 1).find((c) => c.stage === 0) ?? store.candidates(run.id, { stage: 0, state: 'done' }).sort((a, b) => (b.fitness ?? -Infinity) - (a.fitness ?? -Infinity))[0];
    if (!best) throw new InputError('E_HYBRID', 'the parameter-space stage produced no successful candidate, so the data-flow stage has no merged model to start from');
    const key = `ps-best:candidate-${best.id}`;
    const merged = mergedSourceModel(key, best.recipe as Recipe, sources);
    const stageSources: SourceModels = { ...sources, [key]: merged };
    const names = [{ name: `ps-best (candidate ${best.id})`, path: key }, ...r.models];
    const plan = dfsStage(r, stageSources, names, 1, dfsOptimizer);
    const s = await select(plan, await execute(plan), 1);
    stages.push({ ...s, stage: 1, kind: 'dfs' });
  }
  return finish();
}

/** The search log's line on a stage's selection. */
function selectionLine(c: Chosen, stage: number): string {
  const f = (x: number) => x.toFixed(4);
  if (c.selectionFitness === null) {
    return `select (stage ${stage}): candidate ${c.candidate.id} by ${c.rule} over the top ${c.pool} on the search's fitness (fitness ${f(c.searchFitness)}, ${c.rule} value ${f(c.value)}; the search's maximum is candidate ${c.searchBest.id}, ${f(c.searchBest.fitness!)})`;
  }
  const ref = c.reference ? `; against the best fixed recipe (candidate ${c.reference.id}): ${(c.searchFitness - c.reference.searchFitness) >= 0 ? '+' : ''}${f(c.searchFitness - c.reference.searchFitness)} on the search's split, ${(c.selectionFitness - c.reference.selectionFitness) >= 0 ? '+' : ''}${f(c.selectionFitness - c.reference.selectionFitness)} on the selection split` : '';
  return `select (stage ${stage}): candidate ${c.candidate.id} is the best of the top ${c.pool} on the selection split (${c.rule}): search fitness ${f(c.searchFitness)}, selection ${f(c.selectionFitness)}${c.selectionSE !== null ? ` +- ${f(c.selectionSE)}` : ''}, optimism ${f(c.optimism!)}${ref}${c.searchBest.id !== c.candidate.id ? ` (the search's maximum, candidate ${c.searchBest.id}, ${f(c.searchBest.fitness!)}, was not chosen)` : ''}`;
}

/**
 * The noise check of a stage (./noise.ts), made once per run and stage on its first result
 * scored on every item: each evaluator's standard error from that candidate, against the space's
 * noise.gain for the stage's planned candidates (the budget). Recorded as an event of kind
 * 'noise', so a resumed run does not repeat it.
 */
function noiseChecker(store: RunStore, run: RunRow, r: ResolvedSpace, stage: number, planned: number | undefined, log: (l: string) => void): (c: CandidateRow) => void {
  let done = planned === undefined || planned < 2 || store.events(run.id, 1_000_000).some((e) => e.kind === 'noise' && (e.data as { stage?: number } | null)?.stage === stage);
  return (c) => {
    if (done || c.state !== 'done' || c.fidelity !== null && c.fidelity < 1) return;
    const parts = partsOf(store.metrics(c.id), r.evaluators);
    if (!parts) return;
    done = true;
    const check = noiseCheck(parts, planned!, r.space.noise?.gain ?? 0.01);
    const lines = noiseLines(check);
    for (const l of lines) log(l);
    store.event(run.id, 'noise', lines.join('\n') || 'noise: no evaluator reports a standard error', { stage, candidate: c.id, ...check });
  };
}

/**
 * The fixed recipes a PS stage starts from (space init: baselines) as an event of kind
 * 'warm-start', which the report reads (src/report/data.ts fixedRecipes): each recipe's label and
 * the hash of the recipe its candidate gets. Only recipes the optimizer is given (its `initial`
 * option) are listed; written once per stage, so a resumed run keeps the first.
 */
function recordWarmStart(store: RunStore, run: RunRow, plan: StagePlan): void {
  if (plan.warmStart.length === 0 || !plan.codec) return;
  const given = (plan.problem.optimizer.options as { initial?: number[][] }).initial ?? [];
  const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
  const recipes = baselineGenomes(plan.codec)
    .filter((b) => plan.warmStart.includes(b.label) && given.some((g) => same(g, b.genome)))
    .map((b) => ({ label: b.label, recipeHash: plan.problem.prepare(b.genome, { id: -1, proposalId: 'warm-start' }).recipeHash }));
  if (recipes.length === 0) return;
  if (store.events(run.id, 1_000_000).some((e) => e.kind === 'warm-start' && (e.data as { stage?: number } | null)?.stage === plan.stage)) return;
  store.event(run.id, 'warm-start', `stage ${plan.stage} starts from the fixed recipes ${recipes.map((x) => x.label).join(', ')}`, { stage: plan.stage, recipes });
}

/**
 * The gradient stage (space `refine`, stage 1), given by the caller (SearchOptions.runtime.gradient,
 * src/refine/stage.ts): from the PS stage's best, `steps` Adam steps on the validation loss, each
 * step's genome a candidate with operator 'gradient' and the previous point as its parent. It runs
 * through the stage loop like every stage (its optimizer's ask computes the gradient), on one
 * local thread whatever the run's workers or queue, with no budget but its steps and no fail-fast;
 * its log has one line per step instead of the loop's progress events.
 */
async function gradientStage(store: RunStore, run: RunRow, r: ResolvedSpace, plan: StagePlan, o: SearchOptions, start?: CandidateRow, evaluation?: EvaluationPlan): Promise<StageSummary> {
  const log = o.onLog ?? (() => {});
  const stage = 1;
  const runner = o.runtime.local({ data: { sources: plan.sources, evaluators: r.evaluators, backend: r.space.backend, objective: 'weighted-sum', allowTestSplit: r.allowTestSplit === true, baseCheckpoint: architectureSource(r) }, workers: 1, timeoutMs: r.space.timeout_seconds * 1000, ...(evaluation ? { evaluation } : {}) });
  let own: Awaited<ReturnType<GradientStage['open']>> | null = null;
  try {
    own = await gradientRuntime(o).open({ store, run, stage, space: r.space, evaluators: r.evaluators, sources: plan.sources, configFrom: architectureSource(r), codec: plan.codec!, onLog: log, ...(start ? { start } : {}) });
    const problem: StageProblem<CandidateTask> = {
      stage, dimension: plan.problem.dimension, optimizer: { id: 'adam', options: r.space.refine }, own,
      prepare: (genome, c) => plan.problem.prepare(genome, { id: c.id, proposalId: c.proposalId }),
    };
    return await runStage(store, run, problem, runner, {
      budget: {}, signal: o.signal, failFast: 0,
      onEvent: (e) => {
        if (e.type !== 'result') return;
        o.onEvent?.({ type: 'result', candidate: e.candidate, reused: e.reused, stage });
        log(own!.resultLine(e.candidate));
      },
    });
  } finally {
    await own?.close?.();
    await runner.close();
  }
}

/** The caller's gradient stage; a space with `refine` without it is refused. */
function gradientRuntime(o: SearchOptions): GradientStage {
  if (!o.runtime.gradient) throw new InputError('E_NO_GRADIENT_STAGE', `the space has a refine section, but the search's caller gave no gradient stage (SearchOptions.runtime.gradient, src/refine/'s gradientStage); give one, or remove refine`);
  return o.runtime.gradient;
}

/** The caller's queue runtime; a run that needs one without it is refused (`why`: what needs it). */
function queueRuntime(o: SearchOptions, why = 'the search was given a queue'): QueueRuntime {
  if (!o.runtime.queue) throw new InputError('E_NO_QUEUE_RUNTIME', `${why}, but its caller gave no queue runtime (SearchOptions.runtime.queue, src/queue/'s queueRuntime); give one, or pass queue: null to evaluate on the local pool`);
  return o.runtime.queue;
}

/** The options a session runs with: the settings' memory limit and queue (parsed), the caller's signal and callbacks. */
function sessionOptions(o: SearchOptions, s: RunSettings, queue: SearchOptions['queue']): SearchOptions {
  return {
    runtime: o.runtime, signal: o.signal, onEvent: o.onEvent, onLog: o.onLog, failFast: o.failFast, ...(s.maxMemory !== null ? { maxMemory: s.maxMemory } : {}), queue,
    ...(s.gpus ? { gpus: s.gpus } : {}), ...(s.candidateDir ? { candidateDir: s.candidateDir } : {}),
  };
}

/**
 * One session of a run: this process takes the run's lease (store/lease.ts), renews it while
 * `body` searches, and writes how the session ended: 'finished' with the stages' stop reasons,
 * 'stopped' with why the signal fired (Ctrl-C, a closed output), or 'failed' with the error.
 */
async function ownedSession(store: RunStore, run: RunRow, settings: RunSettings, o: SearchOptions, body: (o: SearchOptions) => Promise<SearchResult>): Promise<SearchResult> {
  const owner = newOwner();
  store.claimRun(run.id, owner);
  // a session that lost its lease (another process resumed the run, believing this one dead) stops writing
  const lost = new AbortController();
  const timer = setInterval(() => {
    try {
      if (!store.heartbeat(run.id, owner.token)) lost.abort('another process took the run over');
    } catch {
      // a busy or full disk: the next beat tries again, and readers allow for a late one
    }
  }, HEARTBEAT_SECONDS * 1000);
  timer.unref();
  const signal = o.signal ? AbortSignal.any([o.signal, lost.signal]) : lost.signal;
  try {
    const result = await body({ ...o, signal });
    const stopped = result.stages.some((s) => s.reason === 'stopped');
    const reason = stopped ? stopCause(signal) : result.stages.map((s) => `stage ${s.stage} (${s.kind}): ${describeStop(s.reason, settings.budget)}`).join('; ');
    store.endRun(run.id, owner.token, { status: stopped ? 'stopped' : 'finished', reason });
    store.event(run.id, stopped ? 'stop' : 'finish', `run ${stopped ? 'stopped' : 'finished'}: ${reason}`);
    return { ...result, run: store.runById(run.id)!, reason };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    try {
      store.endRun(run.id, owner.token, { status: 'failed', reason: `error${isEvomergeError(err) ? ` ${err.code}` : ''}`, error: message });
      store.event(run.id, 'fail', `run failed: ${message}`);
    } catch {
      // the database itself failed (a full disk): the run stays 'running' with a dead owner, read as interrupted
    }
    throw err;
  } finally {
    clearInterval(timer);
  }
}

/** Why an aborted signal fired, in words ('Ctrl-C', 'the output was closed', ...). */
function stopCause(signal: AbortSignal): string {
  const r: unknown = signal.reason;
  return typeof r === 'string' ? r : r instanceof Error && r.name !== 'AbortError' ? r.message : 'stopped';
}

export function defaultDbPath(runName: string): string {
  return resolve('runs', runName, 'run.sqlite');
}

/** Start a new run of a search space. Refuses an existing run name (resume it instead). */
export async function startSearch(spacePath: string, options: SearchOptions & { runName?: string; dbPath?: string; seed?: number; zooOverride?: string; allowTestSplit?: boolean }): Promise<SearchResult & { dbPath: string }> {
  let space = loadSearchSpace(spacePath);
  if (options.zooOverride !== undefined) space = { ...space, zoo: options.zooOverride };
  const settings = settingsOf(space, options);
  const resolved = effectiveSpace(resolveSpace(space, resolve(spacePath), settings.allowTestSplit), settings);
  const runName = options.runName ?? space.name ?? spacePath.split('/').pop()!.replace(/\.ya?ml$/, '');
  const dbPath = options.dbPath ? resolve(options.dbPath) : defaultDbPath(runName);
  // check the methods before creating anything on disk
  for (const m of [space.ps?.method ?? []].flat()) getMethod(m);
  if (options.queue) await queueRuntime(options).checkReachable(options.queue.url);
  if (existsSync(dbPath)) {
    const existing = RunStore.open(dbPath, { readonly: true });
    const taken = existing.run(runName);
    existing.close();
    if (taken) throw new InputError('E_RUN_EXISTS', `a run named '${runName}' already exists in ${dbPath}; continue it with 'evomerge resume ${runName}${options.dbPath ? ` --db ${options.dbPath}` : ''}' or choose another --run name`);
  }
  // every set-up check before the run database is created: a refused search writes nothing
  const o = sessionOptions(options, settings, options.queue);
  const prepared = prepareRun(resolved, o);
  const store = RunStore.open(dbPath);
  try {
    const fingerprints: Record<string, string> = {};
    for (const p of [resolved.base, ...resolved.models.map((m) => m.path)]) if (p) Object.assign(fingerprints, await fingerprint(p));
    const run = store.createRun({ name: runName, space: resolved, spacePath: resolved.spacePath, codeVersion: pkg.version, seed: settings.seed, fingerprints, settings });
    store.event(run.id, 'start', `search started from ${resolved.spacePath}${settings.given.length ? ` (given on the command line: ${settings.given.join(', ')})` : ''}`, { settings });
    if (options.queue) store.event(run.id, 'queue', `candidates go through the queue at ${options.queue.url.display}`, { url: options.queue.url.display });
    return { ...(await ownedSession(store, run, settings, o, (so) => runStages(store, run, resolved, so, prepared))), dbPath };
  } finally {
    store.close();
  }
}

/**
 * Continue a run from its last committed step with the run's own settings (a flag changes only
 * what it names, recorded as an event); the sources must be unchanged. A finished run is only
 * reported, unless a larger `--budget` extends it (or `--minutes` gives a run that ended on its
 * time limit another session).
 */
export async function resumeSearch(runName: string, options: SearchOptions & { dbPath?: string }): Promise<SearchResult & { dbPath: string }> {
  const dbPath = options.dbPath ? resolve(options.dbPath) : defaultDbPath(runName);
  if (!existsSync(dbPath)) throw new InputError('E_NO_RUN_DB', `no run database at ${dbPath}; check the run name or pass --db`);
  const store = RunStore.open(dbPath, { create: false });
  try {
    const run = store.run(runName);
    if (!run) throw new InputError('E_NO_RUN', `${dbPath} has no run named '${runName}' (it has: ${store.runs().map((x) => x.name).join(', ') || 'none'})`);
    if (runState(run) === 'running') {
      const w = run.owner!;
      throw new InputError('E_RUN_BUSY', `run '${runName}' is being searched by process ${w.pid} on ${w.host} (since ${w.startedAt}); wait for it to end, or stop it (Ctrl-C in its terminal, or kill ${w.pid}), then resume`);
    }
    const saved = run.settings ?? legacySettings(store, run);
    const { settings, changes } = resumeSettings(saved, options);
    if (run.status === 'finished') {
      const more = settings.budget.evaluations !== undefined && (saved.budget.evaluations === undefined || settings.budget.evaluations > saved.budget.evaluations);
      const anotherSession = options.budget?.seconds !== undefined && /budget: time/.test(run.stopReason ?? '');
      const chosen = chosenCandidate(store, run);
      if (!more && !anotherSession) return { run, stages: [], best: chosen?.candidate ?? null, chosen, reason: run.stopReason ?? 'finished', alreadyFinished: true, dbPath };
    }
    const resolved = effectiveSpace(run.space as ResolvedSpace, settings);
    for (const p of [resolved.base, ...resolved.models.map((m) => m.path)]) {
      if (!p) continue;
      for (const [file, sha] of Object.entries(await fingerprint(p))) {
        if (run.fingerprints[file] !== sha) throw new InputError('E_SOURCE_CHANGED', `${file} changed since the run started (SHA-256 differs); resuming would mix results of different models. Restore the file or start a new run`);
      }
    }
    // a run that went through a queue goes back to it (and to the results that arrived while its
    // owner was away) unless told otherwise (--no-queue)
    let queue: SearchOptions['queue'] = options.queue ?? undefined;
    if (!queue && settings.queue) {
      if (settings.queue.url.includes('***')) throw new InputError('E_QUEUE_PASSWORD', `run '${runName}' went through the queue ${settings.queue.url}, whose password is not stored; pass --queue with the full URL again (or --no-queue to evaluate locally)`);
      queue = { url: queueRuntime(options, `run '${runName}' went through the queue ${settings.queue.url}`).parse(settings.queue.url), ...(settings.queue.slots !== undefined ? { slots: settings.queue.slots } : {}) };
      options.onLog?.(`reattaching to the run's queue at ${settings.queue.url}`);
    }
    if (queue) await queueRuntime(options).checkReachable(queue.url);
    const o = sessionOptions(options, settings, queue ?? undefined);
    const prepared = prepareRun(resolved, o);
    if (changes.length > 0) {
      store.updateSettings(run.id, settings);
      store.event(run.id, 'settings', `resume changed ${changes.join(', ')}`, { changes, settings });
      options.onLog?.(`resume: ${changes.join(', ')} (the run's other settings are kept)`);
    } else if (!run.settings) store.updateSettings(run.id, settings);
    if (queue) store.event(run.id, 'queue', `candidates go through the queue at ${queue.url.display}`, { url: queue.url.display });
    store.event(run.id, 'resume', 'search resumed');
    return { ...(await ownedSession(store, run, settings, o, (so) => runStages(store, run, resolved, so, prepared))), dbPath };
  } finally {
    store.close();
  }
}
