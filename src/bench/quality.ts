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
import { RunStore, isFullFidelity, type CandidateRow } from '../store/index.ts';
import { normalizeScores, referenceScores, runBaselines, type BaselineReport } from '../zoo/baselines.ts';
import type { ZooManifest } from '../zoo/build.ts';
import { zooBuilder } from '../zoo/index.ts';

export interface QualityArm {
  id: string;
  label: string;
  optimizer: { id: string; options: Record<string, unknown> };
  init: SearchSpace['init'];
  /** Multi-fidelity evaluation (the space's `fidelity`). */
  fidelity?: boolean;
  /** The gradient stage (the space's `refine`). */
  refine?: boolean;
}

const CMAES = { id: 'cmaes', options: { sigma0: 0.2 } };

export const QUALITY_ARMS: readonly QualityArm[] = [
  { id: 'random', label: 'random search', optimizer: { id: 'random', options: {} }, init: 'center' },
  { id: 'cmaes-center', label: 'CMA-ES from the centre', optimizer: CMAES, init: 'center' },
  { id: 'cmaes-warm', label: 'CMA-ES warm-started', optimizer: CMAES, init: 'baselines' },
  { id: 'cmaes-warm-mf', label: 'CMA-ES warm, multi-fidelity', optimizer: CMAES, init: 'baselines', fidelity: true },
  { id: 'cmaes-warm-refine', label: 'CMA-ES warm, gradient stage', optimizer: CMAES, init: 'baselines', refine: true },
  { id: 'full', label: 'warm + multi-fidelity + gradient', optimizer: CMAES, init: 'baselines', fidelity: true, refine: true },
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
  /** The candidate chosen on validation within the budget (null: none succeeded). */
  candidate: number | null;
  validation: number | null;
  test: number | null;
  testSE: number | null;
  /** Full-set-equivalent evaluations spent up to the chosen prefix. */
  cost: number;
  /** Items scored (all evaluators, all candidates of the prefix). */
  itemEvaluations: number;
  /** Cost at which a full-fidelity candidate first reached the best fixed recipe's validation score (null: never within the budget). */
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

/** A candidate's share of the items it was scored on (multi-fidelity), 1 when unrecorded; 0 for a reused score. */
function fidelityOf(c: CandidateRow): number {
  return c.fidelity ?? 1;
}

export async function runQualityBench(o: QualityOptions): Promise<QualityReport> {
  const started = performance.now();
  const log = o.log ?? (() => {});
  const zooDir = resolve(o.zooDir ?? join('runs', 'zoo', o.zoo));
  if (!existsSync(join(zooDir, 'zoo.json'))) {
    log(`building the ${o.zoo} zoo in ${zooDir} ...`);
    await zooBuilder(o.zoo).build(zooDir, { seed: 0, small: false, ...(o.dataRoot ? { dataRoot: o.dataRoot } : {}) });
  }
  const zoo = JSON.parse(readFileSync(join(zooDir, 'zoo.json'), 'utf8')) as ZooManifest;
  const spacePath = resolve(o.space ?? fileURLToPath(new URL(`../../search-spaces/${o.zoo}-ps.yaml`, import.meta.url)));
  const space = loadSearchSpace(spacePath);
  if (!space.ps) throw new InputError('E_BENCH_SPACE', `${spacePath} has no ps section; bench quality compares parameter-space searches`);
  const arms = o.arms ? o.arms.map((id) => {
    const a = QUALITY_ARMS.find((x) => x.id === id);
    if (!a) throw new InputError('E_BAD_FLAG', `--arms: no arm '${id}'; the arms are ${QUALITY_ARMS.map((x) => x.id).join(', ')}`);
    return a;
  }) : [...QUALITY_ARMS];
  const budgets = [...o.budgets].sort((a, b) => a - b);
  const maxBudget = budgets[budgets.length - 1]!;
  const refine = o.refine ?? { steps: 10, lr: 0.02, batch: 512 };

  log('scoring the fixed recipes on the validation and test splits ...');
  const val = await runBaselines(zooDir, { split: 'validation' });
  const test = await runBaselines(zooDir, { split: 'test' });
  const refVal = referenceScores(val.tasks, val.rows);
  const refTest = referenceScores(test.tasks, test.rows);
  const fixedVal = val.rows.filter((r) => r.kind === 'merge').sort((a, b) => b.meanNormalized - a.meanNormalized)[0]!;
  const fixedTest = test.rows.find((r) => r.label === fixedVal.label)!;

  // the items of each split, from one scoring of the base (every model is scored on the same items)
  const base: Recipe = { version: 1, method: 'passthrough', sources: [{ model: join(zooDir, zoo.base) }], seed: 0 };
  const testItems = (await scoreRecipeOnZooItems(zooDir, base, 'test')).samples;
  const valItems = (await scoreRecipeOnZooItems(zooDir, base, 'validation')).samples;
  const fullItems = Object.values(valItems).reduce((a, b) => a + b, 0);
  const stepCost = 1 + (3 * Object.values(valItems).reduce((a, n) => a + Math.min(refine.batch, n), 0)) / fullItems;

  const popsize = (arms.find((a) => a.refine)?.optimizer.options.popsize as number | undefined) ?? defaultPopsize(psDimension(space, spacePath));
  const root = mkdtempSync(join(tmpdir(), 'evomerge-bench-quality-'));
  const testCache = new Map<string, { test: number; se: number }>();
  const testOf = async (c: CandidateRow) => {
    let hit = testCache.get(c.recipeHash);
    if (!hit) {
      const r = await scoreRecipeOnZooItems(zooDir, c.recipe as Recipe, 'test');
      hit = { test: normalizeScores(test.tasks, refTest, r.scores).meanNormalized, se: normalisedAccuracySE(r.scores, r.samples, refTest) };
      testCache.set(c.recipeHash, hit);
    }
    return hit;
  };
  const cells: QualityCell[] = [];
  try {
    for (const arm of arms) {
      for (const seed of o.seeds) {
        // the gradient stage's search gets what its steps leave, in whole CMA-ES generations: the
        // loop completes the generation that crosses its budget, which would spend more than that
        const runs = arm.refine ? budgets.map((b) => ({ budgets: [b], ps: Math.floor((b - refine.steps * stepCost) / popsize) * popsize })) : [{ budgets, ps: maxBudget }];
        for (const run of runs) {
          if (run.ps < 1) {
            log(`${arm.id}: budget ${run.budgets[0]} leaves no CMA-ES generation (${popsize} candidates) for the search after ${refine.steps} gradient steps of ${stepCost.toFixed(2)} evaluations each; skipped`);
            continue;
          }
          const variant: Record<string, unknown> = {
            ...space, name: 'quality', zoo: zooDir, seed, init: arm.init, optimizer: arm.optimizer, workers: o.workers ?? space.workers,
            budget: { evaluations: run.ps },
            evaluators: zoo.tasks.map((t) => ({ task: t.name, weight: 1 / (zoo.tasks.length * refVal[t.name]!) })),
          };
          delete variant.refine;
          delete variant.fidelity;
          if (arm.refine) variant.refine = { steps: refine.steps, lr: refine.lr, loss: 'supervised', batch: refine.batch };
          if (arm.fidelity) variant.fidelity = o.fidelity ?? { rungs: [0.1, 0.3, 1] };
          const dir = join(root, `${arm.id}-s${seed}-b${run.ps}`);
          const file = join(root, `${arm.id}-s${seed}-b${run.ps}.yaml`);
          writeFileSync(file, toYaml(variant));
          log(`${arm.id}, seed ${seed}: search of ${run.ps} evaluations${arm.refine ? ` + ${refine.steps} gradient steps` : ''} ...`);
          await startSearch(file, { runtime: { local: localRunner, gradient: gradientStage }, dbPath: join(dir, 'run.sqlite'), runName: 'quality' });
          const store = RunStore.open(join(dir, 'run.sqlite'), { readonly: true });
          let rows: CandidateRow[];
          try {
            rows = store.candidates(store.run('quality')!.id);
          } finally {
            store.close();
          }
          const costOf = (c: CandidateRow) => (c.reusedFrom !== null ? 0 : c.operator === 'gradient' ? stepCost : fidelityOf(c));
          const itemsOf = (c: CandidateRow) => {
            // a gradient step's items: its scoring's and its batch's forward and backward passes
            return c.operator === 'gradient' || c.itemEvals === null ? Math.round(costOf(c) * fullItems) : c.itemEvals;
          };
          for (const budget of run.budgets) {
            // the gradient stage's run is read whole: its budget was split before it started
            const p = readPrefix(rows, arm.refine ? Infinity : budget, costOf, isFullFidelity, fixedVal.meanNormalized);
            const t = p.best ? await testOf(p.best) : null;
            cells.push({
              arm: arm.id, budget, seed, candidate: p.best?.id ?? null, validation: p.best?.fitness ?? null,
              test: t?.test ?? null, testSE: t?.se ?? null, cost: p.cost, itemEvaluations: p.used.reduce((a, c) => a + itemsOf(c), 0), reachedFixedAt: p.reachedAt,
            });
            log(`  budget ${budget}: validation ${p.best?.fitness?.toFixed(4) ?? '-'}, test ${t?.test.toFixed(4) ?? '-'} (fixed ${fixedTest.meanNormalized.toFixed(4)}), cost ${p.cost.toFixed(1)}`);
          }
          rmSync(dir, { recursive: true, force: true });
        }
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return {
    zoo: o.zoo, zooDir, space: spacePath, budgets, seeds: o.seeds,
    fixed: { label: fixedVal.label, validation: fixedVal.meanNormalized, test: fixedTest.meanNormalized, testSE: normalisedAccuracySE(fixedTest.scores, testItems, refTest) },
    arms: arms.map((a) => ({ id: a.id, label: a.label })), cells, seconds: (performance.now() - started) / 1000,
  };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** The report as text: one row per arm and budget, means over seeds. */
export function formatQuality(r: QualityReport): string {
  const lines = [
    `bench quality on zoo '${r.zoo}' (${r.zooDir}), space ${r.space}, seeds ${r.seeds.join(',')}, ${r.seconds.toFixed(0)} s`,
    `best fixed recipe on validation: ${r.fixed.label}: validation ${r.fixed.validation.toFixed(4)}, test ${r.fixed.test.toFixed(4)} +- ${r.fixed.testSE.toFixed(4)} (mean normalised accuracy, SE from the test split's size)`,
    `${'arm'.padEnd(20)} ${'budget'.padStart(6)} ${'validation'.padStart(10)} ${'test'.padStart(8)} ${'+-SE'.padStart(7)} ${'vs fixed (points)'.padStart(18)} ${'items scored'.padStart(13)} ${'reached fixed at'.padStart(17)}`,
  ];
  for (const arm of r.arms) {
    for (const budget of r.budgets) {
      const cs = r.cells.filter((c) => c.arm === arm.id && c.budget === budget && c.test !== null);
      if (cs.length === 0) continue;
      const t = mean(cs.map((c) => c.test!));
      const reached = cs.map((c) => c.reachedFixedAt);
      lines.push([
        arm.id.padEnd(20), String(budget).padStart(6), mean(cs.map((c) => c.validation!)).toFixed(4).padStart(10), t.toFixed(4).padStart(8),
        mean(cs.map((c) => c.testSE!)).toFixed(4).padStart(7), (100 * (t - r.fixed.test)).toFixed(2).padStart(18),
        mean(cs.map((c) => c.itemEvaluations)).toFixed(0).padStart(13),
        (reached.every((x) => x !== null) ? mean(reached as number[]).toFixed(1) : `${reached.filter((x) => x !== null).length}/${reached.length} seeds`).padStart(17),
      ].join(' '));
    }
  }
  // the issue's two goals, where the arms ran
  const cell = (arm: string, budget: number) => {
    const cs = r.cells.filter((c) => c.arm === arm && c.budget === budget && c.test !== null);
    return cs.length === 0 ? null : { test: mean(cs.map((c) => c.test!)), se: mean(cs.map((c) => c.testSE!)), items: mean(cs.map((c) => c.itemEvaluations)) };
  };
  const full300 = cell('full', 300);
  if (full300) {
    const gain = 100 * (full300.test - r.fixed.test);
    lines.push(`goal, the full pipeline beats the best fixed recipe by >= 3 points within 300 evaluations: ${gain.toFixed(2)} points: ${gain >= 3 ? 'met' : 'not met'}`);
  }
  for (const [small, large] of r.budgets.flatMap((b, i) => r.budgets.slice(i + 1).map((c) => [b, c] as const))) {
    const mf = cell('cmaes-warm-mf', small);
    const full = cell('cmaes-warm', large);
    if (!mf || !full || small * 3 > large * 1.0001 || small * 4 < large) continue;
    lines.push(`goal, multi-fidelity reaches full evaluation's test score with <= 1/3 of its item-evaluations: cmaes-warm-mf at ${small} ${mf.test.toFixed(4)} with ${(mf.items / full.items).toFixed(3)} of the items of cmaes-warm at ${large} ${full.test.toFixed(4)}: ${mf.test >= full.test - 1e-12 ? 'met' : full.test - mf.test < full.se ? `within one standard error (${(100 * (mf.test - full.test)).toFixed(2)} points, SE ${(100 * full.se).toFixed(2)})` : `not met (${(100 * (mf.test - full.test)).toFixed(2)} points)`}`);
  }
  lines.push('test: mean normalised test accuracy (score / the specialist\'s on its own task, averaged over tasks) of the candidate best on validation within the budget, mean over seeds; budgets and "reached fixed at" in full-set-equivalent evaluations');
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
