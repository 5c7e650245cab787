/**
 * A run's effective settings (store/schema.ts RunSettings): the space's values with every
 * command-line override, stored with the run at its start; `resume` continues with them, a flag
 * given to it changing only what it names.
 */
import type { SearchSpace } from '../space/index.ts';
import type { RunRow, RunSettings, RunStore } from '../store/index.ts';
import type { Budget } from './loop.ts';
import type { ResolvedSpace } from './resolve.ts';
import type { QueueTarget } from './runtime.ts';

/** The options that override a space's settings (the command line's flags). */
export interface SettingFlags {
  budget?: Budget;
  workers?: number;
  backend?: SearchSpace['backend'];
  /** Refuse to start when the memory plan passes this many bytes (default: the machine's memory). */
  maxMemory?: number;
  /** Evaluate on `evomerge worker` processes through the run's BullMQ queue; `slots` candidates outstanding at once. */
  queue?: { url: QueueTarget; slots?: number } | null;
  /** One evaluation slot per GPU id (command evaluators; overrides the space's `gpus`). */
  gpus?: string[];
  /** Where candidate folders go. */
  candidateDir?: string;
}

/** A stage's budget from the run's effective space (settings applied, see effectiveSpace). */
export function budgetOf(space: SearchSpace): Budget {
  return { evaluations: space.budget.evaluations, seconds: space.budget.minutes ? space.budget.minutes * 60 : undefined };
}

/** What a new run is searched with: the space's values, each replaced by the option given for it. */
export function settingsOf(space: SearchSpace, o: SettingFlags & { seed?: number; allowTestSplit?: boolean }): RunSettings {
  const given: string[] = [];
  const pick = <T>(name: string, value: T | undefined, fallback: T): T => {
    if (value === undefined) return fallback;
    given.push(name);
    return value;
  };
  const minutes = o.budget?.seconds === undefined ? undefined : o.budget.seconds / 60;
  return {
    budget: { evaluations: pick('budget', o.budget?.evaluations, space.budget.evaluations), minutes: pick('minutes', minutes, space.budget.minutes) },
    workers: pick('workers', o.workers, space.workers),
    seed: pick('seed', o.seed, space.seed),
    backend: pick('backend', o.backend, space.backend),
    maxMemory: pick('max-memory', o.maxMemory, null),
    allowTestSplit: pick('allow-test-split', o.allowTestSplit || undefined, false),
    queue: o.queue ? pick('queue', { url: o.queue.url.display, ...(o.queue.slots !== undefined ? { slots: o.queue.slots } : {}) }, null) : null,
    gpus: pick('gpus', o.gpus, space.gpus ?? null),
    candidateDir: pick('candidate-dir', o.candidateDir, null),
    given,
  };
}

/** The settings of a run started before they were stored (schema 2): the space's, and the queue its events name. */
export function legacySettings(store: RunStore, run: RunRow): RunSettings {
  const r = run.space as ResolvedSpace;
  const used = store.events(run.id, 1_000_000).filter((e) => e.kind === 'queue').pop()?.data as { url?: string } | undefined;
  return {
    budget: { evaluations: r.space.budget.evaluations, minutes: r.space.budget.minutes }, workers: r.space.workers, seed: r.space.seed,
    backend: r.space.backend, maxMemory: null, allowTestSplit: r.allowTestSplit === true, queue: used?.url ? { url: used.url } : null, gpus: r.space.gpus ?? null, candidateDir: null, given: [],
  };
}

/** The resolved space as the run searches it: the settings' budget, workers, seed and backend in place of the file's. */
export function effectiveSpace(r: ResolvedSpace, s: RunSettings): ResolvedSpace {
  const budget = { ...r.space.budget, evaluations: s.budget.evaluations, minutes: s.budget.minutes };
  return { ...r, allowTestSplit: s.allowTestSplit, space: { ...r.space, budget, workers: s.workers, seed: s.seed, backend: s.backend as SearchSpace['backend'] } };
}

/** What `resume` changes: each flag given replaces the setting it names; the rest stay the run's. */
export function resumeSettings(s: RunSettings, o: SettingFlags): { settings: RunSettings; changes: string[] } {
  const next: RunSettings = { ...s, budget: { ...s.budget }, given: [...s.given] };
  const changes: string[] = [];
  const set = <K extends 'workers' | 'backend' | 'maxMemory'>(key: K, flag: string, value: RunSettings[K] | undefined) => {
    if (value === undefined || value === s[key]) return;
    changes.push(`${flag} ${s[key] ?? 'default'} -> ${value}`);
    next[key] = value;
    if (!next.given.includes(flag)) next.given.push(flag);
  };
  const evaluations = o.budget?.evaluations;
  if (evaluations !== undefined && evaluations !== s.budget.evaluations) {
    changes.push(`budget ${s.budget.evaluations ?? 'none'} -> ${evaluations}`);
    next.budget.evaluations = evaluations;
  }
  const minutes = o.budget?.seconds === undefined ? undefined : o.budget.seconds / 60;
  if (minutes !== undefined && minutes !== s.budget.minutes) {
    changes.push(`minutes ${s.budget.minutes ?? 'none'} -> ${minutes}`);
    next.budget.minutes = minutes;
  }
  set('workers', 'workers', o.workers);
  if (o.gpus !== undefined && JSON.stringify(o.gpus) !== JSON.stringify(s.gpus ?? null)) {
    changes.push(`gpus ${s.gpus?.join(',') ?? 'none'} -> ${o.gpus.join(',')}`);
    next.gpus = o.gpus;
    if (!next.given.includes('gpus')) next.given.push('gpus');
  }
  if (o.candidateDir !== undefined && o.candidateDir !== (s.candidateDir ?? null)) {
    changes.push(`candidate-dir ${s.candidateDir ?? 'default'} -> ${o.candidateDir}`);
    next.candidateDir = o.candidateDir;
    if (!next.given.includes('candidate-dir')) next.given.push('candidate-dir');
  }
  set('backend', 'backend', o.backend);
  set('maxMemory', 'max-memory', o.maxMemory);
  if (o.queue === null && s.queue) {
    changes.push('queue -> the local pool (--no-queue)');
    next.queue = null;
  } else if (o.queue && o.queue.url.display !== s.queue?.url) {
    changes.push(`queue ${s.queue?.url ?? 'none'} -> ${o.queue.url.display}`);
    next.queue = { url: o.queue.url.display, ...(o.queue.slots !== undefined ? { slots: o.queue.slots } : {}) };
  }
  return { settings: next, changes };
}
