import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend } from '../src/models/backend.ts';
import { getMethod } from '../src/methods/index.ts';
import { PsCodec } from '../src/space/ps.ts';
import { mergeToMemory } from '../src/candidate/build.ts';
import { coefficientGradient, type RefineItems } from '../src/refine/index.ts';
import { tempDir } from './helpers/tmp.ts';
import { mlpFamily, plainLogits, plainLoss, randomItems } from './helpers/refine.ts';

const fam = mlpFamily(tempDir('evomerge-refine-'), 2, 0.3);
const data = randomItems(24, 6, 3, 7);
const items: RefineItems[] = [{ kind: 'classification', id: 'val', x: data.x, y: data.y, n: 24, d: 6 }];

function codecFor(method: string, evolve: string[], fixed: Record<string, number | boolean> = {}): PsCodec {
  return new PsCodec({ method: getMethod(method), base: fam.base, models: fam.models, layers: 2, layersPerGroup: 1, filters: ['fc1'], evolve, fixed, seed: 3 });
}

/** The loss by the production merge (the method's own kernels) and an independent float64 forward. */
function plainLossAt(codec: PsCodec, genome: number[], labels: boolean): number {
  const { tensors } = mergeToMemory(codec.decode(genome), fam.sources);
  return plainLoss(plainLogits(tensors, data.x, 24), labels ? data.y : null);
}

/**
 * The largest change of any merged element between two genomes. A sign election whose weighted sum
 * is within the step of zero flips between them and the loss jumps: the finite difference is then
 * not the fixed-mask derivative, so the checks below first assert that no element jumps.
 */
function largestJump(codec: PsCodec, a: number[], b: number[]): number {
  const x = mergeToMemory(codec.decode(a), fam.sources).tensors;
  const y = mergeToMemory(codec.decode(b), fam.sources).tensors;
  let mx = 0;
  for (const [n, v] of x) v.forEach((t, i) => (mx = Math.max(mx, Math.abs(t - y.get(n)![i]!))));
  return mx;
}

async function checkAgainstFiniteDifference(codec: PsCodec, loss: 'supervised' | 'entropy', zeroGenes: (name: string) => boolean = () => false, offset = 0) {
  await useBackend('cpu');
  const genome = Array.from({ length: codec.dimension }, (_, i) => 0.3 + 0.4 * ((i * 37 + offset) % 11) / 11);
  const { loss: value, gradient } = await coefficientGradient({ codec, genome, sources: { models: fam.sources }, evaluators: items, loss });
  assert.ok(Math.abs(value - plainLossAt(codec, genome, loss === 'supervised')) < 1e-4 * Math.max(1, Math.abs(value)), 'the loss matches the production merge');
  const h = 1e-3;
  const names = codec.geneNames();
  let nonzero = 0;
  for (let i = 0; i < codec.dimension; i++) {
    if (zeroGenes(names[i]!)) {
      assert.equal(gradient[i], 0, `${names[i]} has gradient 0 (masks fixed)`);
      continue;
    }
    const up = genome.slice();
    const down = genome.slice();
    up[i]! += h;
    down[i]! -= h;
    assert.ok(largestJump(codec, up, down) < 10 * h, `${names[i]}: no sign election flips inside the step (pick another genome)`);
    const fd = (plainLossAt(codec, up, loss === 'supervised') - plainLossAt(codec, down, loss === 'supervised')) / (2 * h);
    const scale = Math.max(Math.abs(fd), 1e-3);
    assert.ok(Math.abs(gradient[i]! - fd) / scale < 2e-3, `${names[i]}: autodiff ${gradient[i]} vs finite difference ${fd}`);
    if (Math.abs(fd) > 1e-4) nonzero++;
  }
  assert.ok(nonzero >= codec.dimension / 2, 'most genes move the loss');
}

test('task arithmetic: the gradient w.r.t. weight and lambda genes equals a central finite difference of an independent forward', async () => {
  await checkAgainstFiniteDifference(codecFor('task_arithmetic', ['weight', 'lambda']), 'supervised');
});

test('task arithmetic with normalize: the divisor sum of weights is differentiated too', async () => {
  await checkAgainstFiniteDifference(codecFor('task_arithmetic', ['weight'], { normalize: true }), 'supervised');
});

test('TIES: with trim and sign masks fixed, weight and lambda gradients match finite differences and density genes get 0', async () => {
  await checkAgainstFiniteDifference(codecFor('ties', ['weight', 'density', 'lambda']), 'supervised', (n) => n.endsWith('/ density'));
});

test('DARE TIES: fixed seeded drop masks, gradient matches finite differences', async () => {
  await checkAgainstFiniteDifference(codecFor('dare_ties', ['weight'], { density: 0.7 }), 'supervised', () => false, 3);
});

test('linear: gradient matches finite differences', async () => {
  await checkAgainstFiniteDifference(codecFor('linear', ['weight']), 'supervised');
});

test('the entropy loss (AdaMerging) on unlabelled inputs: gradient matches finite differences', async () => {
  await checkAgainstFiniteDifference(codecFor('task_arithmetic', ['weight', 'lambda']), 'entropy');
});

test('a method that is not refinable is refused, naming the method', async () => {
  await assert.rejects(coefficientGradient({ codec: codecFor('breadcrumbs', ['weight']), genome: [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], sources: { models: fam.sources }, evaluators: items, loss: 'supervised' }), /breadcrumbs/);
});

test('a gradient leaves no tensor behind on the backend', async () => {
  await useBackend('cpu');
  const { tf } = await import('../src/models/backend.ts');
  const codec = codecFor('ties', ['weight', 'lambda']);
  const genome = Array.from({ length: codec.dimension }, () => 0.5);
  await coefficientGradient({ codec, genome, sources: { models: fam.sources }, evaluators: items, loss: 'supervised' });
  const before = tf.memory().numTensors;
  await coefficientGradient({ codec, genome, sources: { models: fam.sources }, evaluators: items, loss: 'entropy', batch: 8, seed: 2 });
  assert.equal(tf.memory().numTensors, before);
});
