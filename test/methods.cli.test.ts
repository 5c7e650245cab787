import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { runMergeBench } from '../src/bench/merge.ts';

const bin = new URL('../src/cli/bin.mjs', import.meta.url).pathname;

test('evomerge methods --json lists every method with parameters, ranges and defaults', () => {
  const out = JSON.parse(execFileSync(process.execPath, [bin, 'methods', '--json'], { encoding: 'utf8' })) as { methods: Array<{ id: string; params: Array<{ name: string; default: unknown; range?: unknown }> }> };
  const ties = out.methods.find((m) => m.id === 'ties')!;
  assert.deepEqual(ties.params.find((p) => p.name === 'density')!.default, 1);
  assert.deepEqual(ties.params.find((p) => p.name === 'density')!.range, [0, 1]);
  assert.equal(ties.params.find((p) => p.name === 'weight')!.default, 'required');
  assert.ok(out.methods.length >= 21);
});

test('the merge benchmark reports every case beside memcpy', () => {
  const r = runMergeBench({ rows: 64, cols: 64, repeats: 1 });
  assert.deepEqual(r.results.map((x) => x.method), ['linear', 'task_arithmetic', 'ties', 'dare_ties']);
  for (const row of r.results) assert.ok(row.gbPerSecond > 0 && Number.isFinite(row.ratioToMemcpy));
});
