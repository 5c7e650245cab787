import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { RunStore } from '../src/store/index.ts';
import { startSearch } from './helpers/search.ts';
import { zooBuilder } from '../src/zoo/index.ts';
import { charTokenizerJson } from '../src/models/tokenizer.ts';
import { makeTinyLlama } from '../src/zoo/tiny.ts';
import { tempDir } from './helpers/tmp.ts';

const dir = tempDir('evomerge-refine-preflight-');
const zoo = join(dir, 'vision');

before(async () => {
  await zooBuilder('vision').build(zoo, { seed: 0, small: true });
});

function space(name: string, extra: Record<string, unknown> = {}, ps: Record<string, unknown> = {}): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify({
    name, zoo, mode: 'ps',
    ps: { method: 'task_arithmetic', layers_per_group: 1, evolve: { weight: [0, 1.5] }, fixed: { lambda: 1 }, ...ps },
    optimizer: { id: 'cmaes', options: { sigma0: 0.25 } },
    budget: { evaluations: 4 }, seed: 3, workers: 1, timeout_seconds: 60, backend: 'wasm',
    refine: { steps: 2 },
    ...extra,
  }));
  return path;
}

function manifest(name: string, body: Record<string, unknown>): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify(body));
  return path;
}

/** The search is refused with `code` in one line, before its run database exists. */
async function refused(path: string, code: string, pattern: RegExp, options: { allowTestSplit?: boolean } = {}): Promise<void> {
  const db = join(dir, `${code}-${Math.random().toString(36).slice(2)}`, 'run.sqlite');
  await assert.rejects(startSearch(path, { dbPath: db, ...options }), (err: Error & { code?: string }) => {
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('\n'), `one line: ${err.message}`);
    return true;
  });
  assert.equal(existsSync(db), false, 'no run database is created');
}

test('refine on a zoo whose evaluators score only one of its tasks: the gradient stage runs its steps and the run finishes', async () => {
  const db = join(dir, 'partial', 'run.sqlite');
  const lines: string[] = [];
  const r = await startSearch(space('partial', { evaluators: [{ task: 'digits' }] }), { dbPath: db, onLog: (l) => lines.push(l) });
  assert.deepEqual(r.stages.map((s) => s.reason), ['budget: evaluations', 'refine: 2 steps']);
  const store = RunStore.open(db, { readonly: true });
  const run = store.run('partial')!;
  assert.equal(run.status, 'finished');
  const steps = store.candidates(run.id, { stage: 1 });
  assert.deepEqual(steps.map((c) => [c.operator, c.state]), [['gradient', 'done'], ['gradient', 'done']]);
  store.close();
  const losses = lines.filter((l) => l.startsWith('refine step')).map((l) => Number(/loss ([\d.]+)/.exec(l)![1]));
  assert.ok(losses.length === 2 && losses.every((l) => Number.isFinite(l) && l > 0), lines.join('\n'));
});

test('refine with a method list is refused before the run database exists', async () => {
  await refused(space('list', {}, { method: ['task_arithmetic', 'ties'], evolve: ['weight'], fixed: {} }), 'E_REFINE_SPACE', /ps\.method is a list \(task_arithmetic, ties\)/);
});

test('refine with a method the gradient cannot differentiate is refused before the run database exists', async () => {
  await refused(space('della', {}, { method: 'della', evolve: ['weight'], fixed: {} }), 'E_REFINE_METHOD', /method 'della' is not refinable/);
});

test('refine over a space that evolves no weight or lambda is refused, since its steps would change nothing', async () => {
  await refused(space('density', {}, { method: 'ties', evolve: { density: [0.2, 1] }, fixed: { weight: 1, lambda: 1 } }), 'E_REFINE_GENES', /evolves density/);
});

test('refine after a stage other than ps is refused when the space is read', async () => {
  await refused(space('hybrid', { mode: 'hybrid', dfs: { repetitions: 1 } }), 'E_SPACE', /refine follows a ps stage/);
});

test('refine with a command evaluator is refused: its program returns metrics, not a differentiable loss', async () => {
  const cmd = manifest('cmd', { version: 1, kind: 'command', family: 'any', split: 'validation', command: [process.execPath, '-e', 'console.log("{}")'], timeout_s: 10, metric: { name: 'score', direction: 'maximize' } });
  await refused(space('command', { evaluators: [{ task: 'digits' }, { manifest: cmd }] }), 'E_REFINE_EVALUATOR', /evaluator 'cmd' .* is command and runs a program/);
});

test('refine on the test split is refused even where the search may tune on it', async () => {
  await refused(space('test-split', { evaluators: [{ manifest: join(zoo, 'evaluators', 'digits.test.yaml') }] }), 'E_REFINE_SPLIT', /reads the test split/, { allowTestSplit: true });
});

test('refine on a Llama family: a generate evaluator is refused, and text evaluators need the tokenizer files', async () => {
  const root = join(dir, 'llama');
  const shape = { vocab: 32, hidden: 16, heads: 4, kvHeads: 2, layers: 2, intermediate: 24 };
  const family = (tokenizer: boolean, tag: string) => {
    const extra = tokenizer ? { tokenizer: charTokenizerJson('0123456789+-=\n abc') } : {};
    const base = makeTinyLlama(join(root, `${tag}-base`), { seed: 5, ...shape, ...extra });
    const models = [6, 7].map((s) => ({ name: `m${s}`, path: makeTinyLlama(join(root, `${tag}-m${s}`), { seed: s, ...shape, ...extra, perturb: { from: base, scale: 0.3 } }) }));
    return { base, models };
  };
  const gen = manifest('gen', { version: 1, kind: 'generate', family: 'llama', split: 'validation', limit: 2, prompt: '{question}', target: '{answer}', max_tokens: 4, data: { generator: { name: 'arithmetic', seed: 4, count: 4 } }, metric: { name: 'exact_match', direction: 'maximize' } });
  const ppl = manifest('ppl', { version: 1, kind: 'perplexity', family: 'llama', split: 'validation', limit: 3, data: { generator: { name: 'arithmetic' } }, text_field: 'question', metric: { name: 'loss', direction: 'minimize' } });
  const llamaSpace = (name: string, f: { base: string; models: unknown[] }, evaluator: string) => space(name, { zoo: undefined, ...f, evaluators: [{ manifest: evaluator }] }, { filters: [] });
  await refused(llamaSpace('llama-gen', family(true, 'tok'), gen), 'E_REFINE_EVALUATOR', /evaluator 'gen' .* is generate and scores generated text by exact match/);
  await refused(llamaSpace('llama-notok', family(false, 'notok'), ppl), 'E_REFINE_TOKENIZER', /has no tokenizer files/);
});
