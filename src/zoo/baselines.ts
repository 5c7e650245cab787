/**
 * `evomerge baselines`: the bar an evolved merge must clear. On every task of a zoo it scores
 * the base, each specialist, and fixed merge recipes at their customary settings, and reports
 * per-task metrics and the mean normalised score.
 *
 * Normalised score (the convention of the task-arithmetic literature, e.g. Ilharco et al. 2023,
 * "Editing Models with Task Arithmetic", section 3, and Yadav et al. 2023, TIES-Merging,
 * section 5.1: "normalized accuracy" = merged accuracy / fine-tuned accuracy): for a task with
 * a specialist, score / specialist's score on that task (inverted, specialist / score, for a
 * metric to minimise such as perplexity). A task without a specialist (lang-math's cross task)
 * is normalised by the best score among the base and the specialists. Tensors zoo.json marks as
 * owned (the image zoos' per-task heads) are copied from their specialist, not merged, so each
 * task is read through its own head and the recipes differ only in the shared body. The mean is over tasks;
 * a task whose reference score is 0 (nothing solves it) cannot normalise and is left out.
 */
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { openCheckpoint } from '../checkpoint/index.ts';
import { InputError } from '../errors.ts';
import { createEvaluator, loadManifest, type Evaluator } from '../eval/index.ts';
import { useBackend, type BackendChoice } from '../models/backend.ts';
import { loadTokenizer } from '../models/tokenizer.ts';
import { modelFromWeights } from '../models/load.ts';
import { weightsFromMap } from '../models/weights.ts';
import { getMethod, resolveScope } from '../methods/index.ts';
import { BASELINE_RECIPES, type BaselineRecipe } from '../space/baselines.ts';
import type { ZooManifest } from './build.ts';

export { BASELINE_RECIPES, type BaselineRecipe } from '../space/baselines.ts';
import { existsSync } from 'node:fs';

export class NotAZooError extends InputError {
  constructor(dir: string, why: string) {
    super('E_NOT_A_ZOO', `${dir}: ${why}; give a folder written by 'evomerge zoo build <name>' (it holds zoo.json)`);
  }
}

export interface BaselineRow {
  label: string;
  kind: 'base' | 'specialist' | 'merge';
  method?: string;
  settings?: { global: Record<string, unknown>; perModel: Record<string, unknown> };
  /** Primary metric per task. */
  scores: Record<string, number>;
  /** null where the task's reference score is 0, so it cannot normalise (left out of the mean). */
  normalized: Record<string, number | null>;
  meanNormalized: number;
}

export interface BaselineReport {
  zoo: string;
  dir: string;
  split: 'validation' | 'test';
  tasks: Array<{ name: string; metric: string; direction: 'maximize' | 'minimize'; reference: string }>;
  rows: BaselineRow[];
  backend: string;
  seed: number;
  seconds: number;
}

export interface BaselineOptions {
  split?: 'validation' | 'test';
  backend?: BackendChoice;
  /** Seed of random masks (DARE). */
  seed?: number;
  recipes?: readonly BaselineRecipe[];
  onProgress?: (done: number, total: number, what: string) => void;
}

function readAll(dir: string): { config: Record<string, unknown>; tensors: Map<string, Float32Array>; shapes: Map<string, number[]> } {
  const ckpt = openCheckpoint(dir);
  try {
    const tensors = new Map<string, Float32Array>();
    const shapes = new Map<string, number[]>();
    for (const name of ckpt.names()) {
      tensors.set(name, ckpt.readFloat32(name));
      shapes.set(name, ckpt.info(name).shape);
    }
    if (!ckpt.config) throw new NotAZooError(dir, 'a model folder has no config.json');
    return { config: ckpt.config, tensors, shapes };
  } finally {
    ckpt.close();
  }
}

/**
 * Merges whole models in memory with one method of the registry, tensor by tensor. A tensor
 * named in `owned` (prefix -> index of a model) is copied from that model instead of merged.
 */
export function mergeInMemory(recipe: BaselineRecipe, base: ReadonlyMap<string, Float32Array>, models: ReadonlyArray<ReadonlyMap<string, Float32Array>>, shapes: ReadonlyMap<string, number[]>, seed: number, owned: ReadonlyArray<{ prefix: string; index: number }> = []): Map<string, Float32Array> {
  const method = getMethod(recipe.method);
  const out = new Map<string, Float32Array>();
  const where = `baseline '${recipe.label}'`;
  const global = resolveScope(method, 'global', recipe.global, where);
  const perModel = models.map(() => resolveScope(method, 'per-model', recipe.perModel, where));
  for (const [name, b] of base) {
    const sources = models.map((m) => {
      const t = m.get(name);
      if (!t || t.length !== b.length) throw new InputError('E_ZOO_MISMATCH', `tensor ${name} is missing or has another size in a specialist; the zoo's models must share one architecture`);
      return t;
    });
    const owner = owned.find((o) => name.startsWith(o.prefix));
    if (owner) {
      out.set(name, Float32Array.from(sources[owner.index]!));
      continue;
    }
    // methods without a base (linear) average the specialists alone: the base is not a source of the soup
    const withBase = method.requiresBase !== 'none';
    out.set(name, method.merge({ name, shape: shapes.get(name)!, base: withBase ? b : null, models: sources }, global, perModel, { seed }));
  }
  return out;
}

/** Scores base, specialists and the fixed recipes on every task of the zoo in `dir`. */
export async function runBaselines(dir: string, options: BaselineOptions = {}): Promise<BaselineReport> {
  const started = performance.now();
  const zooFile = join(dir, 'zoo.json');
  if (!existsSync(zooFile)) throw new NotAZooError(dir, 'there is no zoo.json');
  const zoo = JSON.parse(readFileSync(zooFile, 'utf8')) as ZooManifest;
  const split = options.split ?? 'test';
  const seed = options.seed ?? 0;
  const recipes = options.recipes ?? BASELINE_RECIPES;
  const backend = await useBackend(options.backend ?? 'auto');

  const base = readAll(join(dir, zoo.base));
  const specialists = zoo.models.map((m) => ({ ...m, ...readAll(join(dir, m.path)) }));
  const tokenizer = existsSync(join(dir, zoo.base, 'tokenizer.json')) ? loadTokenizer(join(dir, zoo.base), base.config) : null;
  const evaluators: Array<{ task: string; ev: Evaluator }> = zoo.tasks.map((t) => ({ task: t.name, ev: createEvaluator(loadManifest(join(dir, t.evaluators[split])), { purpose: 'eval' }) }));
  const owned = (zoo.ownedTensors ?? []).map((o) => {
    const index = specialists.findIndex((s) => s.name === o.model);
    if (index < 0) throw new NotAZooError(dir, `zoo.json's ownedTensors names model '${o.model}', which is not among its models`);
    return { prefix: o.prefix, index };
  });
  const total = (1 + specialists.length + recipes.length) * evaluators.length;
  let done = 0;

  const score = async (label: string, weights: ReadonlyMap<string, Float32Array>): Promise<Record<string, number>> => {
    const model = modelFromWeights(base.config, weightsFromMap(weights, label), { tokenizer, file: join(dir, zoo.base, 'config.json') });
    try {
      const out: Record<string, number> = {};
      for (const { task, ev } of evaluators) {
        out[task] = (await ev.evaluate(model, { backend })).metrics[ev.metric.name]!;
        options.onProgress?.(++done, total, label);
      }
      return out;
    } finally {
      model.dispose();
    }
  };

  const rows: Array<Omit<BaselineRow, 'normalized' | 'meanNormalized'>> = [];
  try {
    rows.push({ label: 'base', kind: 'base', scores: await score('base', base.tensors) });
    for (const s of specialists) rows.push({ label: `specialist ${s.name}`, kind: 'specialist', scores: await score(s.name, s.tensors) });
    for (const r of recipes) {
      const merged = mergeInMemory(r, base.tensors, specialists.map((s) => s.tensors), base.shapes, seed, owned);
      rows.push({ label: r.label, kind: 'merge', method: r.method, settings: { global: r.global, perModel: r.perModel }, scores: await score(r.label, merged) });
    }
  } finally {
    for (const { ev } of evaluators) ev.dispose();
  }

  const tasks = evaluators.map(({ task, ev }) => {
    const owner = specialists.find((s) => s.task === task);
    return { name: task, metric: ev.metric.name, direction: ev.metric.direction, reference: owner ? `specialist ${owner.name}` : 'best of base and specialists' };
  });
  const reference = referenceScores(tasks, rows);
  const full: BaselineRow[] = rows.map((r) => ({ ...r, ...normalizeScores(tasks, reference, r.scores) }));
  return { zoo: zoo.zoo, dir, split, tasks, rows: full, backend: backend.name, seed, seconds: (performance.now() - started) / 1000 };
}

type TaskRef = BaselineReport['tasks'][number];

/** Each task's reference score: its specialist's, else the best of the base and the specialists. */
export function referenceScores(tasks: readonly TaskRef[], rows: ReadonlyArray<Pick<BaselineRow, 'label' | 'kind' | 'scores'>>): Record<string, number> {
  const reference: Record<string, number> = {};
  for (const t of tasks) {
    const pool = rows.filter((r) => r.kind !== 'merge').map((r) => r.scores[t.name]!);
    const owner = rows.find((r) => r.label === t.reference);
    reference[t.name] = owner ? owner.scores[t.name]! : t.direction === 'maximize' ? Math.max(...pool) : Math.min(...pool);
  }
  return reference;
}

/** Scores normalised by the references (inverted for metrics to minimise), and their mean. */
export function normalizeScores(tasks: readonly TaskRef[], reference: Readonly<Record<string, number>>, scores: Readonly<Record<string, number>>): Pick<BaselineRow, 'normalized' | 'meanNormalized'> {
  const normalized: Record<string, number | null> = {};
  for (const t of tasks) {
    const s = scores[t.name]!;
    const ref = reference[t.name]!;
    // a reference of 0 (no model solves the task) normalises nothing: the task leaves the mean
    normalized[t.name] = !(ref > 0) || !(s > 0 || t.direction === 'maximize') ? null : t.direction === 'maximize' ? s / ref : ref / s;
  }
  const vals = Object.values(normalized).filter((v): v is number => v !== null);
  return { normalized, meanNormalized: vals.length ? vals.reduce((a, b) => a + b, 0) / vals.length : 0 };
}

/** The report as an aligned text table. */
export function formatBaselines(r: BaselineReport): string {
  const head = ['model', ...r.tasks.map((t) => `${t.name} ${t.metric}`), 'mean normalised'];
  const body = r.rows.map((row) => [row.label, ...r.tasks.map((t) => fmt(row.scores[t.name]!, t.metric)), row.meanNormalized.toFixed(4)]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [
    `baselines of zoo '${r.zoo}' (${r.dir}), ${r.split} split, backend ${r.backend}, ${r.seconds.toFixed(1)} s`,
    line(head),
    line(widths.map((w) => '-'.repeat(w))),
    ...body.map(line),
    `normalised: score / reference score on the same task (${r.tasks.map((t) => `${t.name}: ${t.reference}`).join('; ')}); inverted for metrics to minimise`,
  ].join('\n');
}

function fmt(v: number, metric: string): string {
  return /accuracy|exact|acc/.test(metric) ? `${(100 * v).toFixed(2)}%` : v.toFixed(4);
}
