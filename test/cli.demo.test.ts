import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers/tmp.ts';

const bin = new URL('../src/cli/bin.mjs', import.meta.url).pathname;

test('evomerge demo --small builds the zoo, prints the baselines, evolves a merge and compares it on the test split', () => {
  const cwd = tempDir();
  const r = spawnSync(process.execPath, [bin, 'demo', '--small', '--budget', '8', '--json'], { cwd, encoding: 'utf8', timeout: 240_000 });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.run, 'demo-small');
  assert.ok(existsSync(join(cwd, 'runs', 'zoo', 'vision-small', 'zoo.json')));
  assert.ok(existsSync(join(cwd, 'runs', 'demo-small', 'run.sqlite')));
  assert.deepEqual(out.baselines.tasks.map((t: { name: string }) => t.name), ['digits', 'permuted', 'inverted']);
  assert.ok(out.baselines.rows.length >= 12, 'base, three specialists and eight fixed recipes');
  assert.match(out.evolved.label, /^evolved \(demo-small, candidate \d+\)$/);
  for (const t of ['digits', 'permuted', 'inverted']) assert.ok(out.evolved.scores[t] > 0.1 && out.evolved.scores[t] <= 1);
  assert.ok(existsSync(out.report), `the demo ends by writing the report (${out.report})`);
  // a second run reuses the zoo and the run
  const again = spawnSync(process.execPath, [bin, 'demo', '--small', '--budget', '8'], { cwd, encoding: 'utf8', timeout: 240_000 });
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /exists .* resuming it/);
  assert.match(again.stdout, /evolved merge: mean normalised/);
});
