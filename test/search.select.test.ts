import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadSourceModel, mergeToMemory, type SourceModels } from '../src/candidate/index.ts';
import { createEvaluator, loadManifest } from '../src/eval/index.ts';
import { modelFromWeights, useBackend, weightsFromMap } from '../src/models/index.ts';
import { localRunner } from '../src/pool/index.ts';
import type { Recipe } from '../src/recipe/index.ts';
import { exportCandidates } from '../src/report/index.ts';
import { runStatus } from '../src/search/inspect.ts';
import { choose, type PoolEntry } from '../src/search/noise.ts';
import type { SearchRuntime } from '../src/search/runtime.ts';
import { chosenCandidate, partsOf, SELECTION, stagePool } from '../src/search/select.ts';
import { RunStore } from '../src/store/index.ts';
import { zooBuilder } from '../src/zoo/index.ts';
import { resumeSearch, runtime, startSearch } from './helpers/search.ts';
import { tempDir } from './helpers/tmp.ts';

const dir = tempDir('evomerge-select-');
const zoo = join(dir, 'vision');
const bin = new URL('../src/cli/bin.mjs', import.meta.url).pathname;
const TASKS = ['digits', 'permuted', 'inverted'];

before(async () => {
  await zooBuilder('vision').build(zoo, { seed: 0, small: true });
  // a second split for selection: each task's held-out test images read as a validation split
  for (const t of TASKS) {
    const m = loadManifest(join(zoo, 'evaluators', `${t}.test.yaml`)) as unknown as Record<string, unknown> & { data: { splits: Record<string, unknown> } };
    writeFileSync(join(zoo, 'evaluators', `${t}.second.yaml`), stringify({
      id: `second-${t}`, version: 1, kind: 'classification', family: 'residual-mlp', split: 'validation', head: t, limit: 400,
      data: { format: 'idx', splits: { validation: m.data.splits.test } }, metric: { name: 'accuracy', direction: 'maximize' },
    }));
  }
});

const second = (weight = 1) => TASKS.map((t) => ({ manifest: join(zoo, 'evaluators', `${t}.second.yaml`), weight }));

function space(name: string, extra: Record<string, unknown> = {}): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify({
    name, zoo, mode: 'ps',
    ps: { method: 'task_arithmetic', layers_per_group: 1, evolve: { weight: [0, 1], lambda: [0.3, 1.5] } },
    optimizer: { id: 'cmaes', options: { sigma0: 0.3 } },
    budget: { evaluations: 16 }, seed: 5, workers: 2, timeout_seconds: 60, backend: 'wasm',
    select: { evaluators: second(), top: 4 },
    ...extra,
  }));
  return path;
}

/** The weighted score of a recipe on manifests, merged and scored here, apart from the search. */
async function scoreApart(recipe: Recipe, manifests: ReadonlyArray<{ manifest: string; weight: number }>): Promise<number> {
  await useBackend('wasm');
  const paths = [...new Set([recipe.base, ...(recipe.slices ?? []).flatMap((s) => s.sources.map((x) => x.model)), ...(recipe.sources ?? []).map((s) => s.model)].filter((p): p is string => !!p))];
  const sources: SourceModels = Object.fromEntries(paths.map((p) => [p, loadSourceModel(p)]));
  const { tensors, configFrom } = mergeToMemory(recipe, sources);
  const model = modelFromWeights(sources[configFrom]!.config!, weightsFromMap(tensors, 'apart'), { tokenizer: null });
  let sum = 0;
  try {
    for (const m of manifests) {
      const ev = createEvaluator(loadManifest(m.manifest), { purpose: 'eval' });
      sum += m.weight * (await ev.evaluate(model, { backend: null })).fitness;
      ev.dispose();
    }
  } finally {
    model.dispose();
  }
  return sum;
}

function selectionState(db: string, name: string) {
  const store = RunStore.open(db, { readonly: true });
  const run = store.run(name)!;
  const scored = store.candidates(run.id).filter((c) => store.metrics(c.id).some((m) => m.evaluator === SELECTION)).map((c) => ({ id: c.proposalId, metrics: store.metrics(c.id).filter((m) => m.evaluator.startsWith(SELECTION)) }));
  const chosen = chosenCandidate(store, run);
  store.close();
  return { scored, chosen: chosen ? { id: chosen.candidate.proposalId, selection: chosen.selectionFitness, optimism: chosen.optimism } : null };
}

test('select scores the stage\'s top K on the second split, and the exported best is the best there; status, best and export show both scores', async () => {
  const db = join(dir, 'sel', 'run.sqlite');
  const r = await startSearch(space('sel'), { dbPath: db });
  const store = RunStore.open(db, { readonly: true });
  try {
    const run = store.run('sel')!;
    const rows = store.candidates(run.id);
    const pool = stagePool(rows, 0, 4);
    assert.equal(pool.length, 4);
    // every pool candidate carries its selection score, equal to the same manifests scored apart
    for (const c of pool) {
      const stored = store.metrics(c.id).find((m) => m.evaluator === SELECTION && m.metric === 'fitness')!.value!;
      assert.ok(Math.abs(stored - await scoreApart(c.recipe as Recipe, second())) < 1e-12, `candidate ${c.id}`);
      assert.ok(store.metrics(c.id).some((m) => m.evaluator === `${SELECTION}:digits.second` && m.metric === 'fitness_se'), 'per-evaluator scores and standard errors are kept');
    }
    // the chosen candidate is the pool's best on the selection split
    const entries: PoolEntry[] = pool.map((c) => ({ id: c.id, searchFitness: c.fitness!, parts: partsOf(store.metrics(c.id), second().map((m, i) => ({ id: `${TASKS[i]}.second`, manifest: m.manifest, weight: 1 })), `${SELECTION}:`)! }));
    const want = entries[choose(entries, 'max')]!.id;
    assert.equal(r.best!.id, want);
    assert.equal(r.chosen!.candidate.id, want);
    assert.ok(r.chosen!.selectionFitness !== null && r.chosen!.optimism !== null);
    // warm-started: the best fixed recipe is scored too, as the reference of the optimism
    assert.ok(r.chosen!.reference !== null);
    const ref = r.chosen!.reference!;
    assert.ok(Math.abs(r.chosen!.optimism! - ((r.chosen!.searchFitness - ref.searchFitness) - (r.chosen!.selectionFitness! - ref.selectionFitness))) < 1e-12);
    const status = runStatus(store, run, db);
    assert.equal(status.selected!.id, want);
    assert.equal(status.best!.id, store.best(run.id, 1)[0]!.id, 'status keeps the search\'s own best beside the chosen one');
    const exported = await exportCandidates(store, run, join(dir, 'sel-export'), { best: true, formats: ['recipe', 'card'] });
    assert.equal(exported[0]!.id, want);
    const card = readFileSync(join(exported[0]!.dir, 'README.md'), 'utf8');
    assert.match(card, /Chosen on a second split/);
    assert.match(card, /optimism of the search is/);
  } finally {
    store.close();
  }
  const text = spawnSync(process.execPath, [bin, 'status', 'sel', '--db', db], { encoding: 'utf8' }).stdout;
  assert.match(text, /selected {4}candidate \d+ \(stage 0\), best of the top 4 on the selection split \(max\): search [\d.]+, selection [\d.]+ \+- [\d.]+, optimism -?[\d.]+/);
  const best = JSON.parse(spawnSync(process.execPath, [bin, 'best', 'sel', '--db', db, '--top', '3', '--json'], { encoding: 'utf8' }).stdout);
  assert.equal(best.candidates[0].id, r.best!.id);
  assert.equal(best.candidates[0].chosen, true);
  assert.equal(typeof best.candidates[0].selection, 'number');
  const rep = JSON.parse(spawnSync(process.execPath, [bin, 'report', 'sel', '--db', db, '--format', 'html', '--no-baselines', '-o', join(dir, 'sel-report'), '--json'], { encoding: 'utf8' }).stdout) as { html: string };
  const html = readFileSync(rep.html, 'utf8');
  assert.match(html, new RegExp(`Selection on a second split</h2>\\n<p>The top 4 candidates .* is candidate ${r.best!.id}: search fitness [\\d.]+, selection split [\\d.]+, optimism of the search -?[\\d.]+`));
});

test('a run stopped in the middle of its selection resumes to the same selection as an uninterrupted run', async () => {
  const expected = selectionState(join(dir, 'sel', 'run.sqlite'), 'sel');
  const db = join(dir, 'sel-stopped', 'run.sqlite');
  const stop = new AbortController();
  // the selection's runner stops the session after its first result (its evaluators are the second split's)
  const stopping: SearchRuntime = {
    ...runtime,
    local: (o) => {
      const r = localRunner(o);
      if (!o.data.evaluators[0]!.id.endsWith('.second')) return r;
      return { ...r, threads: 1, run: async (task, c) => { const out = await r.run(task, c); stop.abort('test stop'); return out; }, close: () => r.close(), utilisation: () => r.utilisation() };
    },
  };
  const { startSearch: start } = await import('../src/search/engine.ts');
  const first = await start(space('sel'), { runtime: stopping, dbPath: db, runName: 'sel', signal: stop.signal });
  assert.equal(first.run.status, 'stopped');
  const partial = selectionState(db, 'sel');
  assert.equal(partial.scored.length, 1, 'one selection result was stored before the stop');
  await resumeSearch('sel', { dbPath: db });
  assert.deepEqual(selectionState(db, 'sel'), expected);
});

test('a selection split on test is refused like any other test split, unless --allow-test-split', async () => {
  const onTest = TASKS.map((t) => ({ task: t, split: 'test', weight: 1 }));
  await assert.rejects(startSearch(space('sel-test', { select: { evaluators: onTest, top: 2 } }), { dbPath: join(dir, 'sel-test', 'run.sqlite') }), (e: Error & { code?: string }) => e.code === 'E_TEST_SPLIT');
  const r = await startSearch(space('sel-test-ok', { select: { evaluators: onTest, top: 2 }, budget: { evaluations: 4 } }), { dbPath: join(dir, 'sel-test-ok', 'run.sqlite'), allowTestSplit: true });
  assert.ok(r.chosen!.selectionFitness !== null);
  await assert.rejects(startSearch(space('sel-nosplit', { select: { evaluators: [{ task: 'digits', split: 'large' }] } }), { dbPath: join(dir, 'sel-nosplit', 'run.sqlite') }), /has no 'large' split/);
});

test('selection through a one-shot command evaluator scores each top candidate\'s folder as the program scores an exported copy of it', async () => {
  // the program's score: a checksum of the candidate's tensor bytes (after the safetensors header,
  // whose metadata may differ), a function of the merged tensors alone
  const script = [
    "const fs=require('fs');const d=process.argv[1];const b=fs.readFileSync(d+'/model.safetensors');",
    'const start=8+Number(b.readBigUInt64LE(0));let h=0;for(let i=start;i<b.length;i+=7)h=(h*31+b[i])%1000003;',
    'console.log(JSON.stringify({score:h/1000003,samples:1}));',
  ].join('');
  const manifest = join(dir, 'checksum.yaml');
  writeFileSync(manifest, stringify({ id: 'checksum', version: 1, kind: 'command', family: 'any', split: 'validation', command: [process.execPath, '-e', script, '{model}'], timeout_s: 30, metric: { name: 'score', direction: 'maximize' } }));
  const db = join(dir, 'sel-cmd', 'run.sqlite');
  const r = await startSearch(space('sel-cmd', { select: { evaluators: [{ manifest, weight: 1 }], top: 3 }, budget: { evaluations: 8 } }), { dbPath: db });
  const store = RunStore.open(db, { readonly: true });
  try {
    const run = store.run('sel-cmd')!;
    const pool = stagePool(store.candidates(run.id), 0, 3);
    for (const c of pool) {
      const stored = store.metrics(c.id).find((m) => m.evaluator === `${SELECTION}:checksum` && m.metric === 'score')!.value!;
      const out = await exportCandidates(store, run, join(dir, `sel-cmd-export-${c.id}`), { candidate: c.id, formats: ['model'] });
      const apart = JSON.parse(spawnSync(process.execPath, ['-e', script, join(out[0]!.dir, 'model')], { encoding: 'utf8' }).stdout) as { score: number };
      assert.equal(stored, apart.score, `candidate ${c.id}: the folder the search wrote and the exported one score alike`);
    }
    const best = pool.map((c) => ({ id: c.id, s: store.metrics(c.id).find((m) => m.evaluator === SELECTION && m.metric === 'fitness')!.value! })).sort((a, b) => b.s - a.s || a.id - b.id)[0]!;
    assert.equal(r.best!.id, best.id);
  } finally {
    store.close();
  }
});

test('select.rule without a second split chooses over the top K on the search\'s own scores (lcb: fitness - z se)', async () => {
  const db = join(dir, 'lcb', 'run.sqlite');
  const r = await startSearch(space('lcb', { select: { top: 5, rule: 'lcb', z: 2 }, budget: { evaluations: 12 } }), { dbPath: db });
  const store = RunStore.open(db, { readonly: true });
  try {
    const run = store.run('lcb')!;
    const evaluators = TASKS.map((t) => ({ id: t, manifest: '', weight: 1 }));
    const pool = stagePool(store.candidates(run.id), 0, 5);
    const lcb = pool.map((c) => {
      const parts = partsOf(store.metrics(c.id), evaluators)!;
      const se = Math.sqrt(parts.reduce((a, p) => a + p.se! ** 2, 0));
      return { id: c.id, v: c.fitness! - 2 * se };
    }).sort((a, b) => b.v - a.v)[0]!;
    assert.equal(r.best!.id, lcb.id);
    assert.equal(r.chosen!.rule, 'lcb');
    assert.equal(r.chosen!.selectionFitness, null, 'no second split: no selection score');
  } finally {
    store.close();
  }
});

test('a hybrid run with select starts its DFS stage from the PS stage\'s chosen candidate', async () => {
  const db = join(dir, 'sel-hybrid', 'run.sqlite');
  await startSearch(space('sel-hybrid', { mode: 'hybrid', dfs: { repetitions: 1, scale_range: [0.5, 1.5], init_source: 0, embeddings_from: 0 }, budget: { evaluations: 6 }, select: { evaluators: second(), top: 3 } }), { dbPath: db });
  const store = RunStore.open(db, { readonly: true });
  try {
    const run = store.run('sel-hybrid')!;
    const psChosen = chosenCandidate(store, run, { stages: [0] })!;
    const dfs = store.candidates(run.id, { stage: 1 })[0]!.recipe as { sources: Array<{ path: string }> };
    assert.equal(dfs.sources[0]!.path, `ps-best:candidate-${psChosen.candidate.id}`);
    // the DFS stage's own top candidates were scored on the selection split at its end, too
    assert.ok(stagePool(store.candidates(run.id), 1, 3).every((c) => store.metrics(c.id).some((m) => m.evaluator === SELECTION)));
  } finally {
    store.close();
  }
});

test('a search warns at its start when an evaluator\'s split is too small for the planned candidates, and is quiet when the gain it seeks is larger than the noise', async () => {
  const noisy = (name: string, gain: number) => {
    const db = join(dir, name, 'run.sqlite');
    return { db, run: startSearch(space(name, { select: undefined, budget: { evaluations: 8 }, noise: { gain } }), { dbPath: db }) };
  };
  const small = noisy('noise-small', 0.01);
  await small.run;
  const store = RunStore.open(small.db, { readonly: true });
  try {
    const run = store.run('noise-small')!;
    const ev = store.events(run.id, 1000).filter((e) => e.kind === 'noise');
    assert.equal(ev.length, 1, 'one check per stage');
    const data = ev[0]!.data as { candidate: number; candidates: number; evaluators: Array<{ id: string; se: number; maxNoise: number; tooSmall: boolean }> };
    assert.equal(data.candidates, 8);
    // by hand from the first scored candidate's metrics: weight 1 x se x sqrt(2 ln 8)
    const metrics = store.metrics(data.candidate);
    for (const t of TASKS) {
      const acc = metrics.find((m) => m.evaluator === t && m.metric === 'fitness')!.value!;
      const se = metrics.find((m) => m.evaluator === t && m.metric === 'fitness_se')!.value!;
      const e = data.evaluators.find((x) => x.id === t)!;
      assert.ok(Math.abs(e.se - se) < 1e-15);
      assert.ok(Math.abs(e.maxNoise - se * Math.sqrt(2 * Math.log(8))) < 1e-12);
      assert.equal(e.tooSmall, e.maxNoise >= 0.01, `${t}: accuracy ${acc}`);
    }
    assert.ok(data.evaluators.some((e) => e.tooSmall), 'a few hundred items cannot tell apart 0.01 over 8 candidates');
    assert.match(ev[0]!.message, /warning: evaluator \w+ is too small for 8 candidates/);
  } finally {
    store.close();
  }
  const large = noisy('noise-large', 0.5);
  await large.run;
  const s2 = RunStore.open(large.db, { readonly: true });
  try {
    const e = s2.events(s2.run('noise-large')!.id, 1000).find((x) => x.kind === 'noise')!;
    assert.doesNotMatch(e.message, /warning/);
    assert.match(e.message, /^noise: the fitness's standard error is/);
  } finally {
    s2.close();
  }
});
