/**
 * `evomerge bench quality`: how far an evolved merge gets beyond the best fixed recipe, and for
 * how many evaluations (the figures README's Search quality quotes). On an image zoo (vision-plus: MNIST,
 * Fashion-MNIST and scikit-learn's digits, real and conflicting tasks; or vision), with the same
 * seeds, it runs each arm (random search, CMA-ES from the centre, CMA-ES warm-started from the
 * fixed recipes, the latter with multi-fidelity evaluation and with the gradient stage, and all
 * of them together) and reports, at equal budgets of full-set-equivalent evaluations, the mean
 * normalised TEST accuracy of the candidate chosen on VALIDATION, with the standard error that
 * the test split's size implies, and the evaluations each arm needed to reach the best fixed
 * recipe's validation score.
 *
 * The search is tuned on the mean normalised validation accuracy: each task's evaluator weighs
 * 1 / (tasks x its specialist's validation accuracy), so the fitness is that mean exactly
 * (normalisation as in src/zoo/baselines.ts). An arm without the gradient stage runs once to the
 * largest budget and is read at each budget as the prefix of its candidates in proposal order
 * (the optimizer does not know the budget, so the prefix is the run a smaller budget makes); an
 * arm with the gradient stage runs once per budget, its search given what the steps leave.
 *
 * Costs, in full-set-equivalent evaluations: a candidate costs the share of the items it was
 * scored on (1 at full fidelity, 0 when its score was reused from an identical recipe); a
 * gradient step costs its scoring (1) plus forward and backward passes over its batch, counted
 * as 3 forward passes over the batch's share of the items (the usual 1 forward + 2 backward
 * estimate of a backward pass's cost).
 *
 * Standard error of a mean normalised accuracy from the split size: the tasks' test sets are
 * independent, accuracy on n items has variance p (1 - p) / n (binomial), and normalising divides
 * by the reference r_t, so SE = sqrt(sum_t p_t (1 - p_t) / (n_t r_t^2)) / T.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { stringify as toYaml } from 'yaml';
import { InputError } from '../errors.ts';
import type { Recipe } from '../recipe/index.ts';
import { defaultPopsize } from '../optim/index.ts';
import { localRunner } from '../pool/index.ts';
import { gradientStage } from '../refine/index.ts';
import { startSearch } from '../search/engine.ts';
import { psDimension } from '../search/stages.ts';
import { scoreRecipeOnZooItems } from '../zoo/score.ts';
import { loadSearchSpace, type SearchSpace } from '../space/index.ts';
import { RunStore, isFullFidelity, type CandidateRow, type MetricValue } from '../store/index.ts';
import { binomialSE } from '../eval/index.ts';
import { choose, type ChoiceRule, type PoolEntry, type ScorePart } from '../search/noise.ts';
import { partsOf, stagePool } from '../search/select.ts';
import { normalizeScores, referenceScores, runBaselines, type BaselineReport } from '../zoo/baselines.ts';
import type { ZooManifest } from '../zoo/build.ts';
import { zooBuilder } from '../zoo/index.ts';

export interface QualityArm {
  id: string;
  label: string;
  optimizer: { id: string; options: Record<string, unknown> };
  init: SearchSpace['init'];
  /** Multi-fidelity evaluation (the space's `fidelity`): true for the bench's rungs, or the arm's own. */
  fidelity?: boolean | number[];
  /** The gradient stage (the space's `refine`). */
  refine?: boolean;
  /**
   * The zoo split the search tunes on (default validation). On another split the arm's budget
   * is scaled to the same item-evaluations as a validation search of that budget (a full
   * evaluation there scores more items), so arms compare at equal cost.
   */
  split?: string;
  /**
   * How the final candidate is chosen (the space's `select`): the top `top` candidates of each
   * stage on the search's fitness, scored on `split` (absent: the search's own scores) and chosen
   * by `rule`. Absent: the search's maximum.
   */
  select?: { split?: string; top: number; rule: ChoiceRule; z?: number };
}

const CMAES = { id: 'cmaes', options: { sigma0: 0.2 } };
/** The large split's rungs: the first scores about as many items as a validation evaluation. */
const LARGE_RUNGS = [0.25, 1];

export const QUALITY_ARMS: readonly QualityArm[] = [
  { id: 'random', label: 'random search', optimizer: { id: 'random', options: {} }, init: 'center' },
  { id: 'cmaes-center', label: 'CMA-ES from the centre', optimizer: CMAES, init: 'center' },
  { id: 'cmaes-warm', label: 'CMA-ES warm-started', optimizer: CMAES, init: 'baselines' },
  { id: 'cmaes-warm-mf', label: 'CMA-ES warm, multi-fidelity', optimizer: CMAES, init: 'baselines', fidelity: true },
  { id: 'cmaes-warm-refine', label: 'CMA-ES warm, gradient stage', optimizer: CMAES, init: 'baselines', refine: true },
  { id: 'full', label: 'warm + multi-fidelity + gradient', optimizer: CMAES, init: 'baselines', fidelity: true, refine: true },
  { id: 'cmaes-warm-select', label: 'warm, top 10 selected on the large split', optimizer: CMAES, init: 'baselines', select: { split: 'large', top: 10, rule: 'max' } },
  { id: 'cmaes-warm-lcb', label: 'warm, top 10 chosen by lower confidence bound', optimizer: CMAES, init: 'baselines', select: { top: 10, rule: 'lcb', z: 1 } },
  { id: 'cmaes-warm-shrink', label: 'warm, top 10 chosen by James-Stein shrinkage', optimizer: CMAES, init: 'baselines', select: { top: 10, rule: 'shrink' } },
  { id: 'large-mf-select', label: 'search on the large split (multi-fidelity), selected on validation', optimizer: CMAES, init: 'baselines', split: 'large', fidelity: LARGE_RUNGS, select: { split: 'validation', top: 10, rule: 'max' } },
  { id: 'large-refine-select', label: 'large split, gradient stage, selected on validation', optimizer: CMAES, init: 'baselines', split: 'large', refine: true, select: { split: 'validation', top: 10, rule: 'max' } },
];

export interface QualityOptions {
  zoo: string;
  zooDir?: string;
  /** The search space whose PS section every arm uses (default: search-spaces/<zoo>-ps.yaml). */
  space?: string;
  budgets: number[];
  seeds: number[];
  arms?: string[];
  workers?: number;
  /** Where Debian's data packages are (vision-plus), as for `zoo build --data-root`. */
  dataRoot?: string;
  refine?: { steps: number; lr: number; batch: number };
  /** The space's multi-fidelity setting for the arms that use it. */
  fidelity?: Record<string, unknown>;
  log?: (line: string) => void;
}

export interface QualityCell {
  arm: string;
  budget: number;
  seed: number;
  /** The candidate chosen within the budget (null: none succeeded). */
  candidate: number | null;
  /** The chosen candidate's mean normalised accuracy on the validation split (what the search tuned on, unless the arm searched another split). */
  validation: number | null;
  test: number | null;
  testSE: number | null;
  /** validation - the best fixed recipe's validation score. */
  validationGain: number | null;
  /** test - the best fixed recipe's test score. */
  testGain: number | null;
  /** validationGain - testGain: how much the validation score overstates the gain on unseen data. */
  optimism: number | null;
  /** The search's best within the budget (its raw maximum), when the arm chose another candidate. */
  searchBest: number | null;
  /** Full-set-equivalent evaluations of the arm's search split spent up to the chosen prefix. */
  cost: number;
  /** Items scored (all evaluators, all candidates of the prefix, and the selection's scoring of its pool). */
  itemEvaluations: number;
  /** Cost at which a full-fidelity candidate first reached the best fixed recipe's validation score (null: never within the budget; arms searching another split: not measured). */
  reachedFixedAt: number | null;
}

export interface QualityReport {
  zoo: string;
  zooDir: string;
  space: string;
  budgets: number[];
  seeds: number[];
  fixed: { label: string; validation: number; test: number; testSE: number };
  arms: Array<{ id: string; label: string }>;
  cells: QualityCell[];
  seconds: number;
}

/** SE of a mean normalised accuracy from the split sizes (see the module comment). */
export function normalisedAccuracySE(scores: Readonly<Record<string, number>>, samples: Readonly<Record<string, number>>, reference: Readonly<Record<string, number>>): number {
  const tasks = Object.keys(reference);
  let v = 0;
  for (const t of tasks) {
    const p = scores[t]!;
    v += (p * (1 - p)) / (samples[t]! * reference[t]! ** 2);
  }
  return Math.sqrt(v) / tasks.length;
}

/**
 * The prefix a budget allows: candidates in proposal (id) order while the running cost stays
 * within the budget; the best full-fidelity success on validation; and when the running cost
 * first met a bar.
 */
export function readPrefix(rows: readonly CandidateRow[], budget: number, costOf: (c: CandidateRow) => number, fullFidelity: (c: CandidateRow) => boolean, bar: number): { best: CandidateRow | null; cost: number; reachedAt: number | null; used: CandidateRow[] } {
  let cost = 0;
  let best: CandidateRow | null = null;
  let reachedAt: number | null = null;
  const used: CandidateRow[] = [];
  for (const c of [...rows].sort((a, b) => a.id - b.id)) {
    const next = cost + costOf(c);
    if (next > budget + 1e-9) break;
    cost = next;
    used.push(c);
    if (c.state !== 'done' || c.fitness === null || !fullFidelity(c)) continue;
    if (best === null || c.fitness > best.fitness!) best = c;
    if (reachedAt === null && c.fitness >= bar - 1e-12) reachedAt = cost;
  }
  return { best, cost, reachedAt, used };
}

/**
 * The candidate an arm's selection chooses among a prefix (src/search/select.ts, as the engine
 * chooses at the end of a run of that budget): the top `top` of each stage on the search's
 * fitness, ranked by the rule over `partsOf` (the selection split's scores, or the search's
 * own). Null for an empty pool.
 */
export async function chooseInPrefix(used: readonly CandidateRow[], select: NonNullable<QualityArm['select']>, partsOf: (c: CandidateRow) => Promise<ScorePart[] | null>): Promise<{ chosen: CandidateRow; pool: CandidateRow[] } | null> {
  const stages = [...new Set(used.map((c) => c.stage))].sort((a, b) => a - b);
  const pool = stages.flatMap((s) => stagePool(used, s, select.top));
  const entries: Array<PoolEntry & { row: CandidateRow }> = [];
  for (const c of pool) {
    const parts = await partsOf(c);
    if (parts) entries.push({ id: c.id, parts, searchFitness: c.fitness!, row: c });
  }
  const i = choose(entries, select.rule, select.z ?? 1);
  return i < 0 ? null : { chosen: entries[i]!.row, pool };
}

/** A candidate's share of the items it was scored on (multi-fidelity), 1 when unrecorded; 0 for a reused score. */
function fidelityOf(c: CandidateRow): number {
  return c.fidelity ?? 1;
}

/** The evaluator id a zoo task has in a run that searches `split` (src/search/resolve.ts). */
const taskId = (task: string, split: string) => (split === 'validation' ? task : `${task}.${split}`);

export async function runQualityBench(o: QualityOptions): Promise<QualityReport> {
  const started = performance.now();
  const log = o.log ?? (() => {});
  const zooDir = resolve(o.zooDir ?? join('runs', 'zoo', o.zoo));
  if (!existsSync(join(zooDir, 'zoo.json'))) {
    log(`building the ${o.zoo} zoo in ${zooDir} ...`);
    await zooBuilder(o.zoo).build(zooDir, { seed: 0, small: false, ...(o.dataRoot ? { dataRoot: o.dataRoot } : {}) });
  }
  const spacePath = resolve(o.space ?? fileURLToPath(new URL(`../../search-spaces/${o.zoo}-ps.yaml`, import.meta.url)));
  const space = loadSearchSpace(spacePath);
  if (!space.ps) throw new InputError('E_BENCH_SPACE', `${spacePath} has no ps section; bench quality compares parameter-space searches`);
  const arms = o.arms ? o.arms.map((id) => {
    const a = QUALITY_ARMS.find((x) => x.id === id);
    if (!a) throw new InputError('E_BAD_FLAG', `--arms: no arm '${id}'; the arms are ${QUALITY_ARMS.map((x) => x.id).join(', ')}`);
    return a;
  }) : [...QUALITY_ARMS];
  let zoo = JSON.parse(readFileSync(join(zooDir, 'zoo.json'), 'utf8')) as ZooManifest;
  const splitsWanted = [...new Set(arms.flatMap((a) => [a.split, a.select?.split]).filter((x): x is string => !!x && x !== 'validation'))];
  if (splitsWanted.some((sp) => zoo.tasks.some((t) => !t.evaluators[sp]))) {
    // a zoo built before its extra splits: its next build adds them, checkpoints untouched (src/zoo/vision.ts)
    log(`adding the ${splitsWanted.join(', ')} split(s) to the zoo in ${zooDir} ...`);
    await zooBuilder(o.zoo).build(zooDir, { seed: zoo.seed, small: zoo.size === 'small', ...(o.dataRoot ? { dataRoot: o.dataRoot } : {}) });
    zoo = JSON.parse(readFileSync(join(zooDir, 'zoo.json'), 'utf8')) as ZooManifest;
  }
  const budgets = [...o.budgets].sort((a, b) => a - b);
  const maxBudget = budgets[budgets.length - 1]!;
  const refine = o.refine ?? { steps: 10, lr: 0.02, batch: 512 };

  log('scoring the fixed recipes on the validation and test splits ...');
  const val = await runBaselines(zooDir, { split: 'validation' });
  const test = await runBaselines(zooDir, { split: 'test' });
  const fixedVal = val.rows.filter((r) => r.kind === 'merge').sort((a, b) => b.meanNormalized - a.meanNormalized)[0]!;
  const fixedTest = test.rows.find((r) => r.label === fixedVal.label)!;

  // every split's scores of a recipe, cached by split and recipe hash
  const scoreCache = new Map<string, { scores: Record<string, number>; samples: Record<string, number> }>();
  const scoreOn = async (recipe: Recipe, hash: string, split: string) => {
    const key = `${split}\u0000${hash}`;
    let hit = scoreCache.get(key);
    if (!hit) {
      hit = await scoreRecipeOnZooItems(zooDir, recipe, split);
      scoreCache.set(key, hit);
    }
    return hit;
  };
  // the references of each split: each specialist's score on its own task (src/zoo/baselines.ts)
  const refs: Record<string, Record<string, number>> = { validation: referenceScores(val.tasks, val.rows), test: referenceScores(test.tasks, test.rows) };
  const splitItems: Record<string, Record<string, number>> = {};
  const base: Recipe = { version: 1, method: 'passthrough', sources: [{ model: join(zooDir, zoo.base) }], seed: 0 };
  for (const split of ['validation', 'test', ...splitsWanted]) {
    // the items of each split, from one scoring of the base (every model is scored on the same items)
    splitItems[split] = (await scoreOn(base, 'base', split)).samples;
    if (refs[split]) continue;
    refs[split] = {};
    for (const m of zoo.models) refs[split]![m.task] = (await scoreOn({ version: 1, method: 'passthrough', sources: [{ model: join(zooDir, m.path) }], seed: 0 }, `specialist ${m.name}`, split)).scores[m.task]!;
  }
  const itemsIn = (split: string) => Object.values(splitItems[split]!).reduce((a, b) => a + b, 0);
  const valItems = itemsIn('validation');
  const normalised = (split: string, scores: Record<string, number>) => normalizeScores(test.tasks, refs[split]!, scores).meanNormalized;
  const testOf = async (c: CandidateRow) => {
    const r = await scoreOn(c.recipe as Recipe, c.recipeHash, 'test');
    return { test: normalised('test', r.scores), se: normalisedAccuracySE(r.scores, r.samples, refs.test!) };
  };
  /** A candidate's parts on a split the bench scores: per task its accuracy, weight 1 / (T ref) and binomial standard error. */
  const splitParts = async (c: CandidateRow, split: string): Promise<ScorePart[]> => {
    const r = await scoreOn(c.recipe as Recipe, c.recipeHash, split);
    return zoo.tasks.map((t) => ({ id: t.name, weight: 1 / (zoo.tasks.length * refs[split]![t.name]!), fitness: r.scores[t.name]!, se: binomialSE(r.scores[t.name]!, r.samples[t.name]!) ?? null }));
  };

  const popsize = (arms.find((a) => a.refine)?.optimizer.options.popsize as number | undefined) ?? defaultPopsize(psDimension(space, spacePath));
  const root = mkdtempSync(join(tmpdir(), 'evomerge-bench-quality-'));
  const cells: QualityCell[] = [];
  /** Arms that differ only in their selection share one search per seed and budget. */
  const searches = new Map<string, { rows: CandidateRow[]; metrics: Map<number, MetricValue[]> }>();
  try {
    for (const arm of arms) {
      const split = arm.split ?? 'validation';
      const armItems = itemsIn(split);
      // a budget in validation evaluations, as the arm's full-set equivalents: the same items
      const scale = split === 'validation' ? 1 : valItems / armItems;
      const stepCost = 1 + (3 * Object.values(splitItems[split]!).reduce((a, n) => a + Math.min(refine.batch, n), 0)) / armItems;
      for (const seed of o.seeds) {
        // the gradient stage's search gets what its steps leave, in whole CMA-ES generations: the
        // loop completes the generation that crosses its budget, which would spend more than that
        const runs = arm.refine ? budgets.map((b) => ({ budgets: [b], ps: Math.floor((b * scale - refine.steps * stepCost) / popsize) * popsize })) : [{ budgets, ps: Math.ceil(maxBudget * scale) }];
        for (const run of runs) {
          if (run.ps < 1) {
            log(`${arm.id}: budget ${run.budgets[0]} leaves no CMA-ES generation (${popsize} candidates) for the search after ${refine.steps} gradient steps of ${stepCost.toFixed(2)} evaluations each; skipped`);
            continue;
          }
          const variant: Record<string, unknown> = {
            ...space, name: 'quality', zoo: zooDir, seed, init: arm.init, optimizer: arm.optimizer, workers: o.workers ?? space.workers,
            budget: { evaluations: run.ps },
            evaluators: zoo.tasks.map((t) => ({ task: t.name, ...(split !== 'validation' ? { split } : {}), weight: 1 / (zoo.tasks.length * refs[split]![t.name]!) })),
          };
          delete variant.refine;
          delete variant.fidelity;
          delete variant.select;
          if (arm.refine) variant.refine = { steps: refine.steps, lr: refine.lr, loss: 'supervised', batch: refine.batch };
          if (arm.fidelity) variant.fidelity = Array.isArray(arm.fidelity) ? { rungs: arm.fidelity } : o.fidelity ?? { rungs: [0.1, 0.3, 1] };
          const key = JSON.stringify(variant);
          let searched = searches.get(key);
          if (!searched) {
            const name = `s${searches.size}`;
            const dir = join(root, name);
            const file = join(root, `${name}.yaml`);
            writeFileSync(file, toYaml(variant));
            log(`${arm.id}, seed ${seed}: search of ${run.ps} evaluations${split !== 'validation' ? ` on the ${split} split` : ''}${arm.refine ? ` + ${refine.steps} gradient steps` : ''} ...`);
            await startSearch(file, { runtime: { local: localRunner, gradient: gradientStage }, dbPath: join(dir, 'run.sqlite'), runName: 'quality' });
            const store = RunStore.open(join(dir, 'run.sqlite'), { readonly: true });
            try {
              const rows = store.candidates(store.run('quality')!.id);
              searched = { rows, metrics: new Map(rows.map((c) => [c.id, store.metrics(c.id)])) };
            } finally {
              store.close();
            }
            searches.set(key, searched);
            rmSync(dir, { recursive: true, force: true });
          } else log(`${arm.id}, seed ${seed}: the search of ${run.ps} evaluations already run for another arm`);
          const { rows, metrics } = searched;
          const costOf = (c: CandidateRow) => (c.reusedFrom !== null ? 0 : c.operator === 'gradient' ? stepCost : fidelityOf(c));
          const itemsOf = (c: CandidateRow) => {
            // a gradient step's items: its scoring's and its batch's forward and backward passes
            return c.operator === 'gradient' || c.itemEvals === null ? Math.round(costOf(c) * armItems) : c.itemEvals;
          };
          const searchSpecs = zoo.tasks.map((t) => ({ id: taskId(t.name, split), manifest: '', weight: 1 / (zoo.tasks.length * refs[split]![t.name]!) }));
          for (const budget of run.budgets) {
            // the gradient stage's run is read whole: its budget was split before it started
            const p = readPrefix(rows, arm.refine ? Infinity : budget * scale, costOf, isFullFidelity, split === 'validation' ? fixedVal.meanNormalized : Infinity);
            let chosen = p.best;
            let selectionItems = 0;
            if (arm.select && p.best) {
              const sel = arm.select;
              const picked = await chooseInPrefix(p.used, sel, async (c) => (sel.split ? splitParts(c, sel.split) : searchPartsOf(metrics.get(c.id) ?? [], searchSpecs)));
              chosen = picked?.chosen ?? p.best;
              if (sel.split) selectionItems = (picked?.pool.length ?? 0) * itemsIn(sel.split);
            }
            const t = chosen ? await testOf(chosen) : null;
            const v = chosen ? (split === 'validation' ? chosen.fitness! : normalised('validation', (await scoreOn(chosen.recipe as Recipe, chosen.recipeHash, 'validation')).scores)) : null;
            const vg = v === null ? null : v - fixedVal.meanNormalized;
            const tg = t === null ? null : t.test - fixedTest.meanNormalized;
            cells.push({
              arm: arm.id, budget, seed, candidate: chosen?.id ?? null, validation: v, test: t?.test ?? null, testSE: t?.se ?? null,
              validationGain: vg, testGain: tg, optimism: vg !== null && tg !== null ? vg - tg : null, searchBest: chosen && p.best && chosen.id !== p.best.id ? p.best.id : null,
              cost: p.cost, itemEvaluations: p.used.reduce((a, c) => a + itemsOf(c), 0) + selectionItems, reachedFixedAt: split === 'validation' ? p.reachedAt : null,
            });
            log(`  budget ${budget}: validation ${v?.toFixed(4) ?? '-'}, test ${t?.test.toFixed(4) ?? '-'} (fixed ${fixedTest.meanNormalized.toFixed(4)}), cost ${p.cost.toFixed(1)}${chosen && p.best && chosen.id !== p.best.id ? ` (chosen ${chosen.id}, the search's maximum ${p.best.id})` : ''}`);
          }
        }
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return {
    zoo: o.zoo, zooDir, space: spacePath, budgets, seeds: o.seeds,
    fixed: { label: fixedVal.label, validation: fixedVal.meanNormalized, test: fixedTest.meanNormalized, testSE: normalisedAccuracySE(fixedTest.scores, splitItems.test!, refs.test!) },
    arms: arms.map((a) => ({ id: a.id, label: a.label })), cells, seconds: (performance.now() - started) / 1000,
  };
}

/** A candidate's parts on the search's own evaluators, from its stored metrics (src/search/select.ts partsOf). */
function searchPartsOf(metrics: readonly MetricValue[], specs: ReadonlyArray<{ id: string; manifest: string; weight: number }>): ScorePart[] | null {
  return partsOf(metrics, specs);
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** An arm's cells at one budget, averaged over seeds (null: none succeeded). */
export function armMeans(r: QualityReport, arm: string, budget: number): { validation: number; test: number; se: number; validationGain: number; testGain: number; optimism: number; items: number; seeds: number } | null {
  const cs = r.cells.filter((c) => c.arm === arm && c.budget === budget && c.test !== null && c.validation !== null);
  if (cs.length === 0) return null;
  return {
    validation: mean(cs.map((c) => c.validation!)), test: mean(cs.map((c) => c.test!)), se: mean(cs.map((c) => c.testSE!)),
    validationGain: mean(cs.map((c) => c.validationGain!)), testGain: mean(cs.map((c) => c.testGain!)), optimism: mean(cs.map((c) => c.optimism!)),
    items: mean(cs.map((c) => c.itemEvaluations)), seeds: cs.length,
  };
}

/** The report as text: one row per arm and budget, means over seeds. */
export function formatQuality(r: QualityReport): string {
  const pts = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(2)}`;
  const lines = [
    `bench quality on zoo '${r.zoo}' (${r.zooDir}), space ${r.space}, seeds ${r.seeds.join(',')}, ${r.seconds.toFixed(0)} s`,
    `best fixed recipe on validation: ${r.fixed.label}: validation ${r.fixed.validation.toFixed(4)}, test ${r.fixed.test.toFixed(4)} +- ${r.fixed.testSE.toFixed(4)} (mean normalised accuracy, SE from the test split's size)`,
    `${'arm'.padEnd(20)} ${'budget'.padStart(6)} ${'validation'.padStart(10)} ${'test'.padStart(8)} ${'+-SE'.padStart(7)} ${'val gain'.padStart(9)} ${'test gain'.padStart(9)} ${'optimism'.padStart(9)} ${'items scored'.padStart(13)} ${'reached fixed at'.padStart(17)}`,
  ];
  for (const arm of r.arms) {
    for (const budget of r.budgets) {
      const m = armMeans(r, arm.id, budget);
      if (!m) continue;
      const reached = r.cells.filter((c) => c.arm === arm.id && c.budget === budget && c.test !== null).map((c) => c.reachedFixedAt);
      lines.push([
        arm.id.padEnd(20), String(budget).padStart(6), m.validation.toFixed(4).padStart(10), m.test.toFixed(4).padStart(8), m.se.toFixed(4).padStart(7),
        pts(m.validationGain).padStart(9), pts(m.testGain).padStart(9), pts(m.optimism).padStart(9), m.items.toFixed(0).padStart(13),
        (reached.every((x) => x !== null) ? mean(reached as number[]).toFixed(1) : reached.every((x) => x === null) ? '-' : `${reached.filter((x) => x !== null).length}/${reached.length} seeds`).padStart(17),
      ].join(' '));
    }
  }
  // the goals, where the arms ran
  const at300 = r.budgets.includes(300) ? r.arms.map((a) => ({ arm: a.id, m: armMeans(r, a.id, 300) })).filter((x): x is { arm: string; m: NonNullable<ReturnType<typeof armMeans>> } => x.m !== null) : [];
  if (at300.length) {
    const best = at300.sort((a, b) => b.m.testGain - a.m.testGain)[0]!;
    const ratio = best.m.validationGain > 0 ? best.m.testGain / best.m.validationGain : NaN;
    const met = best.m.testGain >= 0.035 && ratio >= 0.7;
    lines.push(`goal, the best arm at 300 gains >= 3.5 points on test with a test gain >= 70% of its validation gain: ${best.arm}, test ${pts(best.m.testGain)} points, validation ${pts(best.m.validationGain)} (test/validation ${Number.isFinite(ratio) ? `${(100 * ratio).toFixed(0)}%` : '-'}): ${met ? 'met' : 'not met'}`);
  }
  for (const [small, large] of r.budgets.flatMap((b, i) => r.budgets.slice(i + 1).map((c) => [b, c] as const))) {
    const mf = armMeans(r, 'cmaes-warm-mf', small);
    const full = armMeans(r, 'cmaes-warm', large);
    if (!mf || !full || small * 3 > large * 1.0001 || small * 4 < large) continue;
    lines.push(`goal, multi-fidelity reaches full evaluation's test score with <= 1/3 of its item-evaluations: cmaes-warm-mf at ${small} ${mf.test.toFixed(4)} with ${(mf.items / full.items).toFixed(3)} of the items of cmaes-warm at ${large} ${full.test.toFixed(4)}: ${mf.test >= full.test - 1e-12 ? 'met' : full.test - mf.test < full.se ? `within one standard error (${(100 * (mf.test - full.test)).toFixed(2)} points, SE ${(100 * full.se).toFixed(2)})` : `not met (${(100 * (mf.test - full.test)).toFixed(2)} points)`}`);
  }
  lines.push('validation, test: mean normalised accuracy (score / the specialist\'s on its own task, averaged over tasks) of the candidate each arm chooses within the budget, mean over seeds; gains in points against the best fixed recipe; optimism = validation gain - test gain; budgets in validation-equivalent evaluations (an arm searching another split spends the same item-evaluations); items scored include a selection\'s scoring of its pool');
  return lines.join('\n');
}

export function registerBench(bench: Command): void {
  bench
    .command('quality')
    .description('search quality: evolved merges against the best fixed recipe on test, per arm (random, CMA-ES centre/warm, multi-fidelity, gradient stage) at equal budgets')
    .option('--zoo <name>', 'image zoo: vision-plus or vision', 'vision-plus')
    .option('--zoo-dir <dir>', 'the zoo folder (default runs/zoo/<name>; built when absent)')
    .option('--space <file>', 'search space whose ps section the arms use (default search-spaces/<zoo>-ps.yaml)')
    .option('--budgets <list>', 'full-set-equivalent evaluations', '100,300,1000')
    .option('--seeds <list>', 'seeds, the same for every arm', '0,1,2')
    .option('--arms <list>', `arms to run (default all: ${QUALITY_ARMS.map((a) => a.id).join(',')})`)
    .option('--workers <n>', 'worker threads per search')
    .option('--refine-steps <n>', 'gradient steps of the arms with the gradient stage', '10')
    .option('--data-root <dir>', 'where Debian data packages are (vision-plus), as for zoo build')
    .option('--json', 'print one JSON object')
    .action(async (o: { zoo: string; zooDir?: string; space?: string; budgets: string; seeds: string; arms?: string; workers?: string; refineSteps: string; dataRoot?: string; json?: boolean }) => {
      const ints = (flag: string, text: string) => {
        const xs = text.split(',').map((x) => Number(x.trim()));
        if (xs.length === 0 || xs.some((x) => !Number.isInteger(x) || x < 0)) throw new InputError('E_BAD_FLAG', `${flag} must list non-negative integers, got '${text}'`);
        return xs;
      };
      const budgets = ints('--budgets', o.budgets);
      if (budgets.some((b) => b < 1)) throw new InputError('E_BAD_FLAG', `--budgets must be positive, got '${o.budgets}'`);
      const steps = Number(o.refineSteps);
      if (!Number.isInteger(steps) || steps < 1) throw new InputError('E_BAD_FLAG', `--refine-steps must be a positive integer, got '${o.refineSteps}'`);
      const r = await runQualityBench({
        zoo: o.zoo, zooDir: o.zooDir, space: o.space, budgets, seeds: ints('--seeds', o.seeds), arms: o.arms?.split(',').map((x) => x.trim()),
        workers: o.workers ? ints('--workers', o.workers)[0] : undefined, dataRoot: o.dataRoot, refine: { steps, lr: 0.02, batch: 512 },
        log: (l) => process.stderr.write(`${l}\n`),
      });
      process.stdout.write(o.json ? `${JSON.stringify(r)}\n` : `${formatQuality(r)}\n`);
    });
}

export type { BaselineReport };
