import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend } from '../src/models/backend.ts';
import { getMethod } from '../src/methods/index.ts';
import { PsCodec } from '../src/space/ps.ts';
import { mergeToMemory } from '../src/candidate/build.ts';
import { coefficientGradient, refineTensorNames, type RefineItems } from '../src/refine/index.ts';
import type { ResidualMlpConfigJson } from '../src/models/mlp.ts';
import { tempDir } from './helpers/tmp.ts';
import { mlpFamily, mlpJson, plainLogits, plainLoss, randomItems } from './helpers/refine.ts';

// two heads, as a zoo's model has one per task; an evaluator set that scores only some of them
const json: ResidualMlpConfigJson = { ...mlpJson, heads: [{ name: 'cls', num_classes: 3 }, { name: 'aux', num_classes: 4 }] };
const fam = mlpFamily(tempDir('evomerge-refine-heads-'), 3, 0.3, json);
const clsData = randomItems(20, 6, 3, 11);
const auxData = randomItems(20, 6, 4, 12);

function codecFor(filters: string[], keep: Array<{ filter: string; owner: number }> = []): PsCodec {
  return new PsCodec({ method: getMethod('task_arithmetic'), base: fam.base, models: fam.models, layers: 2, layersPerGroup: 1, filters, evolve: ['weight', 'lambda'], fixed: {}, seed: 5, keep });
}

/** The loss on one head by the production merge and an independent float64 forward. */
function plainLossAt(codec: PsCodec, genome: number[], head: string, data: { x: Float32Array; y: Int32Array }): number {
  const { tensors } = mergeToMemory(codec.decode(genome), fam.sources);
  return plainLoss(plainLogits(tensors, data.x, 20, json, head), data.y);
}

/** Autodiff against central finite differences, gene by gene; returns the genes' names with their gradient. */
async function compare(codec: PsCodec, head: string, data: { x: Float32Array; y: Int32Array }): Promise<Map<string, { grad: number; fd: number }>> {
  await useBackend('cpu');
  const items: RefineItems[] = [{ kind: 'classification', id: head, x: data.x, y: data.y, n: 20, d: 6, head }];
  const genome = Array.from({ length: codec.dimension }, (_, i) => 0.25 + 0.5 * ((i * 29) % 13) / 13);
  const { loss, gradient } = await coefficientGradient({ codec, genome, sources: { models: fam.sources }, evaluators: items, loss: 'supervised' });
  assert.ok(Math.abs(loss - plainLossAt(codec, genome, head, data)) < 1e-4 * Math.max(1, loss), 'the loss matches the production merge');
  const h = 1e-3;
  const out = new Map<string, { grad: number; fd: number }>();
  codec.geneNames().forEach((name, i) => {
    const up = genome.slice();
    const down = genome.slice();
    up[i]! += h;
    down[i]! -= h;
    const fd = (plainLossAt(codec, up, head, data) - plainLossAt(codec, down, head, data)) / (2 * h);
    assert.ok(Math.abs(gradient[i]! - fd) / Math.max(Math.abs(fd), 1e-3) < 2e-3, `${name}: autodiff ${gradient[i]} vs finite difference ${fd}`);
    out.set(name, { grad: gradient[i]!, fd });
  });
  return out;
}

test('the loss reads the heads its evaluators score and no other', () => {
  const items = (head: string): RefineItems[] => [{ kind: 'classification', id: head, x: clsData.x, y: clsData.y, n: 20, d: 6, head }];
  const config = fam.sources[fam.base]!.config;
  const names = refineTensorNames(config, 'config.json', items('aux'));
  assert.ok(names.includes('heads.aux.weight') && names.includes('heads.aux.bias') && names.includes('blocks.1.fc2.weight'));
  assert.ok(!names.some((n) => n.startsWith('heads.cls.')));
  assert.ok(refineTensorNames(config, 'config.json', [...items('aux'), ...items('cls')]).includes('heads.cls.weight'));
});

test('an evaluator on one head of two: the coefficient gradient matches central finite differences, and genes that move only the unscored head get exactly 0', async () => {
  const grads = await compare(codecFor(['fc1', 'heads.aux']), 'cls', clsData);
  const aux = [...grads].filter(([n]) => n.includes(' / heads.aux / '));
  assert.ok(aux.length > 0, 'some genes move heads.aux');
  for (const [n, g] of aux) {
    assert.equal(g.grad, 0, `${n}: the loss does not read heads.aux`);
    assert.equal(g.fd, 0, `${n}: and moving it does not change the loss`);
  }
  const moving = [...grads].filter(([, g]) => Math.abs(g.fd) > 1e-4);
  assert.ok(moving.length >= grads.size / 2, `most genes move the loss (${moving.length} of ${grads.size})`);
});

test('an evaluator on the second head with the first kept from one model (a zoo\'s per-task heads): the gradient matches central finite differences', async () => {
  const grads = await compare(codecFor(['fc1'], [{ filter: 'heads.cls.', owner: 1 }]), 'aux', auxData);
  assert.ok([...grads.values()].filter((g) => Math.abs(g.fd) > 1e-4).length >= grads.size / 2, 'most genes move the loss');
});
