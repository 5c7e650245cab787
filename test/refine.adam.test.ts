import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { useBackend } from '../src/models/backend.ts';
import { getMethod } from '../src/methods/index.ts';
import { PsCodec } from '../src/space/ps.ts';
import { parseResidualMlpConfig, residualMlpTensorShapes, type ResidualMlpConfigJson } from '../src/models/mlp.ts';
import { loadSourceModel, type SourceModels } from '../src/candidate/sources.ts';
import { adamStep, coefficientGradient, initRefine, type RefineItems } from '../src/refine/index.ts';
import { tempDir } from './helpers/tmp.ts';
import { randomItems, writeMlp } from './helpers/refine.ts';

test('adamStep is pure, clamps to [0,1], and its state round-trips through JSON to the same next step', () => {
  const s0 = initRefine([0.5, 0.99, 0.01], { lr: 0.1 });
  const frozen = JSON.stringify(s0);
  const s1 = adamStep(s0, [1, -1, 1]);
  assert.equal(JSON.stringify(s0), frozen, 'the input state is unchanged');
  assert.equal(s1.step, 1);
  assert.ok(Math.abs(s1.genome[0]! - 0.4) < 1e-9, 'the first Adam step moves each gene by lr against its gradient sign');
  assert.equal(s1.genome[1], 1);
  assert.equal(s1.genome[2], 0);
  const again = JSON.parse(JSON.stringify(s1));
  assert.deepEqual(adamStep(again, [0.3, 0.2, -0.1]), adamStep(s1, [0.3, 0.2, -0.1]));
  assert.throws(() => adamStep(s1, [1, 2]), /gradient has 2 entries/);
  assert.throws(() => adamStep(s1, [NaN, 0, 0]), /non-finite/);
});

/**
 * Two specialists on two tasks whose best merge is known: both heads read one shared trunk; the
 * base's weights are zero on the rows each specialist learned, each specialist carries only its
 * own rows (disjoint task vectors), so weight 1 for both reproduces both specialists at once.
 */
test('a few Adam steps on the supervised loss move both weights toward 1 and lower the loss', async () => {
  await useBackend('cpu');
  const json: ResidualMlpConfigJson = { architectures: ['EvomergeResidualMLP'], input_size: 4, hidden_size: 4, num_blocks: 1, activation: 'tanh', norm: 'none', heads: [{ name: 'a', num_classes: 2 }, { name: 'b', num_classes: 2 }] };
  const shapes = residualMlpTensorShapes(parseResidualMlpConfig(json));
  const root = tempDir('evomerge-refine-adam-');
  const zero = new Map(shapes.map(({ name, shape }) => [name, new Float32Array(shape.reduce((p, q) => p * q, 1))]));
  const eye = zero.get('input.weight')!;
  for (let i = 0; i < 4; i++) eye[i * 4 + i] = 1;
  const head = (name: string, feature: number) => {
    const w = zero.get(`heads.${name}.weight`)!;
    return (m: Map<string, Float32Array>, s: number) => {
      const v = w.slice();
      v[0 * 4 + feature] = -3 * s;
      v[1 * 4 + feature] = 3 * s;
      m.set(`heads.${name}.weight`, v);
    };
  };
  const mk = (sa: number, sb: number) => {
    const m = new Map([...zero].map(([n, v]) => [n, v.slice()]));
    head('a', 0)(m, sa);
    head('b', 1)(m, sb);
    return m;
  };
  const base = writeMlp(join(root, 'base'), mk(0, 0), json);
  const spA = writeMlp(join(root, 'a'), mk(1, 0), json);
  const spB = writeMlp(join(root, 'b'), mk(0, 1), json);
  const sources: SourceModels = {};
  for (const p of [base, spA, spB]) sources[p] = loadSourceModel(p);
  const { x } = randomItems(64, 4, 2, 11);
  const ya = Int32Array.from({ length: 64 }, (_, r) => (x[r * 4]! > 0 ? 1 : 0));
  const yb = Int32Array.from({ length: 64 }, (_, r) => (x[r * 4 + 1]! > 0 ? 1 : 0));
  const items: RefineItems[] = [
    { kind: 'classification', id: 'a', x, y: ya, n: 64, d: 4, head: 'a' },
    { kind: 'classification', id: 'b', x, y: yb, n: 64, d: 4, head: 'b' },
  ];
  const codec = new PsCodec({ method: getMethod('task_arithmetic'), base, models: [spA, spB], layers: 1, layersPerGroup: 1, filters: [], evolve: { weight: [0, 2] }, fixed: {}, seed: 1 });
  let state = initRefine([0.1, 0.1], { lr: 0.05 });
  const first = await coefficientGradient({ codec, genome: state.genome, sources: { models: sources }, evaluators: items, loss: 'supervised' });
  let last = first.loss;
  for (let step = 0; step < 8; step++) {
    const { loss, gradient } = await coefficientGradient({ codec, genome: state.genome, sources: { models: sources }, evaluators: items, loss: 'supervised', batch: 48, seed: step });
    last = loss;
    state = adamStep(state, gradient);
  }
  const end = await coefficientGradient({ codec, genome: state.genome, sources: { models: sources }, evaluators: items, loss: 'supervised' });
  assert.ok(end.loss < first.loss - 0.1, `loss fell from ${first.loss} to ${end.loss} (last batch ${last})`);
  assert.ok(state.genome.every((g) => g > 0.4), `both weights grew toward 1 (gene 0.5): ${state.genome}`);
});
