import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseManifest } from '../src/eval/manifest.ts';
import { createEvaluator } from '../src/eval/evaluator.ts';

function manifest(dir: string, script: string, extra: Record<string, unknown> = {}) {
  writeFileSync(join(dir, 'score.mjs'), script);
  return parseManifest({
    version: 1, kind: 'command', split: 'validation', limit: 7,
    command: [process.execPath, '{manifest_dir}/score.mjs', '{model}', 'a b; echo injected', '{limit}'],
    metric: { name: 'result.score', direction: 'maximize' }, ...extra,
  }, join(dir, 'cmd.yaml'));
}

test('a command evaluator passes arguments without a shell and reads its score from JSON on stdout', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'evomerge-cmd-'));
  try {
    const m = manifest(dir, 'console.error("noise on stderr");\nconsole.log("progress text");\nconsole.log(JSON.stringify({ result: { score: 0.25 }, argv: process.argv.slice(2), samples: 7, loss: 1.5 }));\n');
    const ev = createEvaluator(m, { purpose: 'search' });
    assert.equal(ev.needsModel, false);
    const r = await ev.evaluate(null, { backend: null, modelDir: () => '/models/cand 1' });
    assert.equal(r.fitness, 0.25);
    assert.equal(r.metrics['result.score'], 0.25);
    assert.equal(r.metrics.loss, 1.5);
    assert.equal(r.samples, 7);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the program sees each argument intact, spaces and semicolons included', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'evomerge-cmd-'));
  try {
    const m = manifest(dir, 'const a = process.argv.slice(2); console.log(JSON.stringify({ result: { score: a.length === 3 && a[0] === "/models/cand 1" && a[1] === "a b; echo injected" && a[2] === "7" ? 1 : 0 } }));\n');
    const r = await createEvaluator(m, { purpose: 'eval' }).evaluate(null, { backend: null, modelDir: () => '/models/cand 1' });
    assert.equal(r.fitness, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a command that exits non-zero, prints no JSON, lacks the metric or runs past its timeout fails with a clear code', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'evomerge-cmd-'));
  try {
    const ctx = { backend: null, modelDir: () => dir };
    await assert.rejects(createEvaluator(manifest(dir, 'console.error("boom"); process.exit(3);\n'), { purpose: 'eval' }).evaluate(null, ctx), (e: Error & { code?: string }) => e.code === 'E_EVAL_COMMAND_EXIT' && /exited with 3: boom/.test(e.message));
    await assert.rejects(createEvaluator(manifest(dir, 'console.log("done");\n'), { purpose: 'eval' }).evaluate(null, ctx), { code: 'E_EVAL_COMMAND_OUTPUT' });
    await assert.rejects(createEvaluator(manifest(dir, 'console.log(JSON.stringify({ other: 1 }));\n'), { purpose: 'eval' }).evaluate(null, ctx), /no finite number at 'result\.score'/);
    const slow = manifest(dir, 'setTimeout(() => console.log("{}"), 10000);\n', { timeout_s: 0.3 });
    const t0 = Date.now();
    await assert.rejects(createEvaluator(slow, { purpose: 'eval' }).evaluate(null, ctx), { code: 'E_EVAL_COMMAND_TIMEOUT' });
    assert.ok(Date.now() - t0 < 5000);
    const missing = parseManifest({ version: 1, kind: 'command', split: 'validation', command: ['/nonexistent/program'], metric: { name: 's', direction: 'maximize' } }, join(dir, 'x.yaml'));
    await assert.rejects(createEvaluator(missing, { purpose: 'eval' }).evaluate(null, ctx), { code: 'E_EVAL_COMMAND_START' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an in-memory candidate is written as a folder a command evaluator can read, with the base tokenizer, and removed after', async () => {
  const { writeTemporaryModel } = await import('../src/eval/materialize.ts');
  const { makeTinyLlama } = await import('../src/zoo/tiny.ts');
  const { charTokenizerJson } = await import('../src/models/tokenizer.ts');
  const { openCheckpoint } = await import('../src/checkpoint/index.ts');
  const { existsSync } = await import('node:fs');
  const root = mkdtempSync(join(tmpdir(), 'evomerge-cmd-'));
  try {
    const base = makeTinyLlama(join(root, 'base'), { seed: 1, vocab: 20, tokenizer: charTokenizerJson('0123456789') });
    const ck = openCheckpoint(base);
    const tensors = ck.names().map((name) => ({ name, shape: ck.info(name).shape, data: ck.readFloat32(name).map((v) => v * 2) }));
    const config = ck.config!;
    ck.close();
    const tmpModel = writeTemporaryModel({ config, tensors, tokenizerFrom: base, parent: root });
    const m = manifest(root, 'const fs = await import("node:fs"); const d = process.argv[2]; console.log(JSON.stringify({ result: { score: fs.existsSync(d + "/tokenizer.json") && fs.existsSync(d + "/config.json") ? 1 : 0 } }));\n');
    const r = await createEvaluator(m, { purpose: 'eval' }).evaluate(null, { backend: null, modelDir: () => tmpModel.dir });
    assert.equal(r.fitness, 1);
    const back = openCheckpoint(tmpModel.dir);
    assert.deepEqual(Array.from(back.readFloat32(tensors[0]!.name)), Array.from(tensors[0]!.data));
    back.close();
    tmpModel.cleanup();
    assert.ok(!existsSync(tmpModel.dir));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
