/**
 * The PyTorch causal-LM command evaluator (evaluators/scripts/causal_lm_torch.py) on a tiny
 * Llama family: its cross-entropy against evomerge's own Llama forward (src/models/llama.ts),
 * and its autograd gradient, chained to the merge coefficients, against central finite
 * differences of its loss through evomerge's merge.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getMethod } from '../src/methods/index.ts';
import { PsCodec } from '../src/space/ps.ts';
import { parseManifest } from '../src/eval/manifest.ts';
import { CommandEvaluator } from '../src/eval/command.ts';
import { useBackend } from '../src/models/backend.ts';
import { loadModel } from '../src/models/load.ts';
import { LlamaModel } from '../src/models/llama.ts';
import { loadSourceModel, type SourceModels } from '../src/candidate/sources.ts';
import { commandCoefficientGradient } from '../src/refine/command.ts';
import { makeTinyLlama } from '../src/zoo/tiny.ts';
import { tempDir } from './helpers/tmp.ts';
import { PYTHON } from './helpers/numpy.ts';

const SCRIPT = fileURLToPath(new URL('../evaluators/scripts/causal_lm_torch.py', import.meta.url));
const root = tempDir('evomerge-refine-torch-');
const T = 10;
const WINDOWS = 4;
const tokens = Array.from({ length: WINDOWS * T + 3 }, (_, i) => (i * 7 + (i % 5) * 3) % 32);
const tokenFile = join(root, 'tokens.json');
writeFileSync(tokenFile, JSON.stringify(tokens));

const shape = { hidden: 16, heads: 4, kvHeads: 2, layers: 2, vocab: 32 };
const base = makeTinyLlama(join(root, 'base'), { ...shape, seed: 0 });
const models = [1, 2].map((s) => makeTinyLlama(join(root, `m${s}`), { ...shape, seed: s }));
const sources: SourceModels = {};
for (const p of [base, ...models]) sources[p] = loadSourceModel(p);

let ev: CommandEvaluator | null = null;
after(async () => {
  await ev?.close();
});

function requireTorch(): void {
  const r = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`the PyTorch evaluator test needs Python with torch and numpy at ${PYTHON} (Debian: apt-get install python3-torch python3-numpy; or set EVOMERGE_PYTHON): ${r.error?.message ?? r.stderr.trim()}`);
}

function torchEvaluator(): CommandEvaluator {
  const m = parseManifest({
    version: 1, kind: 'command', split: 'validation', persistent: true, gradient: true, subset: { form: 'range', items: WINDOWS }, timeout_s: 120, startup_timeout_s: 120,
    command: [PYTHON, SCRIPT, '--serve', '--tokens', tokenFile, '--context', String(T), '--batch-size', '3', '--dtype', 'float64'],
    metric: { name: 'nll', direction: 'minimize' },
  }, join(root, 'torch.yaml'));
  if (m.kind !== 'command') throw new Error('not a command manifest');
  return (ev ??= new CommandEvaluator(m));
}

test('the PyTorch evaluator\'s cross-entropy of a Llama folder equals evomerge\'s own forward, and its window sums add up', async () => {
  requireTorch();
  await useBackend('cpu');
  const e = torchEvaluator();
  const r = await e.evaluate(null, { backend: null, modelDir: () => models[0]! });
  const model = loadModel(models[0]!).model as LlamaModel;
  const windows = Array.from({ length: WINDOWS }, (_, w) => tokens.slice(w * T, (w + 1) * T));
  const logits = await model.logits(windows);
  model.dispose();
  let total = 0;
  logits.forEach((l, w) => {
    let nll = 0;
    for (let t = 0; t + 1 < T; t++) {
      const row = Array.from(l.subarray(t * 32, (t + 1) * 32));
      const mx = Math.max(...row);
      nll += mx + Math.log(row.reduce((s, v) => s + Math.exp(v - mx), 0)) - row[windows[w]![t + 1]!]!;
    }
    total += nll / (T - 1);
  });
  assert.ok(Math.abs(r.metrics.nll! - total / WINDOWS) < 1e-4, `torch ${r.metrics.nll} vs evomerge ${total / WINDOWS}`);
  assert.equal(r.fitness, -r.metrics.nll!);
  const a = await e.scoreSubset({ backend: null, modelDir: () => models[0]! }, { from: 0, to: 1 });
  const b = await e.scoreSubset({ backend: null, modelDir: () => models[0]! }, { from: 1, to: WINDOWS });
  assert.ok(Math.abs((a.primary.sum + b.primary.sum) / WINDOWS - r.metrics.nll!) < 1e-6);
});

test('coefficient gradients from the PyTorch evaluator\'s autograd match central finite differences of its loss through the merge', async () => {
  requireTorch();
  const e = torchEvaluator();
  const codec = new PsCodec({ method: getMethod('task_arithmetic'), base, models, layers: 2, layersPerGroup: 1, filters: ['mlp'], evolve: ['weight', 'lambda'], fixed: {}, seed: 3 });
  const evaluators = [{ id: 'torch', weight: 1, ev: e }];
  const at = (genome: number[]) => commandCoefficientGradient({ codec, genome, sources, evaluators, loss: 'supervised', step: 0 });
  const genome = Array.from({ length: codec.dimension }, (_, i) => 0.25 + 0.5 * ((i * 37) % 11) / 11);
  const { gradient } = await at(genome);
  const h = 1e-3;
  let nonzero = 0;
  for (let i = 0; i < codec.dimension; i++) {
    const up = genome.slice();
    const down = genome.slice();
    up[i]! += h;
    down[i]! -= h;
    const fd = ((await at(up)).loss - (await at(down)).loss) / (2 * h);
    // the merged tensors are written as float32: their rounding moves the loss by about 1e-8, 1e-5 in a difference over 2h
    assert.ok(Math.abs(gradient[i]! - fd) < 2e-3 * Math.abs(fd) + 2e-5, `${codec.geneNames()[i]}: chained ${gradient[i]} vs finite difference ${fd}`);
    if (Math.abs(fd) > 1e-3) nonzero++;
  }
  assert.ok(nonzero >= 2, `several genes move the loss (${nonzero})`);
});
