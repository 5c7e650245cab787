import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { useBackend } from '../src/models/backend.ts';
import { getMethod } from '../src/methods/index.ts';
import { LlamaModel, parseLlamaConfig, weightsFromMap } from '../src/models/index.ts';
import { charTokenizerJson } from '../src/models/tokenizer.ts';
import { loadModel } from '../src/models/load.ts';
import type { CausalLM } from '../src/models/llama.ts';
import { parseManifest } from '../src/eval/manifest.ts';
import { createEvaluator } from '../src/eval/evaluator.ts';
import { PsCodec } from '../src/space/ps.ts';
import { mergeToMemory } from '../src/candidate/build.ts';
import { loadSourceModel, type SourceModels } from '../src/candidate/sources.ts';
import { makeTinyLlama } from '../src/zoo/tiny.ts';
import { causalLmItemsFromManifests, coefficientGradient, refineItemsFromSpecs } from '../src/refine/index.ts';
import { tempDir } from './helpers/tmp.ts';

const root = tempDir('evomerge-refine-text-');
const shape = { vocab: 32, hidden: 16, heads: 4, kvHeads: 2, layers: 2, intermediate: 24, tokenizer: charTokenizerJson('0123456789+-=\n abc') };
const base = makeTinyLlama(join(root, 'base'), { seed: 5, ...shape });
const models = [6, 7].map((s) => makeTinyLlama(join(root, `m${s}`), { seed: s, ...shape, perturb: { from: base, scale: 0.3 } }));
const sources: SourceModels = {};
for (const p of [base, ...models]) sources[p] = loadSourceModel(p);
const codec = new PsCodec({ method: getMethod('task_arithmetic'), base, models, layers: 2, layersPerGroup: 1, filters: [], evolve: ['weight'], fixed: {}, seed: 0 });
const genome = [0.3, 0.6, 0.5, 0.4];

test("a perplexity manifest's refine loss is the evaluator's loss metric on the merged model", async () => {
  await useBackend('cpu');
  const m = parseManifest({ version: 1, kind: 'perplexity', family: 'llama', split: 'validation', limit: 5, data: { generator: { name: 'arithmetic' } }, text_field: 'question', metric: { name: 'loss', direction: 'minimize' } }, 'p.yaml');
  const ref = loadModel(base).model as CausalLM;
  const tok = ref.tokenizer!;
  const items = causalLmItemsFromManifests([m], tok, ref.config.maxPositions);
  ref.dispose();
  const { loss, gradient } = await coefficientGradient({ codec, genome, sources: { models: sources }, evaluators: items, loss: 'supervised' });
  const { tensors } = mergeToMemory(codec.decode(genome), sources);
  const lm = LlamaModel.load(parseLlamaConfig(sources[base]!.config), weightsFromMap(tensors), tok);
  const r = await createEvaluator(m, { purpose: 'search' }).evaluate(lm, { backend: null });
  lm.dispose();
  assert.ok(Math.abs(loss - r.metrics.loss!) < 1e-4, `refine ${loss} vs evaluator ${r.metrics.loss}`);
  assert.ok(gradient.every(Number.isFinite) && gradient.some((g) => g !== 0));
});

test('a choice manifest gives one gold sequence per item with its option tokens scored; generate manifests are refused', async () => {
  await useBackend('cpu');
  const choice = parseManifest({
    version: 1, kind: 'choice', family: 'llama', split: 'validation', limit: 6, prompt: '{question}', target_delimiter: '',
    data: { generator: { name: 'arithmetic', seed: 9, count: 6 } }, metric: { name: 'acc', direction: 'maximize' },
  }, 'choice.yaml');
  const ref = loadModel(base).model as CausalLM;
  const tok = ref.tokenizer!;
  const [items] = causalLmItemsFromManifests([choice], tok, ref.config.maxPositions);
  assert.equal(items!.sequences.length, 6);
  items!.sequences.forEach((s, i) => assert.ok(items!.from[i]! >= 1 && items!.from[i]! < s.length));
  const { gradient } = await coefficientGradient({ codec, genome, sources: { models: sources }, evaluators: [items!], loss: 'supervised' });
  assert.ok(gradient.every(Number.isFinite));
  const gen = parseManifest({ version: 1, kind: 'generate', family: 'llama', split: 'validation', limit: 2, prompt: '{question}', target: '{answer}', max_tokens: 4, data: { generator: { name: 'arithmetic', seed: 4, count: 4 } }, metric: { name: 'exact_match', direction: 'maximize' } }, 'gen.yaml');
  assert.throws(() => causalLmItemsFromManifests([gen], tok, ref.config.maxPositions), /generate/);
  ref.dispose();
});

test('refineItemsFromSpecs reads manifest files and tokenizes with the source model\'s tokenizer', async () => {
  await useBackend('cpu');
  const file = join(root, 'p.yaml');
  writeFileSync(file, JSON.stringify({ version: 1, kind: 'perplexity', family: 'llama', split: 'validation', limit: 3, data: { generator: { name: 'arithmetic' } }, text_field: 'question', metric: { name: 'loss', direction: 'minimize' } }));
  const items = refineItemsFromSpecs([{ manifest: file, weight: 2 }], sources, base);
  assert.equal(items.length, 1);
  assert.equal(items[0]!.kind, 'causal-lm');
  assert.equal(items[0]!.weight, 2);
  const ref = loadModel(base).model as CausalLM;
  const direct = causalLmItemsFromManifests([parseManifest(JSON.parse(readFileSync(file, 'utf8')), file)], ref.tokenizer!, ref.config.maxPositions);
  ref.dispose();
  assert.deepEqual((items[0] as { sequences: number[][] }).sequences, (direct[0] as { sequences: number[][] }).sequences);
});
