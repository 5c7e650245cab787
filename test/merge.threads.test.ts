import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTinyLlama } from '../src/zoo/index.ts';
import { parseRecipe } from '../src/recipe/index.ts';
import { mergeThreads, planRecipe, SourceSet, taskPeakBytes, THREAD_OVERHEAD_BYTES } from '../src/merge/index.ts';
import { mergeToDisk, mergeToDiskThreaded } from '../src/report/merge-folder.ts';

let root: string;
const families: Record<'BF16' | 'F16' | 'F32', { base: string; models: string[] }> = {} as never;

before(() => {
  root = mkdtempSync(join(tmpdir(), 'evomerge-threads-'));
  for (const dtype of ['BF16', 'F16', 'F32'] as const) {
    // hidden 96: the MLP tensors (18432 elements) pass the WebAssembly chunk; shards of 40 kB: several files
    const shape = { layers: 3, hidden: 96, heads: 4, vocab: 700, dtype, tokenizer: { version: '1.0', model: { type: 'WordLevel' } } };
    const base = makeTinyLlama(join(root, dtype, 'base'), { seed: 1, ...shape });
    const models = [2, 3, 4, 5, 6].map((s) => makeTinyLlama(join(root, dtype, `m${s}`), { seed: s, ...shape, perturb: { from: base, scale: 0.05 } }));
    families[dtype] = { base, models };
  }
});
after(() => rmSync(root, { recursive: true, force: true }));

function filesOf(dir: string): Map<string, Buffer> {
  return new Map(readdirSync(dir).sort().map((f) => [f, readFileSync(join(dir, f))]));
}

const recipes = (f: { base: string; models: string[] }) => ({
  dare_ties: parseRecipe({ method: 'dare_ties', base: f.base, sources: f.models.map((model, j) => ({ model, parameters: { weight: 0.2 + 0.1 * j, density: [0.3, 0.9] } })), seed: 5 }),
  dare_linear: parseRecipe({ method: 'dare_linear', base: f.base, sources: f.models.slice(0, 3).map((model, j) => ({ model, parameters: { weight: 0.5, density: 0.4 + 0.2 * j } })), seed: 6 }),
  ties: parseRecipe({ method: 'ties', base: f.base, sources: f.models.slice(0, 2).map((model) => ({ model, parameters: { weight: 0.7, density: 0.5 } })), parameters: { normalize: true } }),
  task_arithmetic: parseRecipe({ method: 'task_arithmetic', base: f.base, sources: f.models.slice(0, 3).map((model) => ({ model, parameters: { weight: 0.4 } })) }),
  linear: parseRecipe({ method: 'linear', sources: f.models.slice(0, 2).map((model, j) => ({ model, parameters: { weight: 1 + j } })) }),
});

for (const dtype of ['BF16', 'F16', 'F32'] as const) {
  test(`a merge of ${dtype} sources on three threads writes the files of the single-thread merge, byte for byte`, async () => {
    const all = recipes(families[dtype]);
    // every method over BF16 (the bench's dtype); the DARE half path and a float32 path for the others
    const ids = dtype === 'BF16' ? Object.keys(all) : dtype === 'F16' ? ['dare_ties', 'task_arithmetic'] : ['dare_linear', 'ties'];
    for (const [id, recipe] of Object.entries(all).filter(([k]) => ids.includes(k))) {
      const one = join(root, 'out', dtype, `${id}-1`);
      const three = join(root, 'out', dtype, `${id}-3`);
      const r1 = mergeToDisk(recipe, one, { maxShardBytes: 40_000 });
      const r = await mergeToDiskThreaded(recipe, three, { maxShardBytes: 40_000, threads: 3 });
      assert.equal(r.threads, 3, `${id}: three threads merged`);
      assert.equal(r.bytesWritten, r1.bytesWritten, `${id}: the bytes written are counted alike`);
      const a = filesOf(one);
      const b = filesOf(three);
      assert.ok(a.size > 4, `${id}: several shards`);
      assert.deepEqual([...b.keys()], [...a.keys()], `${dtype} ${id}: the same files`);
      for (const [f, bytes] of a) assert.ok(bytes.equals(b.get(f)!), `${dtype} ${id}: ${f} differs`);
    }
  });
}

test('the memory budget bounds the threads: one task\'s peak per thread', async () => {
  const f = families.BF16;
  const recipe = recipes(f).dare_ties;
  const sources = new SourceSet();
  let peak: number;
  try {
    peak = taskPeakBytes(planRecipe(recipe, sources), sources);
  } finally {
    sources.close();
  }
  // the largest task: the embedding, 700 x 96; DARE over BF16 keeps its float32 output and one mask byte per element and 4 models
  assert.equal(peak, 700 * 96 * 4 + 2 * 700 * 96);
  const fp32 = new SourceSet();
  try {
    assert.equal(taskPeakBytes(planRecipe(recipes(families.F32).dare_ties, fp32), fp32), 700 * 96 * 4 * (1 + 6 + 5), 'float32 sources: output, base and models, and as many task vectors');
  } finally {
    fp32.close();
  }
  assert.equal(mergeThreads(8, 3 * (peak + THREAD_OVERHEAD_BYTES), peak), 3);
  assert.equal(mergeThreads(2, 3 * (peak + THREAD_OVERHEAD_BYTES), peak), 2);
  assert.equal(mergeThreads(8, 10, peak), 1, 'at least one thread');
  const r = await mergeToDiskThreaded(recipe, join(root, 'out', 'budget'), { threads: 4, maxMemory: 2 * (peak + THREAD_OVERHEAD_BYTES) + 1 });
  assert.equal(r.threads, 2);
  const single = await mergeToDiskThreaded(recipe, join(root, 'out', 'budget-1'), { threads: 4, maxMemory: 1 });
  assert.equal(single.threads, 1);
  const small = await mergeToDiskThreaded(recipe, join(root, 'out', 'default'));
  assert.equal(small.threads, 1, 'a merge this small stays on one thread unless threads are asked for');
});
