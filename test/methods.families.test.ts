import { test } from 'node:test';
import assert from 'node:assert/strict';
import { close, run } from './helpers/methods.ts';

const H = Math.SQRT1_2;

test('linear returns the normalised weighted sum, and one weight 1 returns that model', () => {
  close(run('linear', { models: [[1, 2], [3, 4]], perModel: [{ weight: 1 }, { weight: 3 }] }), [2.5, 3.5]);
  close(run('linear', { models: [[1, 2], [3, 4]], perModel: [{ weight: 1 }, { weight: 3 }], global: { normalize: false } }), [10, 14]);
  assert.deepEqual(run('linear', { models: [[1.5, -2]], perModel: [{ weight: 1 }] }), Float32Array.from([1.5, -2]));
  assert.throws(() => run('linear', { models: [[1], [2]], perModel: [{ weight: 1 }, { weight: -1 }] }), { code: 'E_LINEAR_ZERO_WEIGHTS' });
});

test('slerp at t=0 returns the base, at t=1 the other model, and follows the arc between', () => {
  assert.deepEqual(run('slerp', { base: [1, 0], models: [[0, 1]], global: { t: 0 } }), Float32Array.from([1, 0]));
  close(run('slerp', { base: [1, 0], models: [[0, 1]], global: { t: 1 } }), [0, 1]);
  close(run('slerp', { base: [1, 0], models: [[0, 1]], global: { t: 0.5 } }), [H, H]);
  // t = 1/3 on a quarter arc: angle pi/6
  close(run('slerp', { base: [2, 0], models: [[0, 2]], global: { t: 1 / 3 } }), [2 * Math.cos(Math.PI / 6), 2 * Math.sin(Math.PI / 6)]);
});

test('slerp falls back to lerp for nearly colinear tensors', () => {
  close(run('slerp', { base: [1, 0], models: [[3, 0.001]], global: { t: 0.5 } }), [2, 0.0005]);
});

test('nuslerp derives t from the weights and works per row when not flattened', () => {
  close(run('nuslerp', { models: [[1, 0], [0, 1]], perModel: [{ weight: 1 }, { weight: 1 }] }), [H, H]);
  const rows = run('nuslerp', { models: [[1, 0, 1, 0], [0, 1, 2, 0]], shape: [2, 2], perModel: [{ weight: 1 }, { weight: 1 }], global: { nuslerp_flatten: false } });
  close(rows, [H, H, 1.5, 0]);
  // column-wise: columns [1,1]/[0,2] (colinear after normalising? no: [1,1] vs [0,2] at 45 degrees)
  const cols = run('nuslerp', { models: [[1, 0, 1, 0], [0, 1, 2, 0]], shape: [2, 2], perModel: [{ weight: 1 }, { weight: 3 }], global: { nuslerp_flatten: false, nuslerp_row_wise: true } });
  const th = Math.PI / 4;
  const s0 = Math.sin(0.25 * th) / Math.sin(th);
  const s1 = Math.sin(0.75 * th) / Math.sin(th);
  // column 0: v0 [1,1], v1 [0,2]; column 1: v0 [0,0], v1 [1,0] (zero vector: cos 0, theta pi/2)
  const t0 = Math.sin(0.25 * Math.PI / 2);
  const t1 = Math.sin(0.75 * Math.PI / 2);
  close(cols, [s0 * 1 + s1 * 0, t0 * 0 + t1 * 1, s0 * 1 + s1 * 2, 0]);
});

test('nuslerp with a base interpolates the task vectors', () => {
  close(run('nuslerp', { base: [1, 1], models: [[2, 1], [1, 2]], perModel: [{ weight: 1 }, { weight: 1 }] }), [1 + H, 1 + H]);
});

test('multislerp of two orthogonal vectors of norm 2 is the arc midpoint of norm 2', () => {
  close(run('multislerp', { models: [[2, 0], [0, 2]], perModel: [{ weight: 1 }, { weight: 1 }] }), [2 * H, 2 * H], 1e-6);
  close(run('multislerp', { base: [1, 1], models: [[3, 1], [1, 3]], perModel: [{ weight: 1 }, { weight: 1 }] }), [1 + 2 * H, 1 + 2 * H], 1e-6);
});

test('multislerp falls back to lerp for two antipodal vectors', () => {
  close(run('multislerp', { models: [[1, 0], [-1, 0]], perModel: [{ weight: 1 }, { weight: 1 }] }), [0, 0]);
  assert.throws(() => run('multislerp', { models: [[1, 0], [-1, 0], [0, 0]], perModel: [{ weight: 1 }, { weight: 1 }, { weight: 0 }] }), { code: 'E_MULTISLERP_ANTIPODAL' });
});

test('karcher mean of orthogonal directions is the bisector scaled by the mean norm', () => {
  close(run('karcher', { models: [[3, 0], [0, 1]] }), [2 * H, 2 * H], 1e-6);
  // three directions at 0, 60 and 120 degrees: the Karcher mean is at 60 degrees
  const r = run('karcher', { models: [[1, 0], [0.5, Math.sqrt(3) / 2], [-0.5, Math.sqrt(3) / 2]], global: { max_iter: 100, tol: 1e-9 } });
  close(r, [0.5, Math.sqrt(3) / 2], 1e-5);
});

test('model_stock interpolates toward the average by N cos / (1 + (N - 1) cos)', () => {
  close(run('model_stock', { base: [0, 0], models: [[1, 0], [0, 1]] }), [0, 0]);
  close(run('model_stock', { base: [0, 0], models: [[1, 1], [1, 1]] }), [1, 1]);
  const c = H;
  const t = (2 * c) / (1 + c);
  close(run('model_stock', { base: [0, 0], models: [[1, 0], [1, 1]] }), [t, t * 0.5]);
  // filter_wise: row 0 orthogonal (t = 0), row 1 identical (t = 1)
  close(run('model_stock', { base: [0, 0, 0, 0], models: [[1, 0, 2, 2], [0, 1, 2, 2]], shape: [2, 2], global: { filter_wise: true } }), [0, 0, 2, 2]);
});

test('nearswap takes the other model where it is within t of the base', () => {
  close(run('nearswap', { base: [0, 0, 0], models: [[0.5, 0.001, -2]], global: { t: 0.01 } }), [0.01, 0.001, -0.01]);
});

test('arcee_fusion keeps the deltas whose importance reaches median + 1.5 IQR', () => {
  close(run('arcee_fusion', { base: [0, 0, 0, 0], models: [[0, 0.1, 0.2, 3]] }), [0, 0, 0, 3]);
});

test('passthrough copies the tensor and applies an optional per-model scale, as mergekit declares it', () => {
  close(run('passthrough', { models: [[1, -2]] }), [1, -2]);
  close(run('passthrough', { models: [[1, -2]], perModel: [{ scale: 0.5 }] }), [0.5, -1]);
});

test('sce mergekit variant merges only the selected positions with variance-based weights', () => {
  close(run('sce', { base: [0, 0], models: [[1, -1], [3, 1]] }), [16 / 6, 1]);
  close(run('sce', { base: [0, 0, 0], models: [[1, -1, 0], [3, 1, 0]], global: { select_topk: 0.5 } }), [2.8, 0, 0]);
});

test('sce fusechat variant uses the selection only for the weights', () => {
  close(run('sce', { base: [0, 0, 0], models: [[1, -1, 0], [3, 1, 0]], global: { select_topk: 0.5, sce_variant: 'fusechat' } }), [2.8, 1, 0]);
});

test('varm weights each model by its mean squared change from the pivot', () => {
  close(run('varm', { base: [0, 0], models: [[1, 1], [2, 0]] }), [5 / 3, 1 / 3]);
});

test('lora_linear adds w (alpha/r) B A to the base and lorahub multiplies the summed factors', () => {
  const f1 = { a: Float32Array.from([1, 2]), b: Float32Array.from([1, 0]), rank: 1, scale: 0.5, outFeatures: 2, inFeatures: 2 };
  const f2 = { a: Float32Array.from([0, 1]), b: Float32Array.from([1, 1]), rank: 1, scale: 0.5, outFeatures: 2, inFeatures: 2 };
  const o = { base: [1, 1, 1, 1], models: [], shape: [2, 2], perModel: [{ weight: 2 }, { weight: 1 }], lora: [f1, f2] };
  // 2 * 0.5 * [[1,2],[0,0]] + 1 * 0.5 * [[0,1],[0,1]]
  close(run('lora_linear', o), [2, 3.5, 1, 1.5]);
  // A = 2[1,2] + [0,1] = [2,5]; B = 2[1,0] + [1,1] = [3,1]; 0.5 * B A = [[3,7.5],[1,2.5]]
  close(run('lorahub', o), [4, 8.5, 2, 3.5]);
});
