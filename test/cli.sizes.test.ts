import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatBytes, formatCount } from '../src/format.ts';
import { makeTinyLlama } from '../src/zoo/index.ts';
import { tempDir } from './helpers/tmp.ts';

const bin = new URL('../src/cli/bin.mjs', import.meta.url).pathname;
const dir = tempDir();

function evomerge(...args: string[]): string {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('inspect and merge write sizes and counts with the one formatter', () => {
  const a = makeTinyLlama(join(dir, 'a'), { seed: 1 });
  const b = makeTinyLlama(join(dir, 'b'), { seed: 2 });
  const report = JSON.parse(evomerge('inspect', a, '--json'));
  assert.ok(report.bytes > 1024 && report.parameters > 1000, 'a size with a unit and a count with a suffix');
  assert.match(evomerge('inspect', a), new RegExp(`\\n  parameters  ${formatCount(report.parameters)} \\(${report.parameters.toLocaleString('en-US')}\\), ${formatBytes(report.bytes)}\\n`));
  assert.match(formatBytes(report.bytes), / (KiB|MiB)$/);
  const cfg = join(dir, 'linear.yml');
  writeFileSync(cfg, `merge_method: linear\nmodels:\n  - model: ${a}\n    parameters: { weight: 0.5 }\n  - model: ${b}\n    parameters: { weight: 0.5 }\n`);
  const merged = JSON.parse(evomerge('merge', cfg, '-o', join(dir, 'm1'), '--json'));
  assert.match(evomerge('merge', cfg, '-o', join(dir, 'm2'), '--no-progress'), new RegExp(`^merged ${merged.tensors} tensors \\(${formatBytes(merged.bytesWritten)}\\) into `));
});
