import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parameterSeries } from '../src/report/index.ts';
import type { RunRow } from '../src/store/index.ts';

test('the parameters chart shows evolved parameters only, not kept tensors or fixed values', () => {
  const run = {
    id: 1, name: 'r', seed: 0, status: 'finished', codeVersion: 'x', fingerprints: {}, spacePath: null, createdAt: '', updatedAt: '',
    space: { space: { ps: { evolve: { weight: [0, 1] }, fixed: { lambda: 1 } } }, keep: { 'heads.a.': 'a' }, base: '/base', models: [{ name: 'a', path: '/a' }, { name: 'b', path: '/b' }], evaluators: [] },
  } as unknown as RunRow;
  const pinned = (owner: boolean, gene: number) => [{ filter: 'heads.a.', value: owner ? 1 : 0 }, { value: gene }];
  const recipe = {
    version: 1, method: 'task_arithmetic', base: '/base', seed: 0, parameters: { lambda: 1 },
    slices: [0, 1].map((g) => ({
      base_model: '/base',
      parameters: { lambda: [{ filter: 'heads.a.', value: 1 }] },
      sources: [
        { model: '/base', layer_range: [g, g + 1] },
        { model: '/a', layer_range: [g, g + 1], parameters: { weight: pinned(true, 0.25 + g), density: [{ filter: 'heads.a.', value: 1 }] } },
        { model: '/b', layer_range: [g, g + 1], parameters: { weight: pinned(false, 0.5), density: [{ filter: 'heads.a.', value: 1 }] } },
      ],
    })),
  };
  const { groups, series } = parameterSeries(run, recipe as never);
  assert.deepEqual(groups, ['layer 0', 'layer 1']);
  assert.deepEqual(series.map((s) => [s.label, s.values]), [['a weight', [0.25, 1.25]], ['b weight', [0.5, 0.5]]]);
});
