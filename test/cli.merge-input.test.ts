import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTinyLlama } from '../src/zoo/index.ts';
import { tempDir } from './helpers/tmp.ts';

const bin = new URL('../src/cli/bin.mjs', import.meta.url).pathname;
const dir = tempDir();
const model = makeTinyLlama(join(dir, 'model'), { seed: 1 });

/** `evomerge merge <input> -o ...`: exit 2, one printable line, nothing written; returns the line. */
function refused(input: string): string {
  const out = join(dir, `out-${Math.random().toString(36).slice(2)}`);
  const r = spawnSync(process.execPath, [bin, 'merge', input, '-o', out], { encoding: 'utf8', env: { ...process.env, EVOMERGE_DEBUG: '' } });
  assert.equal(r.status, 2, r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /^[\x20-\x7e]+$/, 'printable text only, no bytes of the file');
  assert.ok(!existsSync(out));
  return lines[0]!;
}

const EXPECTS = /merge expects a mergekit YAML config \(\.yaml\/\.yml\) or an evomerge recipe \(\.json, e\.g\. recipe\.json from evomerge export\)/;

test('merge given a safetensors checkpoint says what it is and what merge expects, in one line, exit 2', () => {
  const line = refused(join(model, 'model.safetensors'));
  assert.match(line, /model\.safetensors is a safetensors checkpoint, not a merge config \(a model: list it under the config's models\); /);
  assert.match(line, EXPECTS);
  assert.match(line, /\[E_RECIPE_NOT_CONFIG\]$/);
});

test('merge given a model folder or another binary file says so', () => {
  assert.match(refused(model), new RegExp(`^evomerge: ${model} is a folder \\(a model checkpoint: list it under the config's models\\); ${EXPECTS.source}.*\\[E_RECIPE_NOT_CONFIG\\]$`));
  const blob = join(dir, 'blob.yaml');
  writeFileSync(blob, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0, 0xff, 0xfe]));
  assert.match(refused(blob), /blob\.yaml is a binary file, not a merge config; merge expects/);
  const latin1 = join(dir, 'latin1.yaml');
  writeFileSync(latin1, Buffer.from('merge_method: linear # caf\xe9\n', 'latin1'));
  assert.match(refused(latin1), /latin1\.yaml is a binary file \(not UTF-8 text\), not a merge config/);
});

test('a YAML syntax error is one line with its position, and a YAML scalar is not taken for a config', () => {
  const broken = join(dir, 'broken.yaml');
  writeFileSync(broken, 'merge_method: linear\nmodels: [\n  - model: a\n');
  assert.match(refused(broken), /broken\.yaml: not valid YAML: .* at line \d+, column \d+ \[E_RECIPE_PARSE\]$/);
  const scalar = join(dir, 'scalar.yaml');
  writeFileSync(scalar, 'just some words\n');
  assert.match(refused(scalar), /scalar\.yaml holds a string, not a merge config; merge expects/);
});
