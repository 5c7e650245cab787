import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluateSetting, resolveTensorParams } from '../src/recipe/index.ts';
import { getMethod } from '../src/methods/index.ts';

test('a scalar applies everywhere', () => {
  assert.equal(evaluateSetting(0.3, 'model.layers.4.mlp.up_proj.weight', 0.7), 0.3);
});

test('a numeric gradient interpolates over the position in the slice', () => {
  assert.equal(evaluateSetting([0, 1], 'x', 0), 0);
  assert.equal(evaluateSetting([0, 1], 'x', 1), 1);
  assert.ok(Math.abs((evaluateSetting([0, 0.5, 1, 0], 'x', 0.5) as number) - 0.75) < 1e-12); // 1.5 -> between 0.5 and 1
  assert.equal(evaluateSetting([2, 4, 8], 'x', 0.75), 6); // scaled 1.5 -> halfway between 4 and 8
});

test('a list of non-numbers picks an item without interpolating', () => {
  assert.equal(evaluateSetting([true, false], 'x', 0.4), true);
  assert.equal(evaluateSetting([true, false], 'x', 1), false);
});

test('conditionals take the first matching filter and fall through when none matches', () => {
  const s = [{ filter: 'self_attn', value: [0, 1] }, { filter: 'mlp', value: 0.5 }];
  assert.equal(evaluateSetting(s, 'model.layers.1.self_attn.q_proj.weight', 1), 1);
  assert.equal(evaluateSetting(s, 'model.layers.1.mlp.up_proj.weight', 1), 0.5);
  assert.equal(evaluateSetting(s, 'model.norm.weight', 0), undefined);
  assert.equal(evaluateSetting([{ filter: '*', value: 2 }], 'anything', 0), 2);
  assert.equal(evaluateSetting([{ value: 3 }], 'anything', 0), 3);
});

test('precedence is source, then slice, then top level, and unmatched conditionals fall through', () => {
  const ties = getMethod('ties');
  const levels = {
    top: { weight: 0.1, density: 0.9, normalize: false },
    slice: { density: [{ filter: 'mlp', value: 0.4 }] },
    models: [{ weight: 0.7 }, undefined],
  };
  const mlp = resolveTensorParams(ties, levels, 'model.layers.0.mlp.up_proj.weight', 0, ['a', 'b']);
  assert.deepEqual(mlp.perModel.map((p) => [p.weight, p.density]), [[0.7, 0.4], [0.1, 0.4]]);
  assert.equal(mlp.global.normalize, false);
  const attn = resolveTensorParams(ties, levels, 'model.layers.0.self_attn.q_proj.weight', 0, ['a', 'b']);
  assert.deepEqual(attn.perModel.map((p) => p.density), [0.9, 0.9]);
});

test('missing required and out-of-range parameters are typed errors naming the tensor', () => {
  const ties = getMethod('ties');
  assert.throws(() => resolveTensorParams(ties, { models: [{}] }, 'model.norm.weight', 0, ['a']), { code: 'E_PARAM_MISSING', message: /model\.norm\.weight/ });
  assert.throws(() => resolveTensorParams(ties, { top: { weight: 1, density: 1.5 }, models: [{}] }, 'w', 0, ['a']), { code: 'E_PARAM_RANGE' });
});
