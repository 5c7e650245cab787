import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers/tmp.ts';

const bin = new URL('../src/cli/bin.mjs', import.meta.url).pathname;
const dir = tempDir();

function evomerge(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, EVOMERGE_DEBUG: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('evomerge --help lists the commands and exits 0', () => {
  const r = evomerge('--help');
  assert.equal(r.code, 0);
  for (const cmd of ['inspect', 'zoo', 'bench']) assert.match(r.stdout, new RegExp(`\\b${cmd}\\b`));
});

test('zoo build tiny then inspect --json gives format, tensors, parameters and layers', () => {
  const zoo = join(dir, 'zoo');
  const built = evomerge('zoo', 'build', 'tiny', '-o', zoo, '--seed', '3');
  assert.equal(built.code, 0, built.stderr);
  const r = evomerge('inspect', join(zoo, 'base'), '--json');
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.format, 'hf-folder');
  assert.equal(report.layers.count, 4);
  assert.ok(report.tensors.some((t: { name: string; dtype: string; shape: number[] }) => t.name === 'model.norm.weight' && t.dtype === 'F32' && t.shape[0] === 32));
  assert.equal(report.parameters, report.tensors.reduce((s: number, t: { shape: number[] }) => s + t.shape.reduce((a, b) => a * b, 1), 0));
  const lora = JSON.parse(evomerge('inspect', join(zoo, 'lora'), '--json').stdout);
  assert.equal(lora.format, 'lora-adapter');
  assert.equal(lora.lora.r, 4);
});

test('bad input prints one line naming the file and the code, exits 2, and shows the stack only with --debug', () => {
  const bad = join(dir, 'bad.safetensors');
  writeFileSync(bad, Buffer.from([1, 0, 0, 0, 0, 0, 0, 0, 0x7b]));
  const r = evomerge('inspect', bad);
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /bad\.safetensors.*\[E_ST_HEADER_JSON\]/);
  const d = evomerge('--debug', 'inspect', bad);
  assert.equal(d.code, 2);
  assert.match(d.stderr, /at .*safetensors\.ts/);
});

test('an unknown command or zoo is a usage error with exit 2', () => {
  assert.equal(evomerge('frobnicate').code, 2);
  const r = evomerge('zoo', 'build', 'nope', '-o', join(dir, 'x'));
  assert.equal(r.code, 2);
  assert.match(r.stderr, /no zoo named 'nope'; available: tiny/);
});
