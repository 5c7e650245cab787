import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useBackend } from '../src/models/backend.ts';
import { ResidualMlp, parseResidualMlpConfig, residualMlpTensorShapes } from '../src/models/mlp.ts';
import { randomWeights, weightsFromMap } from '../src/models/weights.ts';
import { parseManifest } from '../src/eval/manifest.ts';
import { createEvaluator } from '../src/eval/evaluator.ts';
import type { EvalResult, Evaluator, PartialScore } from '../src/eval/types.ts';
import { addPartial, itemOrder, race, rungSizes, standardError, upperBound, type FidelityTask, type RacedEvaluator } from '../src/candidate/fidelity.ts';
import { runStage, type CandidateScore, type StageProblem, type TaskRunner } from '../src/search/loop.ts';
import { runStatus } from '../src/search/inspect.ts';
import { reportData } from '../src/report/index.ts';
import { RunStore } from '../src/store/index.ts';
import type { TaskOutcome } from '../src/pool/index.ts';
import { tempDir } from './helpers/tmp.ts';
import { idx } from './helpers/idx.ts';

const dir = tempDir();
let k = 0;


test('rung subsets are nested prefixes of one seeded order, the same in every worker, and partial sums over the rungs add up exactly to the full-set score', async () => {
  await useBackend('wasm');
  const tmp = mkdtempSync(join(tmpdir(), 'evomerge-fid-'));
  try {
    const n = 60;
    const pixels = Array.from({ length: n * 4 }, (_, i) => (i * 53) % 256);
    const c = parseResidualMlpConfig({ architectures: ['EvomergeResidualMLP'], input_size: 4, hidden_size: 8, num_blocks: 1, input_scale: 1 / 255, heads: [{ name: 'cls', num_classes: 3 }] });
    const model = ResidualMlp.load(c, weightsFromMap(randomWeights(residualMlpTensorShapes(c), 5, 1)));
    const preds = (await model.predict(Float32Array.from(pixels))).get('cls')!;
    const labels = Array.from({ length: n }, (_, i) => (i % 2 === 0 ? preds[i]! : (preds[i]! + 1) % 3));
    writeFileSync(join(tmp, 'x.idx'), idx(8, [n, 2, 2], pixels));
    writeFileSync(join(tmp, 'y.idx'), idx(8, [n], labels));
    const m = parseManifest({
      version: 1, kind: 'classification', family: 'residual-mlp', split: 'validation', per_class: true, batch_size: 16,
      data: { splits: { validation: { images: 'x.idx', labels: 'y.idx' } } }, metric: { name: 'accuracy', direction: 'maximize' },
    }, join(tmp, 'digits.yaml'));
    // two "workers": two evaluator instances of one manifest
    const [w1, w2] = [createEvaluator(m, { purpose: 'search' }), createEvaluator(m, { purpose: 'search' })];
    assert.equal(w1.itemCount!(), n);
    const order = itemOrder('digits', n);
    assert.deepEqual(itemOrder('digits', n), order, 'the same order in every worker and session');
    assert.deepEqual([...order].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i), 'a permutation of the items');
    assert.notDeepEqual(itemOrder('letters', n), order, 'another evaluator gets another order');
    const sizes = rungSizes([0.1, 0.3, 1], n);
    assert.deepEqual(sizes, [6, 18, 60]);
    let sum: PartialScore | null = null;
    let from = 0;
    for (const to of sizes) {
      const part = await w1.scoreItems!(model, { backend: null }, order.slice(from, to));
      assert.deepEqual(await w2.scoreItems!(model, { backend: null }, order.slice(from, to)), part, 'another worker scores the rung alike');
      sum = addPartial(sum, part);
      // each rung's items are the previous rung's and new ones
      assert.deepEqual(order.slice(0, to).slice(0, from), order.slice(0, from));
      from = to;
    }
    const full = await w1.evaluate(model, { backend: null });
    assert.equal(sum!.count, n);
    assert.deepEqual(w1.resultOf!(sum!), full, 'the sums over every rung are the full-set result, per class too');
    assert.equal(full.metrics.accuracy, labels.filter((y, i) => y === preds[i]).length / n);
    w1.dispose();
    w2.dispose();
    model.dispose();
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

/**
 * A stand-in evaluator over `values` (each item 0 or 1, indexed by item), placed so that the
 * k-th item of the evaluator's seeded order has value pattern[k]: rungs then see known prefixes.
 */
function patternEvaluator(id: string, pattern: readonly number[]): RacedEvaluator['ev'] & { scored: number } {
  const order = itemOrder(id, pattern.length);
  const values = new Array<number>(pattern.length);
  order.forEach((item, j) => { values[item] = pattern[j]!; });
  const ev = {
    scored: 0,
    itemCount: () => values.length,
    async scoreItems(_m: unknown, _c: unknown, indices: readonly number[]): Promise<PartialScore> {
      ev.scored += indices.length;
      const s = indices.reduce((a, i) => a + values[i]!, 0);
      return { count: indices.length, sums: { right: s }, primary: { sum: s, sumSq: s } };
    },
    resultOf: (p: PartialScore): EvalResult => ({ fitness: p.sums.right! / p.count, metrics: { accuracy: p.sums.right! / p.count }, samples: p.count }),
    async evaluate(): Promise<EvalResult> { throw new Error('scored whole'); },
  };
  return ev as unknown as Evaluator & { scored: number };
}

const wholeEvaluator = (fitness: number) => ({ itemCount: () => null, evaluate: async (): Promise<EvalResult> => ({ fitness, metrics: { score: fitness }, samples: 7 }) }) as unknown as Evaluator;

function raceOf(evs: RacedEvaluator[], f: FidelityTask) {
  return race(evs, f, { whole: (e) => e.ev.evaluate(null, { backend: null }), items: (e, ix) => e.ev.scoreItems!(null, { backend: null }, ix) });
}

test('a candidate below the threshold stops at rung 0 and one above goes to full fidelity (hand-computed threshold and bounds)', async () => {
  // 100 items; the first 10 of the order hold 2 right answers, the next 20 hold 10, the rest 40
  const pattern = [...[1, 1, 0, 0, 0, 0, 0, 0, 0, 0], ...Array.from({ length: 20 }, (_, i) => (i < 10 ? 1 : 0)), ...Array.from({ length: 70 }, (_, i) => (i < 40 ? 1 : 0))];
  // rung 0: p = 0.2 on n = 10 of N = 100; s^2 = (2 - 10 * 0.04) / 9 = 0.177..., se = sqrt(s^2 / 10 * (1 - 0.1)) = sqrt(0.016) = 0.12649
  const p0 = { count: 10, sums: {}, primary: { sum: 2, sumSq: 2 } };
  assert.ok(Math.abs(standardError(p0, 100) - Math.sqrt(0.016)) < 1e-12);
  // with a whole evaluator of fitness 0.3 at weight 0.5: bound = 0.15 + 0.2 + 2 x 0.12649 = 0.60298
  const ub = upperBound([{ weight: 0.5, fitness: 0.3, se: 0 }, { weight: 1, fitness: 0.2, se: Math.sqrt(0.016) }], 2);
  assert.ok(Math.abs(ub - (0.35 + 2 * Math.sqrt(0.016))) < 1e-12);
  assert.ok(Math.abs(ub - 0.60298) < 1e-5);

  const below = patternEvaluator('acc', pattern);
  const stopped = await raceOf([{ id: 'whole', weight: 0.5, ev: wholeEvaluator(0.3) }, { id: 'acc', weight: 1, ev: below }], { rungs: [0.1, 0.3, 1], confidence: 2, threshold: 0.61 });
  assert.equal(stopped.rung, 0);
  assert.equal(stopped.fidelity, 0.1);
  assert.equal(stopped.itemEvals, 7 + 10, 'the whole evaluator counts its items, the raced one its rung');
  assert.equal(below.scored, 10);
  assert.equal(stopped.results[1]!.fitness, 0.2);

  // threshold 0.6 < 0.60298: on to rung 1 (12 right of 30: bound 0.15 + 0.4 + 2 se > 0.6), then every item
  const above = patternEvaluator('acc', pattern);
  const full = await raceOf([{ id: 'whole', weight: 0.5, ev: wholeEvaluator(0.3) }, { id: 'acc', weight: 1, ev: above }], { rungs: [0.1, 0.3, 1], confidence: 2, threshold: 0.6 });
  assert.equal(full.fidelity, 1);
  assert.equal(above.scored, 100, 'each item scored once: a rung adds only its new items');
  assert.equal(full.results[1]!.fitness, 0.52);

  // no threshold yet (the first generation): every item at once
  const first = patternEvaluator('acc', pattern);
  const r = await raceOf([{ id: 'acc', weight: 1, ev: first }], { rungs: [0.1, 0.3, 1], confidence: 2, threshold: null });
  assert.equal(r.fidelity, 1);
  assert.equal(first.scored, 100);
});

test('only full-fidelity candidates become best, in the store, status and the report', () => {
  const store = RunStore.open(join(dir, `best-${k++}.sqlite`));
  const run = store.createRun({ name: 'r', space: { space: { mode: 'ps' }, evaluators: [] }, codeVersion: 'test', seed: 1 });
  const [a, b, c] = store.addCandidates(run.id, ['a', 'b', 'c'].map((id, i) => ({ stage: 0, generation: 0, proposalId: id, operator: 'sample', genome: [i], recipe: { id }, recipeHash: id, threshold: i === 0 ? null : 0.5 })));
  store.recordResult(a!.id, { fitness: 0.6, fidelity: 1, itemEvals: 100 });
  store.recordResult(b!.id, { fitness: 0.9, fidelity: 0.1, itemEvals: 10 }); // a lucky estimate on 10 items
  store.recordResult(c!.id, { fitness: 0.7, fidelity: 1, itemEvals: 100 });
  assert.deepEqual(store.best(run.id, 5).map((x) => x.proposalId), ['c', 'a']);
  const s = runStatus(store, run, 'db');
  assert.equal(s.best!.id, c!.id);
  assert.deepEqual(s.items, { evaluations: 210, byFidelity: [{ fidelity: 0.1, candidates: 1 }, { fidelity: 1, candidates: 2 }] });
  const d = reportData(store, run);
  assert.equal(d.top[0]!.id, c!.id);
  assert.ok(d.top.every((t) => t.id !== b!.id));
  assert.ok(d.fitness.bestSoFar.every((p) => p.id !== b!.id));
  assert.equal(d.run.items.items, 210);
  // reuse: a partial score serves a twin proposed against an equal or higher threshold only
  assert.equal(store.scoredByHash(run.id, 'b', 0.5)?.id, b!.id);
  assert.equal(store.scoredByHash(run.id, 'b', 0.4), undefined);
  assert.equal(store.scoredByHash(run.id, 'b', null), undefined);
  assert.equal(store.scoredByHash(run.id, 'a', null)?.id, a!.id);
  store.close();
});

/**
 * A racing stand-in for the worker pool: each candidate has N = 200 items, item i right when a
 * fixed uniform u_i is below p(genome) = 0.9 - |genome - 0.3|^2, scored through race() with the
 * task's threshold; results arrive after random delays.
 */
type FidelityTaskOf = { genome: number[]; fidelity: FidelityTask };
const U = Array.from({ length: 200 }, (_, i) => parseInt(createHash('sha256').update(String(i)).digest('hex').slice(0, 8), 16) / 2 ** 32);

function fidelityProblem(rungs = [0.1, 0.3, 1]): StageProblem<FidelityTaskOf> {
  return {
    stage: 0, dimension: 4, optimizer: { id: 'cmaes', options: { popsize: 6 } }, fidelity: true,
    prepare(genome, c) {
      const recipe = { genome: genome.map((g) => Math.round(g * 1e6) / 1e6) };
      return { recipe, recipeHash: createHash('sha256').update(JSON.stringify(recipe)).digest('hex'), task: { genome: [...genome], fidelity: { rungs, confidence: 2, threshold: c.threshold ?? null } } };
    },
  };
}

function fidelityRunner(threads: number, maxDelayMs: number, seed = 1): TaskRunner<FidelityTaskOf> {
  let x = seed;
  const rand = () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648);
  return {
    threads,
    async run(task): Promise<TaskOutcome<CandidateScore>> {
      const delay = rand() * maxDelayMs;
      await new Promise((r) => setTimeout(r, delay));
      const p = 0.9 - task.genome.reduce((s, g) => s + (g - 0.3) ** 2, 0);
      const values = U.map((u) => (u < p ? 1 : 0));
      const ev = {
        itemCount: () => values.length,
        scoreItems: async (_m: unknown, _c: unknown, ix: readonly number[]) => {
          const s = ix.reduce((a, i) => a + values[i]!, 0);
          return { count: ix.length, sums: { right: s }, primary: { sum: s, sumSq: s } };
        },
        resultOf: (q: PartialScore) => ({ fitness: q.sums.right! / q.count, metrics: { accuracy: q.sums.right! / q.count }, samples: q.count }),
      } as unknown as Evaluator;
      const r = await raceOf([{ id: 'acc', weight: 1, ev }], task.fidelity);
      return { ok: true, value: { fitness: r.results[0]!.fitness, metrics: [{ evaluator: 'acc', metric: 'accuracy', value: r.results[0]!.fitness }], fidelity: r.fidelity, itemEvals: r.itemEvals }, ms: delay, worker: 1 };
    },
  };
}

function snapshot(store: RunStore, runId: number) {
  return {
    rows: store.candidates(runId).map((c) => ({ id: c.proposalId, genome: c.genome, state: c.state, fitness: c.fitness, told: c.told, threshold: c.threshold, fidelity: c.fidelity, items: c.itemEvals })),
    best: store.best(runId, 1)[0]?.proposalId,
  };
}

test('a run with fidelity stopped mid-way and resumed equals an uninterrupted one: candidates, thresholds, fidelities, scores and best', async () => {
  const refStore = RunStore.open(join(dir, `fid-ref-${k++}.sqlite`));
  const refRun = refStore.createRun({ name: 'r', space: {}, codeVersion: 'test', seed: 5 });
  await runStage(refStore, refRun, fidelityProblem(), fidelityRunner(1, 0), { budget: { evaluations: 30 } });
  const ref = snapshot(refStore, refRun.id);
  const rows = refStore.candidates(refRun.id);
  assert.ok(rows.slice(0, 6).every((c) => c.threshold === null && c.fidelity === 1), 'the first generation has no threshold: scored in full');
  assert.ok(rows.some((c) => c.fidelity !== null && c.fidelity < 1), 'some candidates stopped early');
  assert.ok(rows.some((c) => c.threshold !== null && c.fidelity === 1), 'some raced to full fidelity');
  // each threshold is the best full score told before the candidate was proposed
  for (const c of rows.filter((r) => r.threshold !== null)) {
    const earlier = rows.filter((r) => r.generation < c.generation && r.fidelity === 1).map((r) => r.fitness!);
    assert.ok(earlier.includes(c.threshold!) && c.threshold! <= Math.max(...earlier));
  }
  assert.equal(refStore.best(refRun.id, 1)[0]!.fidelity, 1);

  const store = RunStore.open(join(dir, `fid-stopped-${k++}.sqlite`));
  const run = store.createRun({ name: 'r', space: {}, codeVersion: 'test', seed: 5 });
  const controller = new AbortController();
  let seen = 0;
  const first = await runStage(store, run, fidelityProblem(), fidelityRunner(3, 4, 7), {
    budget: { evaluations: 30 }, signal: controller.signal,
    onEvent: (e) => { if (e.type === 'result' && ++seen === 17) controller.abort(); },
  });
  assert.equal(first.reason, 'stopped');
  await runStage(store, run, fidelityProblem(), fidelityRunner(2, 3, 9), { budget: { evaluations: 30 } });
  assert.deepEqual(snapshot(store, run.id), ref);
  refStore.close();
  store.close();
});

test('with fidelity the budget counts full-set equivalents, and status reports the item-evaluations spent', async () => {
  const store = RunStore.open(join(dir, `fid-budget-${k++}.sqlite`));
  const run = store.createRun({ name: 'r', space: {}, codeVersion: 'test', seed: 5 });
  const summary = await runStage(store, run, fidelityProblem(), fidelityRunner(2, 0), { budget: { evaluations: 24 } });
  assert.equal(summary.reason, 'budget: evaluations');
  const rows = store.candidates(run.id);
  const equivalents = rows.reduce((s, c) => s + (c.fidelity ?? 1), 0);
  assert.ok(equivalents >= 24, `${equivalents} full-set equivalents`);
  assert.ok(equivalents < 24 + 6, 'at most one generation past the budget');
  assert.ok(rows.length > 24, `${rows.length} candidates for 24 full evaluations' worth`);
  const items = rows.reduce((s, c) => s + c.itemEvals!, 0);
  const s = runStatus(store, run, 'db');
  assert.equal(s.items.evaluations, items);
  assert.equal(s.items.byFidelity.reduce((n, r) => n + r.candidates, 0), rows.filter((c) => c.state === 'done').length);
  assert.ok(s.items.byFidelity.some((r) => r.fidelity === 0.1));
  store.close();
});

/**
 * A tiny residual-MLP family written here: a base, two "fine-tunes" (the base plus noise), and a
 * 1000-item classification task labelled by a merge of them (20% of labels flipped), so merge
 * weights matter and no candidate is perfect.
 */
async function tinyFamily(root: string): Promise<{ base: string; models: Array<{ name: string; path: string }>; manifest: string }> {
  const { writeSafetensors } = await import('../src/checkpoint/index.ts');
  const { mkdirSync } = await import('node:fs');
  const config = { architectures: ['EvomergeResidualMLP'], input_size: 16, hidden_size: 16, num_blocks: 2, input_scale: 1 / 255, heads: [{ name: 'cls', num_classes: 4 }] };
  const c = parseResidualMlpConfig(config);
  const shapes = residualMlpTensorShapes(c);
  const base = randomWeights(shapes, 1, 0.4);
  const tuned = (seed: number) => new Map([...randomWeights(shapes, seed, 0.3)].map(([n, d]) => [n, base.get(n)!.map((v, i) => v + d[i]!)]));
  const write = (name: string, w: Map<string, Float32Array>) => {
    const path = join(root, name);
    mkdirSync(path, { recursive: true });
    writeFileSync(join(path, 'config.json'), JSON.stringify(config));
    writeSafetensors(join(path, 'model.safetensors'), shapes.map((s) => ({ name: s.name, dtype: 'F32' as const, shape: s.shape, data: w.get(s.name)! })));
    return path;
  };
  const a = tuned(2);
  const b = tuned(3);
  const teacher = new Map([...base].map(([n, v]) => [n, v.map((x, i) => x + 0.8 * (a.get(n)![i]! - x) + 0.4 * (b.get(n)![i]! - x))]));
  const n = 1000;
  mkdirSync(root, { recursive: true });
  const pixels = Array.from({ length: n * 16 }, (_, i) => parseInt(createHash('sha256').update(`px${i}`).digest('hex').slice(0, 2), 16));
  await useBackend('wasm');
  const model = ResidualMlp.load(c, weightsFromMap(teacher));
  const preds = (await model.predict(Float32Array.from(pixels))).get('cls')!;
  model.dispose();
  const labels = Array.from(preds, (p, i) => (i % 5 === 0 ? (p + 1) % 4 : p));
  writeFileSync(join(root, 'x.idx'), idx(8, [n, 4, 4], pixels));
  writeFileSync(join(root, 'y.idx'), idx(8, [n], labels));
  const manifest = join(root, 'task.yaml');
  writeFileSync(manifest, JSON.stringify({
    id: 'task', version: 1, kind: 'classification', family: 'residual-mlp', split: 'validation', batch_size: 250,
    data: { splits: { validation: { images: 'x.idx', labels: 'y.idx' } } }, metric: { name: 'accuracy', direction: 'maximize' },
  }));
  return { base: write('base', base), models: [{ name: 'a', path: write('a', a) }, { name: 'b', path: write('b', b) }], manifest };
}

test('an end-to-end search on a tiny residual-MLP family with fidelity spends fewer item-evaluations per candidate than without, its best is scored in full, and stopped and resumed it is the same run', async () => {
  const { startSearch, resumeSearch } = await import('./helpers/search.ts');
  const root = join(dir, 'family');
  const fam = await tinyFamily(root);
  const run = async (name: string, extra: Record<string, unknown>, stopAfter?: number) => {
    const path = join(root, `${name}.yaml`);
    writeFileSync(path, JSON.stringify({
      name, base: fam.base, models: fam.models, mode: 'ps', evaluators: [{ manifest: fam.manifest, weight: 1 }],
      ps: { method: 'task_arithmetic', evolve: { weight: [0, 1.5] }, fixed: { lambda: 1 } },
      optimizer: { id: 'cmaes', options: { sigma0: 0.3 } }, budget: { evaluations: 24 }, seed: 1, workers: 1, timeout_seconds: 60, backend: 'wasm', ...extra,
    }));
    const log: string[] = [];
    const db = join(root, stopAfter === undefined ? name : `${name}-resumed`, 'run.sqlite');
    if (stopAfter !== undefined) {
      // stopped after a few results, then resumed with another worker count
      const controller = new AbortController();
      let seen = 0;
      const first = await startSearch(path, { dbPath: db, signal: controller.signal, onEvent: (e) => { if (e.type === 'result' && ++seen === stopAfter) controller.abort(); } });
      assert.equal(first.stages[0]!.reason, 'stopped');
      await resumeSearch(name, { dbPath: db, workers: 2, onLog: (l) => log.push(l) });
    } else await startSearch(path, { dbPath: db, onLog: (l) => log.push(l) });
    const store = RunStore.open(db, { readonly: true });
    const r = store.run(name)!;
    const out = { rows: store.candidates(r.id), status: runStatus(store, r, db), best: store.best(r.id, 1)[0]!, log };
    store.close();
    return out;
  };
  const full = await run('full', {});
  const raced = await run('raced', { fidelity: { rungs: [0.1, 0.3, 1], confidence: 2 } });
  assert.ok(full.rows.every((c) => c.fidelity === null && c.itemEvals === 1000 && c.threshold === null), 'without fidelity: every item, as before');
  assert.equal(full.status.items.evaluations, 1000 * full.rows.length);
  const perCandidate = (x: typeof full) => x.status.items.evaluations / x.rows.length;
  // the first generation has no full score to race against and is scored in full; so are the
  // later candidates that come within the bound of the best (on this flat landscape, many)
  assert.ok(perCandidate(raced) < 0.8 * perCandidate(full), `${perCandidate(raced)} items per candidate with fidelity, ${perCandidate(full)} without`);
  assert.equal(raced.rows.slice(0, full.rows.length).filter((c) => c.generation === 0).length, full.rows.filter((c) => c.generation === 0).length);
  assert.ok(raced.rows.some((c) => c.fidelity === 0.1), 'some candidates stopped at the first rung');
  assert.ok(raced.rows.length > full.rows.length, `the same budget of full-set equivalents buys more candidates (${raced.rows.length} against ${full.rows.length})`);
  assert.equal(raced.best.fidelity, 1);
  assert.ok(raced.log.some((l) => /^fidelity: candidates race/.test(l)));
  assert.ok(raced.log.some((l) => /^stage 0: \d+ item-evaluations \(.*stopped at 0\.1/.test(l)), raced.log.join('\n'));
  // the worker's racing on real evaluators depends on committed data only: a stopped and resumed run is the same run
  const resumed = await run('raced', { fidelity: { rungs: [0.1, 0.3, 1], confidence: 2 } }, 13);
  const rows = (x: typeof full) => x.rows.map((c) => [c.proposalId, c.genome, c.threshold, c.fidelity, c.fitness, c.itemEvals]);
  assert.deepEqual(rows(resumed), rows(raced));
  assert.equal(resumed.best.id, raced.best.id);
});

test('a space with fidelity rungs that do not increase to 1, or with objective multi, is refused naming the field', async () => {
  const { parseSearchSpace } = await import('../src/space/schema.ts');
  const base = 'zoo: z\nps: { method: ties, evolve: [weight] }\n';
  assert.deepEqual(parseSearchSpace(`${base}fidelity: {}\n`, 's.yaml').fidelity, { rungs: [0.1, 0.3, 1], confidence: 2 });
  assert.throws(() => parseSearchSpace(`${base}fidelity: { rungs: [0.3, 0.1, 1] }\n`, 's.yaml'), /field 'fidelity.rungs': rungs must be increasing/);
  assert.throws(() => parseSearchSpace(`${base}fidelity: { rungs: [0.1, 0.5] }\n`, 's.yaml'), /field 'fidelity.rungs'/);
  assert.throws(() => parseSearchSpace(`${base}objective: multi\nfidelity: {}\n`, 's.yaml'), /field 'fidelity': .*objective multi/);
});
