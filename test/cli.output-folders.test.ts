import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { syntheticRun } from './helpers/report-store.ts';
import { tempDir } from './helpers/tmp.ts';

const bin = new URL('../src/cli/bin.mjs', import.meta.url).pathname;
const { store, ids } = syntheticRun(tempDir());
const db = store.path;
store.close();

function evomerge(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('export without -o writes to export/ beside the run database', () => {
  const out = evomerge('export', 'synthetic', '--db', db, '--format', 'recipe');
  const folder = join(dirname(db), 'export', `candidate-${ids[4]}`);
  assert.equal(out, `candidate ${ids[4]} (fitness 5): ${folder}\n`);
  assert.equal(JSON.parse(readFileSync(join(folder, 'recipe.json'), 'utf8')).method, 'ties');
});

test('report without -o writes to report/ beside the run database', () => {
  const out = evomerge('report', 'synthetic', '--db', db, '--format', 'html', '--no-baselines');
  const page = join(dirname(db), 'report', 'index.html');
  assert.match(out, new RegExp(`^report of 'synthetic': ${page} `));
  assert.ok(existsSync(page));
});

test('the help of report and export names the default folders', () => {
  const help = (cmd: string) => evomerge(cmd, '--help').replace(/\s+/g, ' ');
  assert.ok(help('report').includes('-o, --output <dir> output folder (default: report/ beside the run database, runs/<run>/report for a run in runs/)'), help('report'));
  assert.ok(help('export').includes('(default: export/ beside the run database, runs/<run>/export for a run in runs/)'), help('export'));
});
