/**
 * The search loop of one stage: ask, record, dispatch, tell; exact to resume.
 *
 * Determinism: the optimizer is told outcomes only at points that do not depend on timing:
 * the longest prefix of outstanding proposals (in proposal order) whose results are all in.
 * Each tell is followed at once by an ask, and the state after both is committed in one
 * transaction with the new proposals and the "told" marks (store.commitStep). Results are
 * committed one by one as they arrive, idempotently. So after a kill at any moment, reloading
 * the last committed state and the stored results replays exactly the tells an uninterrupted
 * run makes, whatever order the workers finished in: same candidates, same scores, same best.
 * (Steady-state optimizers get their outcomes in proposal order too, so they stay
 * reproducible; a worker never waits for a whole generation as long as the optimizer has
 * proposals to give.)
 */
import { getOptimizer, optimizerForState, type BaseState, type Optimizer, type Outcome } from '../optim/index.ts';
import { isFullFidelity, type CandidateRow, type NewCandidate, type RunRow, type RunStore } from '../store/index.ts';
import { deriveSeed } from '../tensor/rng.ts';
import type { CandidateScore, TaskOutcome } from '../candidate/index.ts';

export type { CandidateScore } from '../candidate/index.ts';

/** A proposal of a stage's optimizer: parents are proposal ids of the stage, or candidate ids (numbers) of any stage. */
export interface StageProposal {
  id: string;
  genome: number[];
  parentIds: ReadonlyArray<string | number>;
  operator: string;
}

/** What an ask gives: the proposals, the state that remembers them, and optionally their generation number. */
export interface StageAsked {
  proposals: readonly StageProposal[];
  state: unknown;
  /** The generation the proposals belong to (default: the previous one's plus 1, the first 0). */
  generation?: number;
}

/**
 * How a stage proposes candidates, over a JSON state the loop commits with each step (the
 * contract of src/optim/: init, ask, tell, isDone). A registry optimizer is used through it; a
 * stage may supply its own (the gradient stage: each ask computes a gradient and gives the next
 * Adam step). `ask` may be asynchronous; the loop awaits it only then, so a synchronous
 * optimizer's steps run exactly as they always did.
 */
export interface StageOptimizer {
  /** The state of a stage not begun (the loop asks it at once, and commits the first step). */
  init(): unknown;
  ask(state: unknown): StageAsked | Promise<StageAsked>;
  tell(state: unknown, outcomes: readonly Outcome[]): unknown;
  /** Why the stage is done, or null. */
  isDone(state: unknown): string | null;
}

/** A stage's problem: how genomes become recipes and tasks, and tasks become scores. */
export interface StageProblem<Task> {
  stage: number;
  dimension: number;
  /** The registry's optimizer (src/optim/) with its options (`own` absent), or the name and options of the stage's own. */
  optimizer: { id: string; options: unknown };
  /** The stage's own optimizer, used instead of the registry's `optimizer.id`. */
  own?: StageOptimizer;
  /**
   * Multi-fidelity evaluation (space `fidelity`, src/candidate/fidelity.ts): each proposal gets as
   * its threshold the best full-fidelity fitness told before it, and the budget counts full-set
   * equivalents.
   */
  fidelity?: boolean;
  /**
   * Owner side, pure: the recipe a genome stands for, its canonical hash, and the worker task
   * (which carries `threshold`, the score to beat, when the stage races; null: score in full).
   */
  prepare(genome: readonly number[], candidate: { id: number; proposalId: string; threshold?: number | null }): { recipe: unknown; recipeHash: string; task: Task };
}

/**
 * Runs a stage's tasks, `threads` at a time: a CandidateRunner (the local pool or the queue,
 * given by the search's caller), or a stand-in in tests. `candidate` names the task's candidate.
 */
export interface TaskRunner<Task> {
  readonly threads: number;
  run(task: Task, candidate?: { id: number; proposalId: string }): Promise<TaskOutcome<CandidateScore, number | string>>;
}

export interface Budget {
  /**
   * A limit on the candidates of the stage that are evaluated (scored, failed, or given the
   * score of an identical recipe). Candidate k, in proposal order, is evaluated only if the
   * candidates before it cost at most `evaluations - 1`: each costs 1, or with multi-fidelity
   * evaluation the fraction of the items its score rests on (an unfinished one counts 1 until it
   * finishes, so the decision never depends on timing). The optimizer is asked for no more once
   * its proposals cover the budget; the proposals of a last generation that lie past it are kept
   * as pending, not evaluated, and run only if the stage is resumed with a larger budget (so a
   * run extended from budget N to M is the run of budget M).
   */
  evaluations?: number;
  /** Stop asking after this many seconds of this session (outstanding candidates still finish). */
  seconds?: number;
}

export type SearchEvent =
  /** `used`: the budget the stage has used, this result included (Budget.evaluations' units). */
  | { type: 'result'; candidate: CandidateRow; reused: boolean; used?: number }
  | { type: 'step'; generation: number; proposals: number; told: number }
  | { type: 'done'; reason: string }
  /** Emitted by the engine when a stage starts: the run, its kind, genome size, candidate budget and what a resumed stage used already. */
  | { type: 'stage'; kind: 'ps' | 'dfs'; dimension: number; budget: number | null; threads: number; run?: string; used?: number };

export interface StageSummary {
  reason: string;
  /** The error every one of the stage's first results failed with, when that stopped it (see failFast). */
  failure?: string;
  evaluated: number;
  reused: number;
  failed: number;
  best: CandidateRow | null;
}

function toCandidates<T>(problem: StageProblem<T>, generation: number, proposals: readonly StageProposal[], threshold: number | null = null): NewCandidate[] {
  return proposals.map((p) => {
    const pre = problem.prepare(p.genome, { id: -1, proposalId: p.id, threshold });
    return { stage: problem.stage, generation, proposalId: p.id, operator: p.operator, genome: p.genome, recipe: pre.recipe, recipeHash: pre.recipeHash, parents: p.parentIds, ...(problem.fidelity ? { threshold } : {}) };
  });
}

/** Item-evaluations as the search log and `status` say them: '<n> item-evaluations (k stopped at f, ..., m scored in full)'. */
export function itemsText(items: { items: number; byFidelity: ReadonlyArray<{ fidelity: number; candidates: number }> }): string {
  const at = items.byFidelity.map((r) => (r.fidelity >= 1 ? `${r.candidates} scored in full` : `${r.candidates} stopped at ${r.fidelity}`));
  return `${items.items} item-evaluations${at.length ? ` (${at.join(', ')})` : ''}`;
}

/**
 * A stage's stop reason in words, for the end of a search, `status` and the run's record:
 * 'budget: evaluations' -> 'budget of 60 evaluations reached', an optimizer's termination
 * criterion ('tolflatfitness', ...) -> "the optimizer's stop rule tolflatfitness".
 */
export function describeStop(reason: string, budget: { evaluations?: number; minutes?: number } = {}): string {
  if (reason === 'budget: evaluations') return budget.evaluations === undefined ? 'budget of evaluations reached' : `budget of ${budget.evaluations} evaluations reached`;
  if (reason === 'budget: time') return budget.minutes === undefined ? 'time limit reached' : `time limit of ${budget.minutes} min reached`;
  if (reason === 'stopped' || reason === 'finished' || reason.startsWith('stopped:') || reason.startsWith('refine:') || reason.startsWith('the optimizer')) return reason;
  return `the optimizer's stop rule ${reason}`;
}

/** A told outcome that may serve as the threshold of later proposals: a full-fidelity score. */
function fullScore(c: CandidateRow): number | null {
  return c.state === 'done' && c.fitness !== null && isFullFidelity(c) ? c.fitness : null;
}

/** A registry optimizer (src/optim/) as a stage's optimizer, started with the problem's options. */
function fromRegistry<T>(o: Optimizer, problem: StageProblem<T>, run: RunRow): StageOptimizer {
  return {
    init: () => o.init(problem.dimension, problem.optimizer.options, deriveSeed(run.seed, 'optimizer', problem.stage)),
    ask: (state) => o.ask(state as BaseState),
    tell: (state, outcomes) => o.tell(state as BaseState, outcomes),
    isDone: (state) => o.isDone(state as BaseState),
  };
}

/** Run (or resume) one stage of a run until its budget, the optimizer's own stop, or `signal`. */
export async function runStage<Task>(
  store: RunStore,
  run: RunRow,
  problem: StageProblem<Task>,
  runner: TaskRunner<Task>,
  options: {
    budget: Budget;
    signal?: AbortSignal;
    onEvent?: (e: SearchEvent) => void;
    /**
     * Stop the stage when its first `failFast` results (default 3; 0: never) all failed with the
     * same error: a set-up error no candidate can escape. The stage then ends with `failure` set,
     * its untold failed candidates are put back to pending, and a resume after the fix runs them.
     */
    failFast?: number;
  },
): Promise<StageSummary> {
  const { stage } = problem;
  const emit = options.onEvent ?? (() => {});
  const started = performance.now();

  // resume from the last committed step, or start
  let state: unknown;
  let generation: number;
  const saved = store.latestGeneration(run.id, stage);
  if (saved) {
    state = saved.state;
    generation = saved.generation;
  } else {
    const starter = problem.own ?? fromRegistry(getOptimizer(problem.optimizer.id), problem, run);
    const first = starter.ask(starter.init());
    const asked = first instanceof Promise ? await first : first;
    generation = asked.generation ?? 0;
    state = asked.state;
    store.commitStep(run.id, { stage, generation, optimizerState: state, told: [], proposals: toCandidates(problem, generation, asked.proposals) });
    emit({ type: 'step', generation, proposals: asked.proposals.length, told: 0 });
  }
  // a stored state continues with the optimizer of its kind (a sep-cmaes state has kind cmaes)
  const optimizer = problem.own ?? fromRegistry(optimizerForState(state as BaseState), problem, run);

  let evaluated = 0;
  let reused = 0;
  let failed = 0;
  let stopReason: string | null = null;
  const inFlight = new Map<number, Promise<void>>();
  /** Recipe hashes being evaluated: a twin waits for the first one's score instead of repeating it. */
  const inFlightHashes = new Set<string>();

  let proposed = store.candidates(run.id, { stage }).length;
  // multi-fidelity: the best full-fidelity fitness told so far (the threshold of the next
  // proposals) and the full-set equivalents spent, both from committed, told candidates only
  let bestTold: number | null = null;
  let spent = 0;
  let untold = 0;
  if (problem.fidelity) {
    for (const c of store.candidates(run.id, { stage })) {
      if (!c.told) {
        untold++;
        continue;
      }
      spent += c.fidelity ?? 1;
      const f = fullScore(c);
      if (f !== null && (bestTold === null || f > bestTold)) bestTold = f;
    }
  }
  const budgetReason = (): string | null => {
    if (options.signal?.aborted) return 'stopped';
    const used = problem.fidelity ? spent + untold : proposed;
    if (options.budget.evaluations !== undefined && used >= options.budget.evaluations) return 'budget: evaluations';
    if (options.budget.seconds !== undefined && (performance.now() - started) / 1000 >= options.budget.seconds) return 'budget: time';
    return optimizer.isDone(state);
  };

  const finish = (candidate: CandidateRow, outcome: TaskOutcome<CandidateScore, number | string>) => {
    const row = recordOutcome(store, candidate, outcome);
    evaluated++;
    if (row.state === 'failed') failed++;
    emit({ type: 'result', candidate: row, reused: false, used: store.stageCost(run.id, stage) });
    if (row.state === 'failed' && failFast > 0 && failure === null) checkFailFast();
  };

  // a stage whose first results all failed alike has a set-up error: stop instead of spending the budget
  const failFast = options.failFast ?? 3;
  let failure: string | null = null;
  /** No result of the stage succeeded yet, and fewer than failFast failed: fail-fast can still stop it. */
  const earlyFailures = () => {
    const finished = store.candidates(run.id, { stage, state: ['done', 'failed'] });
    return finished.length < failFast && finished.every((c) => c.state === 'failed');
  };
  const checkFailFast = () => {
    const finished = store.candidates(run.id, { stage, state: ['done', 'failed'] });
    if (finished.length !== failFast || finished.some((c) => c.state !== 'failed' || c.reusedFrom !== null)) return;
    const kinds = new Set(finished.map((c) => sameErrorKey(c.error ?? '')));
    if (kinds.size === 1) failure = finished[finished.length - 1]!.error ?? 'unknown error';
  };

  /**
   * Whether the budget lets a candidate be evaluated: true, false, or null while candidates
   * proposed before it are unfinished and their cost could still decide it (multi-fidelity).
   */
  const limit = options.budget.evaluations;
  const withinBudget = (c: CandidateRow): boolean | null => {
    if (limit === undefined) return true;
    const before = store.stageCost(run.id, stage, c.id);
    if (before.upper + 1 <= limit + 1e-9) return true;
    return before.unfinished > 0 ? null : false;
  };

  const dispatch = (candidate: CandidateRow) => {
    const hit = store.scoredByHash(run.id, candidate.recipeHash, candidate.threshold);
    if (hit && hit.id !== candidate.id) {
      store.recordResult(candidate.id, { fitness: hit.fitness, objectives: hit.objectives, metrics: store.metrics(hit.id), reusedFrom: hit.id, backend: hit.backend, evalMs: 0, fidelity: hit.fidelity, itemEvals: 0 });
      reused++;
      emit({ type: 'result', candidate: store.candidate(candidate.id)!, reused: true, used: store.stageCost(run.id, stage) });
      return;
    }
    store.markRunning(candidate.id, null);
    const { task } = problem.prepare(candidate.genome, { id: candidate.id, proposalId: candidate.proposalId, threshold: candidate.threshold });
    inFlightHashes.add(candidate.recipeHash);
    const p = runner.run(task, { id: candidate.id, proposalId: candidate.proposalId }).then((outcome) => finish(candidate, outcome)).finally(() => {
      inFlight.delete(candidate.id);
      inFlightHashes.delete(candidate.recipeHash);
    });
    inFlight.set(candidate.id, p);
  };

  for (;;) {
    if (failure !== null) break;
    const outstanding = store.outstanding(run.id, stage);
    // while fail-fast may still stop the stage, failures are not told (a told candidate is part
    // of the optimizer's state and could not run again after the fix); only delaying tells that
    // are made in proposal order anyway, this changes nothing else. Released when nothing is left
    // to run, so a small first generation cannot wait forever.
    const holdFailures = failFast > 0 && outstanding.some((c) => c.state === 'pending' || c.state === 'running') && earlyFailures();
    const prefix: CandidateRow[] = [];
    for (const c of outstanding) {
      if (c.state !== 'done' && c.state !== 'failed') break;
      if (holdFailures && c.state === 'failed') break;
      prefix.push(c);
    }
    // 1. tell the finished prefix of outstanding proposals (if any), one outcome at a time,
    //    each tell followed by an ask, so grouping by arrival time cannot change the result;
    //    then commit the whole step
    if (prefix.length > 0 || outstanding.length === 0) {
      const proposals: NewCandidate[] = [];
      const took = (asked: StageAsked) => {
        state = asked.state;
        if (asked.proposals.length === 0) return;
        generation = asked.generation ?? generation + 1;
        proposed += asked.proposals.length;
        untold += asked.proposals.length;
        proposals.push(...toCandidates(problem, generation, asked.proposals, problem.fidelity ? bestTold : null));
      };
      // a promise only when the optimizer's ask is asynchronous (the gradient stage's)
      const askOnce = (): Promise<void> | void => {
        stopReason = budgetReason();
        if (stopReason !== null) return;
        const asked = optimizer.ask(state);
        if (asked instanceof Promise) return asked.then(took);
        took(asked);
      };
      for (const c of prefix) {
        // multi-fidelity: a partial score is an unbiased estimate on a nested random subset, told
        // as it is; it is below its threshold by at least confidence x its standard error (that
        // is why it stopped), so every full score that beat the threshold ranks above it
        state = optimizer.tell(state, [{ id: c.proposalId, fitness: c.fitness, ...(c.objectives ? { objectives: c.objectives } : {}) }]);
        if (problem.fidelity) {
          spent += c.fidelity ?? 1;
          untold--;
          const f = fullScore(c);
          if (f !== null && (bestTold === null || f > bestTold)) bestTold = f;
        }
        const asking = askOnce();
        if (asking) await asking;
      }
      if (prefix.length === 0) {
        const asking = askOnce();
        if (asking) await asking;
      }
      if (prefix.length > 0 || proposals.length > 0) {
        store.commitStep(run.id, { stage, generation, optimizerState: state, told: prefix.map((c) => c.id), proposals });
        emit({ type: 'step', generation, proposals: proposals.length, told: prefix.length });
      }
      if (outstanding.length === prefix.length && proposals.length === 0) {
        stopReason = stopReason ?? 'the optimizer asked for nothing more';
        break;
      }
      continue;
    }
    // 2. keep every thread busy with outstanding unfinished candidates (pending, or running in a
    //    dead session), in proposal order, up to the budget
    let pastBudget = false;
    if (!options.signal?.aborted) {
      for (const c of outstanding) {
        if (inFlight.size >= runner.threads) break;
        if ((c.state === 'pending' || c.state === 'running') && !inFlight.has(c.id) && !inFlightHashes.has(c.recipeHash)) {
          const ok = withinBudget(c);
          if (ok === null) break;
          if (!ok) {
            // every later proposal lies past the budget too
            pastBudget = true;
            break;
          }
          dispatch(c);
        }
      }
    }
    if (inFlight.size === 0) {
      if (options.signal?.aborted) {
        stopReason = 'stopped';
        break;
      }
      if (pastBudget) {
        stopReason = 'budget: evaluations';
        break;
      }
      continue; // results were reused from earlier candidates: tell them
    }
    await Promise.race(inFlight.values());
  }
  await Promise.all(inFlight.values());
  if (failure !== null) {
    store.retryFailed(run.id, stage);
    const reason = `stopped: the first ${failFast} candidates all failed with the same error`;
    emit({ type: 'done', reason });
    return { reason, failure, evaluated, reused, failed, best: store.best(run.id, 1)[0] ?? null };
  }
  const reason = stopReason ?? 'finished';
  emit({ type: 'done', reason });
  return { reason, evaluated, reused, failed, best: store.best(run.id, 1)[0] ?? null };
}

/** Stores a worker's outcome for a candidate (a failure, or a score without usable fitness, as failed) and returns the updated row. */
export function recordOutcome(store: RunStore, candidate: CandidateRow, outcome: TaskOutcome<CandidateScore, number | string>): CandidateRow {
  if (outcome.ok) {
    const s = outcome.value;
    const fitness = s.fitness === null || Number.isNaN(s.fitness) ? null : s.fitness;
    store.recordResult(candidate.id, {
      fitness, objectives: s.objectives ?? null, metrics: s.metrics, backend: s.backend ?? null, worker: String(outcome.worker), evalMs: outcome.ms,
      fidelity: s.fidelity ?? null, itemEvals: s.itemEvals ?? null, phases: s.phases ?? null,
      error: fitness === null ? s.error ?? 'the evaluators returned no usable fitness (NaN or missing)' : null,
    });
  } else {
    store.recordResult(candidate.id, { fitness: null, error: `${outcome.kind}: ${outcome.error}`, evalMs: outcome.ms, phases: outcome.phases ?? null });
  }
  return store.candidate(candidate.id)!;
}

/** An error message with what differs between candidates (paths, numbers) blanked out. */
export function sameErrorKey(error: string): string {
  return error.replace(/(?:[A-Za-z]:)?[\\/][^\s'"`,;:)]*/g, '<path>').replace(/\d+(?:\.\d+)?(?:e[-+]?\d+)?/gi, 'N');
}
