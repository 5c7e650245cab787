/**
 * Gradients and item subsets through command evaluators (src/refine/command.ts,
 * src/eval/protocol.ts), with the numpy evaluator of evaluators/scripts/mlp_numpy.py on a tiny
 * residual-MLP family: its coefficient gradients against central finite differences of its own
 * loss through evomerge's merge, malformed gradient files, rung sums against a full evaluation.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getMethod } from '../src/methods/index.ts';
import { PsCodec } from '../src/space/ps.ts';
import { parseManifest } from '../src/eval/manifest.ts';
import { CommandEvaluator } from '../src/eval/command.ts';
import { ClassificationEvaluator } from '../src/eval/classification.ts';
import { useBackend } from '../src/models/backend.ts';
import { loadModel } from '../src/models/load.ts';
import { mergeToMemory } from '../src/candidate/build.ts';
import { race } from '../src/candidate/fidelity.ts';
import { commandCoefficientGradient, type CommandGradientEvaluator } from '../src/refine/command.ts';
import { tempDir } from './helpers/tmp.ts';
import { PYTHON, requireNumpy } from './helpers/numpy.ts';
import { mlpFamily, mlpJson, plainLogits, plainLoss, randomItems, writeMlp } from './helpers/refine.ts';

const SCRIPT = fileURLToPath(new URL('../evaluators/scripts/mlp_numpy.py', import.meta.url));
const BAD = fileURLToPath(new URL('./helpers/bad_gradient.py', import.meta.url));
const root = tempDir('evomerge-refine-command-');
const fam = mlpFamily(join(root, 'family'), 2, 0.3);
const N = 40;
const data = randomItems(N, 6, 3, 7);
const jsonl = join(root, 'items.jsonl');
writeFileSync(jsonl, Array.from({ length: N }, (_, r) => JSON.stringify({ input: Array.from(data.x.subarray(r * 6, (r + 1) * 6)), label: data.y[r] })).join('\n') + '\n');

const opened: CommandEvaluator[] = [];
after(async () => {
  await Promise.all(opened.map((e) => e.close()));
});

function commandEvaluator(body: Record<string, unknown>, name = 'cmd'): CommandEvaluator {
  const m = parseManifest({ version: 1, kind: 'command', split: 'validation', timeout_s: 60, startup_timeout_s: 60, metric: { name: 'accuracy', direction: 'maximize' }, ...body }, join(root, `${name}.yaml`));
  if (m.kind !== 'command') throw new Error('not a command manifest');
  const ev = new CommandEvaluator(m);
  opened.push(ev);
  return ev;
}

const persistentNumpy = () => commandEvaluator({ persistent: true, gradient: true, subset: { form: 'range', items: N }, command: [PYTHON, SCRIPT, '--serve', '--jsonl', jsonl, '--head', 'cls'] }, 'numpy');

function codecFor(method: string, evolve: string[], fixed: Record<string, number | boolean> = {}): PsCodec {
  return new PsCodec({ method: getMethod(method), base: fam.base, models: fam.models, layers: 2, layersPerGroup: 1, filters: ['fc1'], evolve, fixed, seed: 3 });
}

async function checkAgainstFiniteDifference(codec: PsCodec, ev: CommandEvaluator, loss: 'supervised' | 'entropy') {
  const evaluators: CommandGradientEvaluator[] = [{ id: 'numpy', weight: 1, ev }];
  const at = (genome: number[], step: number) => commandCoefficientGradient({ codec, genome, sources: fam.sources, evaluators, loss, step });
  const genome = Array.from({ length: codec.dimension }, (_, i) => 0.3 + 0.4 * ((i * 37) % 11) / 11);
  const { loss: value, gradient } = await at(genome, 0);
  // the program's loss is the loss of evomerge's merge, by an independent float64 forward
  const { tensors } = mergeToMemory(codec.decode(genome), fam.sources);
  assert.ok(Math.abs(value - plainLoss(plainLogits(tensors, data.x, N), loss === 'supervised' ? data.y : null)) < 1e-5, `loss ${value}`);
  const h = 1e-3;
  const names = codec.geneNames();
  let nonzero = 0;
  for (let i = 0; i < codec.dimension; i++) {
    const up = genome.slice();
    const down = genome.slice();
    up[i]! += h;
    down[i]! -= h;
    const fd = ((await at(up, 1)).loss - (await at(down, 2)).loss) / (2 * h);
    const scale = Math.max(Math.abs(fd), 1e-3);
    assert.ok(Math.abs(gradient[i]! - fd) / scale < 3e-3, `${names[i]}: chained ${gradient[i]} vs finite difference ${fd}`);
    if (Math.abs(fd) > 1e-4) nonzero++;
  }
  assert.ok(nonzero >= 2, `several genes move the loss (${nonzero})`);
}

test('coefficient gradients from the numpy command evaluator match central finite differences of its loss through the merge (task arithmetic, linear, TIES)', async () => {
  requireNumpy();
  const ev = persistentNumpy();
  await checkAgainstFiniteDifference(codecFor('task_arithmetic', ['weight', 'lambda']), ev, 'supervised');
  await checkAgainstFiniteDifference(codecFor('linear', ['weight'], { normalize: true }), ev, 'supervised');
  await checkAgainstFiniteDifference(codecFor('ties', ['weight'], { density: 0.7, lambda: 1 }), ev, 'entropy');
});

test('the one-shot form of the numpy evaluator gives the same loss and gradient as the persistent one', async () => {
  requireNumpy();
  const once = commandEvaluator({ gradient: true, command: [PYTHON, SCRIPT, '--model', '{model}', '--jsonl', jsonl, '--gradient', '{gradient}', '--loss', '{loss}'] }, 'once');
  const codec = codecFor('dare_linear', ['weight'], { density: 0.8, lambda: 1 });
  const genome = Array.from({ length: codec.dimension }, (_, i) => 0.2 + 0.05 * i);
  const a = await commandCoefficientGradient({ codec, genome, sources: fam.sources, evaluators: [{ id: 'once', weight: 1, ev: once }], loss: 'supervised', step: 0 });
  const b = await commandCoefficientGradient({ codec, genome, sources: fam.sources, evaluators: [{ id: 'numpy', weight: 1, ev: persistentNumpy() }], loss: 'supervised', step: 0 });
  assert.ok(Math.abs(a.loss - b.loss) < 1e-12);
  a.gradient.forEach((g, i) => assert.ok(Math.abs(g - b.gradient[i]!) < 1e-9, `gene ${i}`));
  assert.ok(a.gradient.some((g) => g !== 0));
});

for (const [mode, pattern] of [
  ['shape', /tensor 'blocks\.0\.fc1\.weight' with shape \[7\], but the tensor is \[7, 5\]/],
  ['missing', /wrote no gradient for tensor 'blocks\.0\.fc1\.weight'/],
  ['nan', /non-finite gradient \(NaN\) for tensor 'blocks\.0\.fc1\.weight' at element 3/],
  ['f16', /gradient of tensor 'blocks\.0\.fc1\.weight' as F16; write it as float32/],
  ['extra', /gradient for tensor 'blocks\.9\.fc1\.weight', which the candidate folder does not have/],
  ['garbage', /not a readable safetensors file/],
  ['none', /not a readable safetensors file: .*no such file/],
] as const) {
  test(`a gradient file with ${mode === 'none' ? 'no file at all' : `a ${mode} defect`} fails the step with an error naming what is wrong`, async () => {
    requireNumpy();
    const ev = commandEvaluator({ gradient: true, command: [PYTHON, BAD, '{model}', '{gradient}', mode] }, `bad-${mode}`);
    const codec = codecFor('task_arithmetic', ['weight'], { lambda: 1 });
    const genome = codec.initialGenome();
    await assert.rejects(commandCoefficientGradient({ codec, genome, sources: fam.sources, evaluators: [{ id: 'bad', weight: 1, ev }], loss: 'supervised', step: 0 }), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'E_REFINE_GRADIENT_FILE', e.message);
      assert.match(e.message, /evaluator 'bad'/);
      assert.match(e.message, pattern);
      return true;
    });
  });
}

test('a gradient answer without a finite loss fails with the reason', async () => {
  requireNumpy();
  const ev = commandEvaluator({ gradient: true, command: [PYTHON, BAD, '{model}', '{gradient}', 'noloss'] }, 'noloss');
  const codec = codecFor('task_arithmetic', ['weight'], { lambda: 1 });
  await assert.rejects(commandCoefficientGradient({ codec, genome: codec.initialGenome(), sources: fam.sources, evaluators: [{ id: 'bad', weight: 1, ev }], loss: 'supervised', step: 0 }),
    (e: Error & { code?: string }) => e.code === 'E_EVAL_COMMAND_OUTPUT' && /without a finite "loss"/.test(e.message));
});

test('a persistent program whose hello lacks a capability its manifest declares is refused with the missing name', async () => {
  requireNumpy();
  const ev = commandEvaluator({ persistent: true, gradient: true, command: [PYTHON, '-c', 'import json, sys\nprint(json.dumps({"evomerge_evaluator": 1, "capabilities": []}), flush=True)\nfor line in sys.stdin: pass'] }, 'nocap');
  const codec = codecFor('task_arithmetic', ['weight'], { lambda: 1 });
  await assert.rejects(commandCoefficientGradient({ codec, genome: codec.initialGenome(), sources: fam.sources, evaluators: [{ id: 'nocap', weight: 1, ev }], loss: 'supervised', step: 0 }),
    (e: Error & { code?: string }) => e.code === 'E_EVAL_PROTOCOL' && /declares gradient: true, which needs "gradient"/.test(e.message));
});

test('manifests that declare gradient or subset without the arguments that carry them to a one-shot program are refused', () => {
  const m = (body: Record<string, unknown>) => () => parseManifest({ version: 1, kind: 'command', split: 'validation', metric: { name: 'accuracy', direction: 'maximize' }, ...body }, join(root, 'm.yaml'));
  assert.throws(m({ gradient: true, command: ['x', '{model}'] }), /has no \{gradient\} argument/);
  assert.throws(m({ subset: { form: 'range', items: 10 }, command: ['x', '{model}', '{offset}'] }), /has no \{count\} argument/);
  assert.throws(m({ subset: { form: 'first', items: 10 }, command: ['x', '{model}'] }), /has no \{limit\} argument/);
  assert.doesNotThrow(m({ subset: { form: 'first', items: 10 }, command: ['x', '{model}', '--limit', '{limit}'] }));
});

/** The candidate: evomerge's merge of a recipe, written as a folder. */
function candidateFolder(name: string): string {
  const codec = codecFor('task_arithmetic', ['weight', 'lambda']);
  const { tensors } = mergeToMemory(codec.decode(codec.initialGenome()), fam.sources);
  return writeMlp(join(root, name), tensors, mlpJson);
}

test('rung sums from the command evaluator add up to its full evaluation, which equals the built-in classification evaluator\'s accuracy', async () => {
  requireNumpy();
  const folder = candidateFolder('rungs');
  const ev = persistentNumpy();
  const ctx = { backend: null, modelDir: () => folder };
  const full = await ev.evaluate(null, ctx);
  // the built-in evaluator on the same items, in TensorFlow.js
  await useBackend('cpu');
  const m = parseManifest({ version: 1, kind: 'classification', family: 'residual-mlp', split: 'validation', data: { format: 'jsonl', splits: { validation: jsonl } }, metric: { name: 'accuracy', direction: 'maximize' } }, join(root, 'builtin.yaml'));
  const builtIn = new ClassificationEvaluator(m as Extract<typeof m, { kind: 'classification' }>);
  const { model } = loadModel(folder);
  const reference = await builtIn.evaluate(model, { backend: null });
  model.dispose();
  builtIn.dispose();
  assert.equal(full.metrics.accuracy, reference.metrics.accuracy);
  assert.equal(ev.itemCount(), N);
  const parts = [await ev.scoreSubset(ctx, { from: 0, to: 7 }), await ev.scoreSubset(ctx, { from: 7, to: 19 }), await ev.scoreSubset(ctx, { from: 19, to: N })];
  assert.deepEqual(parts.map((p) => p.count), [7, 12, 21]);
  const sum = parts.reduce((a, p) => a + p.primary.sum, 0);
  assert.equal(sum / N, full.metrics.accuracy);
  // a race that never stops climbs every rung: its score is the full evaluation's, each item scored once
  const raced = await race([{ id: 'numpy', weight: 1, ev }], { rungs: [0.2, 0.5, 1], confidence: 2, threshold: -Infinity }, {
    whole: () => Promise.reject(new Error('a subset-capable evaluator is raced, not scored whole')),
    items: (e, indices) => e.ev.scoreItems!(null, ctx, indices),
  });
  assert.equal(raced.rung, 2);
  assert.equal(raced.itemEvals, N);
  assert.equal(raced.results[0]!.fitness, full.fitness);
  // a race that cannot win stops at the first rung, on its items only
  const stopped = await race([{ id: 'numpy', weight: 1, ev }], { rungs: [0.2, 0.5, 1], confidence: 2, threshold: 10 }, {
    whole: () => Promise.reject(new Error('unused')),
    items: (e, indices) => e.ev.scoreItems!(null, ctx, indices),
  });
  assert.deepEqual([stopped.rung, stopped.itemEvals, stopped.fidelity], [0, 8, 0.2]);
});

test('a first-N evaluator (subset form first, as lm-eval --limit) rescores its prefix at each rung and ends on the full evaluation', async () => {
  requireNumpy();
  const folder = candidateFolder('first');
  const ev = commandEvaluator({ subset: { form: 'first', items: N }, command: [PYTHON, SCRIPT, '--model', '{model}', '--jsonl', jsonl, '--limit', '{limit}'] }, 'first');
  const ctx = { backend: null, modelDir: () => folder };
  const full = await ev.evaluate(null, ctx);
  const raced = await race([{ id: 'first', weight: 1, ev }], { rungs: [0.25, 0.5, 1], confidence: 2, threshold: -Infinity }, {
    whole: () => Promise.reject(new Error('unused')),
    items: (e, indices) => e.ev.scoreItems!(null, ctx, indices),
  });
  assert.equal(raced.results[0]!.metrics.accuracy, full.metrics.accuracy);
  // 10 + 20 + 40 items: each rung scores the first N again
  assert.equal(raced.itemEvals, 70);
  // the first rung is the file's first 10 items
  const first = await ev.scoreSubset(ctx, { from: 0, to: 10 });
  const { tensors } = mergeToMemory(codecFor('task_arithmetic', ['weight', 'lambda']).decode(codecFor('task_arithmetic', ['weight', 'lambda']).initialGenome()), fam.sources);
  const logits = plainLogits(tensors, data.x, 10);
  assert.equal(first.primary.sum, logits.filter((l, r) => l.indexOf(Math.max(...l)) === data.y[r]).length);
});
