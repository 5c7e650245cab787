import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { cpSync } from 'node:fs';
import { writeSafetensors } from '../src/checkpoint/index.ts';
import { useBackend } from '../src/models/backend.ts';
import { getMethod } from '../src/methods/index.ts';
import { LlamaModel, parseLlamaConfig, weightsFromMap } from '../src/models/index.ts';
import { PsCodec } from '../src/space/ps.ts';
import { mergeToMemory } from '../src/candidate/build.ts';
import { loadSourceModel, type SourceModels } from '../src/candidate/sources.ts';
import { makeTinyLlama } from '../src/zoo/tiny.ts';
import { coefficientGradient, type CausalLmItems } from '../src/refine/index.ts';
import { tempDir } from './helpers/tmp.ts';

const root = tempDir('evomerge-refine-llama-');
const shape = { hidden: 16, heads: 4, kvHeads: 2, layers: 2, vocab: 32 };
const base = makeTinyLlama(join(root, 'base'), { seed: 1, ...shape });
const models = [2, 3].map((s) => makeTinyLlama(join(root, `m${s}`), { seed: s, ...shape, perturb: { from: base, scale: 0.5 } }));
const sources: SourceModels = {};
for (const p of [base, ...models]) sources[p] = loadSourceModel(p);
/**
 * For TIES, a second fine-tune whose task vector is half the first's: with thousands of elements
 * some weighted sums of random task vectors lie within a finite-difference step of zero, their
 * elected sign flips inside the step and the loss jumps; proportional task vectors never tie.
 */
const half = join(root, 'half');
cpSync(models[0]!, half, { recursive: true });
{
  const ta = new PsCodec({ method: getMethod('task_arithmetic'), base, models: [models[0]!], layers: 2, layersPerGroup: 2, filters: [], evolve: { weight: [0, 1] }, fixed: {}, seed: 0 });
  const { tensors } = mergeToMemory(ta.decode([0.5]), sources);
  writeSafetensors(join(half, 'model.safetensors'), [...tensors].map(([name, data]) => ({ name, dtype: 'F32' as const, shape: sources[base]!.tensors[name]!.shape, data })));
  sources[half] = loadSourceModel(half);
}
let s = 5;
const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
const items: CausalLmItems = { kind: 'causal-lm', id: 'lm', sequences: Array.from({ length: 4 }, () => Array.from({ length: 9 }, () => Math.floor(rnd() * 32))), from: [3, 3, 3, 3] };

/** The loss by the production merge and the evaluators' forward (LlamaModel.tokenLogProbs). */
async function evaluatorLoss(codec: PsCodec, genome: number[]): Promise<number> {
  const { tensors, configFrom } = mergeToMemory(codec.decode(genome), sources);
  const lm = LlamaModel.load(parseLlamaConfig(sources[configFrom]!.config), weightsFromMap(tensors));
  const lps = await lm.tokenLogProbs(items.sequences);
  lm.dispose();
  let sum = 0;
  let count = 0;
  lps.forEach((lp, b) => {
    for (let t = items.from[b]!; t < items.sequences[b]!.length; t++) {
      sum -= lp[t - 1]!;
      count++;
    }
  });
  return sum / count;
}

for (const method of ['task_arithmetic', 'ties']) {
  test(`tiny Llama, ${method}: the causal-LM loss gradient of two genes equals a central finite difference of the evaluator's forward`, async () => {
    await useBackend('cpu');
    const codec = new PsCodec({ method: getMethod(method), base, models: method === 'ties' ? [models[0]!, half] : models, layers: 2, layersPerGroup: 1, filters: ['mlp'], evolve: method === 'ties' ? ['weight'] : ['weight', 'lambda'], fixed: method === 'ties' ? { density: 0.6 } : {}, seed: 3 });
    const genome = Array.from({ length: codec.dimension }, (_, i) => 0.35 + 0.3 * ((i * 5) % 7) / 7);
    const { loss, gradient } = await coefficientGradient({ codec, genome, sources: { models: sources }, evaluators: [items], loss: 'supervised' });
    assert.ok(Math.abs(loss - (await evaluatorLoss(codec, genome))) < 1e-4, 'the loss matches the evaluator forward');
    const h = 1e-2;
    for (const i of [1, codec.dimension - 1]) {
      const up = genome.slice();
      const down = genome.slice();
      up[i]! += h;
      down[i]! -= h;
      const fd = ((await evaluatorLoss(codec, up)) - (await evaluatorLoss(codec, down))) / (2 * h);
      assert.ok(Math.abs(gradient[i]! - fd) <= 5e-3 * Math.abs(fd) + 1e-4, `${codec.geneNames()[i]}: autodiff ${gradient[i]} vs finite difference ${fd}`);
    }
  });
}

test('tiny Llama: the entropy loss runs and gives a finite gradient', async () => {
  await useBackend('cpu');
  const codec = new PsCodec({ method: getMethod('task_arithmetic'), base, models, layers: 2, layersPerGroup: 2, filters: [], evolve: ['weight'], fixed: {}, seed: 3 });
  const { loss, gradient } = await coefficientGradient({ codec, genome: [0.4, 0.6], sources: { models: sources }, evaluators: [items], loss: 'entropy' });
  assert.ok(loss > 0 && loss <= Math.log(32) + 1e-6);
  assert.ok(gradient.every(Number.isFinite) && gradient.some((g) => g !== 0));
});

test('a Llama gradient leaves no tensor behind on the backend', async () => {
  await useBackend('cpu');
  const { tf } = await import('../src/models/backend.ts');
  const codec = new PsCodec({ method: getMethod('task_arithmetic'), base, models, layers: 2, layersPerGroup: 2, filters: [], evolve: ['weight'], fixed: {}, seed: 3 });
  await coefficientGradient({ codec, genome: [0.4, 0.6], sources: { models: sources }, evaluators: [items], loss: 'supervised' });
  const before = tf.memory().numTensors;
  await coefficientGradient({ codec, genome: [0.4, 0.6], sources: { models: sources }, evaluators: [items], loss: 'supervised', batch: 2 });
  assert.equal(tf.memory().numTensors, before);
});
