import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadSearchSpace, parseSearchSpace } from '../src/space/index.ts';
import { getMethod } from '../src/methods/index.ts';
import { getOptimizer } from '../src/optim/index.ts';

const dir = new URL('../search-spaces/', import.meta.url).pathname;

test('every shipped search space is valid and names a real method and optimizer', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  for (const f of ['vision-ps.yaml', 'vision-dfs.yaml', 'lang-math-ps.yaml', 'lang-math-dfs.yaml', 'lang-math-hybrid.yaml', 'hf-example.yaml']) assert.ok(files.includes(f), f);
  for (const f of files) {
    const s = loadSearchSpace(join(dir, f));
    if (s.ps) for (const m of [s.ps.method].flat()) getMethod(m);
    getOptimizer(s.optimizer.id);
    if (s.zoo) assert.match(s.zoo, /^runs\/zoo\//, `${f}: zoo paths default to runs/zoo/<name>`);
  }
});

test('a wrong search space is refused naming the file and the field', () => {
  assert.throws(() => parseSearchSpace('zoo: runs/zoo/vision\nmode: ps\n', 'x.yaml'), /x\.yaml: field 'ps': mode 'ps' needs a ps section/);
  assert.throws(() => parseSearchSpace('zoo: z\nmode: ps\nps: { method: ties, evolve: [weight], wieght: 1 }\n', 'y.yaml'), /field 'ps': .*wieght/);
  assert.throws(() => parseSearchSpace('models: [{ name: a, path: p }]\nmode: ps\nps: { method: ties, evolve: [weight] }\n', 'z.yaml'), /evaluators/);
  assert.throws(() => parseSearchSpace('zoo: [', 'w.yaml'), /w\.yaml: not valid YAML/);
});
