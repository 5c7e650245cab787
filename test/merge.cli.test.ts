import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTinyLlama } from '../src/zoo/index.ts';

const bin = new URL('../src/cli/bin.mjs', import.meta.url).pathname;

test('evomerge merge writes a folder from mergekit YAML and refuses bad input with exit code 2', () => {
  const root = mkdtempSync(join(tmpdir(), 'evomerge-cli-'));
  try {
    const base = makeTinyLlama(join(root, 'base'), { seed: 1 });
    const other = makeTinyLlama(join(root, 'other'), { seed: 2, perturb: { from: base, scale: 0.1 } });
    const cfg = join(root, 'slerp.yml');
    writeFileSync(cfg, `merge_method: slerp\nbase_model: ${base}\nmodels:\n  - model: ${base}\n  - model: ${other}\nparameters:\n  t:\n    - filter: self_attn\n      value: [0, 0.5, 1]\n    - value: 0.5\n`);
    const ok = spawnSync(process.execPath, [bin, 'merge', cfg, '-o', join(root, 'out'), '--out-dtype', 'bf16', '--shard-size', '1KB', '--json'], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    assert.ok(JSON.parse(ok.stdout).tensors > 5);
    assert.ok(existsSync(join(root, 'out', 'model.safetensors.index.json')), 'sharded at 1KB');
    writeFileSync(cfg, `merge_method: slerp\nbase_model: ${base}\nmodels:\n  - model: ${other}\nparameters:\n  t: 0.5\n  tt: 1\n`);
    const bad = spawnSync(process.execPath, [bin, 'merge', cfg, '-o', join(root, 'bad')], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /parameter 'tt' \(did you mean 't'\?\).*\[E_PARAM_UNKNOWN\]/);
    assert.ok(!existsSync(join(root, 'bad')));
    // a parameter slerp does not read (mergekit's tests give every model a weight): one warning line, then the merge
    writeFileSync(cfg, `merge_method: slerp\nbase_model: ${base}\nmodels:\n  - model: ${base}\n    parameters: { weight: 0.6 }\n  - model: ${other}\n    parameters: { weight: 0.4 }\nparameters:\n  t: 0.35\n`);
    const warned = spawnSync(process.execPath, [bin, 'merge', cfg, '-o', join(root, 'warned'), '--no-progress'], { encoding: 'utf8' });
    assert.equal(warned.status, 0, warned.stderr);
    assert.deepEqual(warned.stderr.trim().split('\n').filter((l) => l.startsWith('evomerge: warning:')).length, 1, warned.stderr);
    assert.match(warned.stderr, /^evomerge: warning: .*slerp does not read 'weight' in sources\[0\].*sources\[1\].*ignored, as mergekit ignores it/m);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
