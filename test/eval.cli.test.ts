import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTinyLlama } from '../src/zoo/tiny.ts';
import { charTokenizerJson } from '../src/models/tokenizer.ts';
import { useBackend } from '../src/models/backend.ts';
import { loadModel } from '../src/models/load.ts';
import type { CausalLM } from '../src/models/llama.ts';

const bin = fileURLToPath(new URL('../src/cli/bin.mjs', import.meta.url));

function cli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, EVOMERGE_DEBUG: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

test('evomerge eval --perplexity --json reports the loss the library computes, the backend and the token count', async () => {
  const root = mkdtempSync(join(tmpdir(), 'evomerge-evalcli-'));
  try {
    const dir = makeTinyLlama(join(root, 'tiny'), { seed: 2, vocab: 24, hidden: 16, heads: 2, layers: 1, intermediate: 16, tokenizer: charTokenizerJson('0123456789+-= \n') });
    const text = '12+7=19\n40-8=32\n';
    writeFileSync(join(root, 'text.txt'), text);
    const [r, manifestRun, bad] = await Promise.all([
      cli(['eval', dir, '--perplexity', join(root, 'text.txt'), '--backend', 'cpu', '--json']),
      cli(['eval', dir, '--evaluator', 'evaluators/arith-choice.yaml', '--backend', 'wasm', '--json']),
      cli(['eval', dir, '--evaluator', join(root, 'missing.yaml')]),
    ]);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { metrics: { loss: number; tokens: number }; backend: string; samples: number; seconds: number };
    assert.equal(out.backend, 'cpu');
    assert.equal(out.metrics.tokens, text.length, 'BOS plus one token per character, every one after the first predicted');
    await useBackend('cpu');
    const { model } = loadModel(dir);
    const lm = model as CausalLM;
    const lp = (await lm.tokenLogProbs([lm.tokenizer!.encode(text)]))[0]!;
    const loss = -lp.reduce((a, b) => a + b, 0) / lp.length;
    lm.dispose();
    assert.ok(Math.abs(out.metrics.loss - loss) < 1e-6);
    assert.ok(out.seconds > 0);

    assert.equal(manifestRun.status, 0, manifestRun.stderr);
    const m = JSON.parse(manifestRun.stdout) as { metrics: { acc: number; acc_norm: number }; backend: string; samples: number };
    assert.equal(m.backend, 'wasm');
    assert.equal(m.samples, 100);
    assert.ok(m.metrics.acc >= 0 && m.metrics.acc <= 1);

    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /missing\.yaml.*\[E_EVAL_MANIFEST\]/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
