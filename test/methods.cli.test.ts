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

test('evomerge methods prints the range each numeric parameter is searched in, the same bounds the genome uses', async () => {
  const { PsCodec } = await import('../src/space/ps.ts');
  const { getMethod, searchRange } = await import('../src/methods/index.ts');
  const text = execFileSync(process.execPath, [bin, 'methods'], { encoding: 'utf8' });
  const ties = text.slice(text.indexOf('\nties - '), text.indexOf('\n\n', text.indexOf('\nties - ')));
  assert.match(ties, /weight \(per-model, number in \[-inf, inf\], searched in \[0, 1\]; required\)/);
  assert.match(ties, /density \(per-model, number in \[0, 1\], searched in \[0\.1, 1\]; default 1\)/);
  // no declared search range: a finite valid range is searched whole
  assert.match(text, /eps \(global, number in \[0, 1\], searched in \[0, 1\]; default 1e-8\)/);
  // neither finite: the space must give bounds
  assert.match(text, /scale \(per-model, number in \[-inf, inf\], searched only in bounds the space gives; default null\)/);
  assert.doesNotMatch(text.slice(text.indexOf('\nties - ')), /normalize \(global, boolean[^)]*searched/);
  const codec = (evolve: string[]) => new PsCodec({ method: getMethod('ties'), base: '/m/base', models: ['/m/a', '/m/b'], layers: 2, layersPerGroup: 2, filters: [], evolve, fixed: {}, seed: 0 });
  const c = codec(['density']);
  const densities = (g: number) => c.decode(new Array(c.dimension).fill(g)).slices![0]!.sources.filter((s) => s.parameters).map((s) => s.parameters!.density);
  assert.deepEqual(densities(0), [0.1, 0.1]);
  assert.deepEqual(densities(1), [1, 1]);
  assert.deepEqual(searchRange(getMethod('ties').params.find((p) => p.name === 'density')!), [0.1, 1]);
  assert.throws(() => new PsCodec({ method: getMethod('passthrough'), base: null, models: ['/m/a'], layers: 2, layersPerGroup: 2, filters: [], evolve: ['scale'], fixed: {}, seed: 0 }), /'scale' of passthrough has no finite search range.*evolve: \{ scale: \[lo, hi\] \}/);
});
