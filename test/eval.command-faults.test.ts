import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseManifest } from '../src/eval/manifest.ts';
import { createEvaluator } from '../src/eval/evaluator.ts';
import { writeTemporaryModel } from '../src/eval/materialize.ts';
import { runProgram } from '../src/eval/command.ts';

test('a command evaluator runs its program in a temporary folder of its own, removed afterwards, and gets the model folder that is deleted after', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'evomerge-cmdwork-'));
  try {
    writeFileSync(join(dir, 'probe.mjs'), [
      "import { writeFileSync, existsSync } from 'node:fs';",
      "writeFileSync('scratch.txt', 'x');", // a file written beside itself lands in its own folder
      'console.log(JSON.stringify({ score: 1, where: process.cwd(), model: existsSync(process.argv[2] + "/config.json") }));',
    ].join('\n'));
    const m = parseManifest({ version: 1, kind: 'command', split: 'validation', command: [process.execPath, '{manifest_dir}/probe.mjs', '{model}'], metric: { name: 'score', direction: 'maximize' } }, join(dir, 'cmd.yaml'));
    const model = writeTemporaryModel({ config: { architectures: ['X'] }, tensors: [{ name: 'w', shape: [2], data: new Float32Array([1, 2]) }], parent: dir });
    const original = process.cwd();
    const r = await createEvaluator(m, { purpose: 'eval' }).evaluate(null, { backend: null, modelDir: () => model.dir });
    assert.equal(r.fitness, 1);
    model.cleanup();
    assert.ok(!existsSync(model.dir), 'the candidate folder is gone');
    // the evaluator keeps only numbers from the output: ask runProgram itself where the program ran
    const out = JSON.parse((await runProgram([process.execPath, join(dir, 'probe.mjs'), dir], { timeoutMs: 30_000 })).stdout) as { where: string };
    const where = out.where;
    assert.ok(where.startsWith(join(tmpdir(), 'evomerge-command-')), where);
    assert.notEqual(where, original);
    assert.ok(!existsSync(where), 'its working folder was removed');
    assert.ok(!existsSync(join(original, 'scratch.txt')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
