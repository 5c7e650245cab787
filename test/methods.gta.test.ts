import { test } from 'node:test';
import assert from 'node:assert/strict';
import { close, run } from './helpers/methods.ts';
import { buildRegistry, getMethod, METHOD_LIST } from '../src/methods/index.ts';

const base4 = [1, 1, 1, 1];
const A = [2, -1, 1.5, 4]; // delta [1, -2, 0.5, 3]
const B = [0, 2, 2, 3]; // delta [-1, 1, 1, 2]

test('task_arithmetic adds lambda times the weighted task vectors', () => {
  const out = run('task_arithmetic', { base: [1, 2], models: [[2, 2], [1, 4]], perModel: [{ weight: 0.5 }, { weight: 1 }], global: { lambda: 2 } });
  close(out, [2, 6]);
  const norm = run('task_arithmetic', { base: [1, 2], models: [[2, 2], [1, 4]], perModel: [{ weight: 0.5 }, { weight: 1 }], global: { lambda: 2, normalize: true } });
  close(norm, [1 + (2 * 0.5) / 1.5, 2 + (2 * 2) / 1.5]);
});

test('ties trims each delta to its top magnitudes, elects signs and averages the agreeing entries', () => {
  // A keeps -2 and 3; B keeps 2 and, among its tied 1s, the lowest index (-1 at 0)
  const out = run('ties', { base: base4, models: [A, B], perModel: [{ weight: 1, density: 0.5 }, { weight: 1, density: 0.5 }] });
  close(out, [0, -1, 1, 3.5]);
});

test('ties elects the sign on the weighted deltas', () => {
  // deltas A [1, -2], B [-1, 1]; weights 1 and 3: sums [-2, 1] elect [-, +]; B alone agrees in both
  const out = run('ties', { base: [0, 0], models: [[1, -2], [-1, 1]], perModel: [{ weight: 1 }, { weight: 3 }] });
  close(out, [-1, 1]);
});

test('ties without normalize sums the agreeing weighted deltas and a zero sum elects plus', () => {
  const out = run('ties', { base: [0, 0], models: [[1, 0], [-1, 0]], perModel: [{ weight: 1 }, { weight: 1 }], global: { normalize: false } });
  close(out, [1, 0]);
});

test('ties refuses a density that keeps no entry, as mergekit does', () => {
  assert.throws(() => run('ties', { base: [0, 0, 0], models: [[1, 2, 3]], perModel: [{ weight: 1, density: 0.2 }] }), { code: 'E_DENSITY_TOO_LOW' });
});

test('dare_ties at density 1 without rescale equals ties at density 1', () => {
  const pm = [{ weight: 0.7, density: 1 }, { weight: 0.4, density: 1 }];
  const t = run('ties', { base: base4, models: [A, B], perModel: pm });
  const d = run('dare_ties', { base: base4, models: [A, B], perModel: pm, global: { rescale: false, normalize: true } });
  assert.deepEqual(d, t);
});

function randomDelta(n: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648 - 0.5;
  });
}

test('dare_linear keeps about density of the entries and its L1 rescale restores the L1 norm', () => {
  const n = 20000;
  const x = randomDelta(n, 3);
  const out = run('dare_linear', { base: new Array(n).fill(0), models: [x], perModel: [{ weight: 1, density: 0.3 }] });
  let kept = 0;
  let l1 = 0;
  let l1x = 0;
  for (let i = 0; i < n; i++) {
    if (out[i] !== 0) kept++;
    l1 += Math.abs(out[i]!);
    l1x += Math.abs(Math.fround(x[i]!));
  }
  assert.ok(Math.abs(kept / n - 0.3) < 0.02, `kept ${kept / n}`);
  assert.ok(Math.abs(l1 / l1x - 1) < 1e-4);
});

test('dare with rescale_mode inverse divides kept entries by the density (DARE eq. 2)', () => {
  const n = 1000;
  const x = randomDelta(n, 5);
  const out = run('dare_linear', { base: new Array(n).fill(0), models: [x], perModel: [{ weight: 1, density: 0.25 }], global: { rescale_mode: 'inverse' } });
  for (let i = 0; i < n; i++) if (out[i] !== 0) assert.ok(Math.abs(out[i]! - Math.fround(x[i]!) * 4) < 1e-6);
});

test('dare masks depend on seed, tensor name and model index only, in any order', () => {
  const n = 512;
  const x = randomDelta(n, 7);
  const y = randomDelta(n, 8);
  const o = { base: new Array(n).fill(0), models: [x, y], perModel: [{ weight: 1, density: 0.5 }, { weight: 1, density: 0.5 }] };
  const a = run('dare_ties', { ...o, seed: 42, name: 't1' });
  run('dare_ties', { ...o, seed: 42, name: 't2' });
  const b = run('dare_ties', { ...o, seed: 42, name: 't1' });
  assert.deepEqual(a, b);
  assert.notDeepEqual(run('dare_ties', { ...o, seed: 43, name: 't1' }), a);
  assert.notDeepEqual(run('dare_ties', { ...o, seed: 42, name: 't2' }), a);
});

test('breadcrumbs drops the gamma largest and the smallest magnitudes', () => {
  const x = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const out = run('breadcrumbs', { base: new Array(10).fill(0), models: [x], perModel: [{ weight: 1, density: 0.5, gamma: 0.1 }] });
  close(out, [0, 0, 0, 0, 5, 6, 7, 8, 9, 0]);
});

test('breadcrumbs keeps mergekit\'s quirk: no outlier to drop prunes everything', () => {
  const x = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const out = run('breadcrumbs', { base: new Array(10).fill(0), models: [x], perModel: [{ weight: 1, density: 0.5, gamma: 0.01 }] });
  close(out, new Array(10).fill(0));
});

test('breadcrumbs_ties combines the outlier-trimmed deltas by sign election', () => {
  const out = run('breadcrumbs_ties', { base: [0, 0, 0, 0], models: [[1, -2, 3, 4], [-5, -1, 2, 1]], perModel: [{ weight: 1, density: 0.5, gamma: 0.25 }, { weight: 1, density: 0.5, gamma: 0.25 }] });
  // A keeps ascending ranks [1, 3): -2, 3; B: mags [5,1,2,1] ascending 1(idx3),1(idx1),2,5 -> keeps idx1 (-1) and idx2 (2)
  // sums [0, -3, 5, 0] elect [+, -, +, +]; normalize off: idx1 -2 + -1, idx2 3 + 2
  close(out, [0, -3, 5, 0]);
});

test('della keeps larger magnitudes more often and inverse rescale divides by the keep probability', () => {
  const cols = 4000;
  const x = Array.from({ length: cols }, (_, i) => (i + 1) * (i % 2 ? 1 : -1));
  const out = run('della_linear', { base: new Array(cols).fill(0), models: [x], shape: [1, cols], perModel: [{ weight: 1, density: 0.5, epsilon: 0.2 }], global: { rescale_mode: 'inverse' } });
  let lowKept = 0;
  let highKept = 0;
  for (let i = 0; i < cols; i++) {
    if (out[i] === 0) continue;
    const p = 0.3 + (i / (cols - 1)) * 0.4; // rank i + 1 of cols, ascending magnitudes
    assert.ok(Math.abs(out[i]! - x[i]! / p) < 1e-3 * Math.abs(x[i]! / p), `entry ${i}`);
    if (i < cols / 4) lowKept++;
    if (i >= (3 * cols) / 4) highKept++;
  }
  assert.ok(lowKept / (cols / 4) < 0.43 && lowKept / (cols / 4) > 0.27, `low ${lowKept}`);
  assert.ok(highKept / (cols / 4) > 0.57 && highKept / (cols / 4) < 0.73, `high ${highKept}`);
});

test('della refuses density plus or minus epsilon outside (0, 1)', () => {
  assert.throws(() => run('della', { base: [0, 0], models: [[1, 2]], perModel: [{ weight: 1, density: 0.9, epsilon: 0.15 }] }), { code: 'E_DELLA_EPSILON' });
});

test('della applies lambda after normalization', () => {
  const o = { base: [0, 0], models: [[1, 2], [3, 2]], perModel: [{ weight: 1 }, { weight: 1 }] };
  close(run('della', { ...o, global: { lambda: 0.5 } }), [1, 1]);
});

test('the registry lists every method of the issue once and refuses duplicates', () => {
  const ids = METHOD_LIST.map((m) => m.id);
  for (const id of ['task_arithmetic', 'ties', 'dare_ties', 'dare_linear', 'breadcrumbs', 'breadcrumbs_ties', 'della', 'della_linear', 'linear', 'slerp', 'nuslerp', 'multislerp', 'karcher', 'model_stock', 'nearswap', 'arcee_fusion', 'passthrough', 'sce', 'varm', 'lora_linear', 'lorahub']) {
    assert.ok(ids.includes(id), id);
  }
  assert.equal(new Set(ids).size, ids.length);
  assert.throws(() => buildRegistry([getMethod('ties'), getMethod('ties')]), /duplicate id 'ties'/);
  assert.throws(() => getMethod('frankenstein'), { code: 'E_UNKNOWN_METHOD' });
});

test('mergekit defaults per id: normalize and rescale', () => {
  const d = (id: string, p: string) => getMethod(id).params.find((x) => x.name === p)?.default;
  assert.deepEqual(['task_arithmetic', 'ties', 'dare_ties', 'dare_linear', 'breadcrumbs', 'breadcrumbs_ties', 'della', 'della_linear'].map((id) => [d(id, 'normalize'), d(id, 'rescale')]), [
    [false, false], [true, false], [false, true], [false, true], [false, false], [false, false], [true, true], [false, true],
  ]);
});

test('task-vector methods give the same bits when their deltas are computed in place in scratch inputs', async () => {
  const { gtaTuning } = await import('../src/methods/gta.ts');
  const { resolveScope } = await import('../src/methods/index.ts');
  const { Rng } = await import('../src/tensor/rng.ts');
  const saved = gtaTuning.inPlaceMinElements;
  gtaTuning.inPlaceMinElements = 0;
  try {
    const rng = Rng.seeded(5);
    const n = 50_001; // odd, past the WebAssembly chunk size: tails and several chunks
    const base = Float32Array.from({ length: n }, () => rng.normal() * 0.02);
    const models = [0, 1, 2].map(() => Float32Array.from(base, (b) => b + rng.normal() * 0.005));
    for (const id of ['task_arithmetic', 'ties', 'dare_ties', 'dare_linear', 'breadcrumbs', 'breadcrumbs_ties', 'della', 'della_linear']) {
      const m = getMethod(id);
      const g = resolveScope(m, 'global', {}, 'test');
      const pm = models.map((_, j) => resolveScope(m, 'per-model', { weight: 0.3 + 0.2 * j, density: 0.4 + 0.1 * j }, 'test'));
      const input = { name: 'model.layers.0.mlp.up_proj.weight', shape: [n], base, modelIndex: [0, 1, 2] };
      const kept = m.merge({ ...input, models: models.map((x) => x.slice()) }, g, pm, { seed: 9 });
      const scratch = models.map((x) => x.slice());
      const inPlace = m.merge({ ...input, models: scratch, scratchModels: true }, g, pm, { seed: 9 });
      assert.deepEqual(new Uint32Array(inPlace.buffer, inPlace.byteOffset, n), new Uint32Array(kept.buffer, kept.byteOffset, n), id);
      // the in-place path ran: the scratch inputs now hold deltas (task arithmetic needs none)
      if (id !== 'task_arithmetic') assert.notEqual(scratch[0]![7], models[0]![7], `${id} wrote its deltas into the scratch inputs`);
    }
  } finally {
    gtaTuning.inPlaceMinElements = saved;
  }
});
