import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { tempDir } from './helpers/tmp.ts';
import { cmaesRun } from './helpers/cmaes-run.ts';

const bin = new URL('../src/cli/bin.mjs', import.meta.url).pathname;
const pipes = new URL('../src/cli/pipes.ts', import.meta.url).pathname;

/**
 * Run a command with stdout on a pipe whose reader goes away: at once (`after: 'start'`), or
 * after the first chunk it reads, as `| head -1` does. Resolves with the exit code, stderr and
 * how many bytes were read.
 */
function withClosedReader(args: string[], after: 'start' | 'first-chunk'): Promise<{ code: number | null; signal: string | null; stderr: string; read: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, EVOMERGE_DEBUG: '' } });
    let stderr = '';
    let read = 0;
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    if (after === 'start') child.stdout.destroy();
    else child.stdout.once('data', (d: Buffer) => { read += d.length; child.stdout.destroy(); });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stderr, read }));
  });
}

function assertQuiet(r: { code: number | null; signal: string | null; stderr: string }) {
  assert.equal(r.signal, null);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /EPIPE|Error|\n\s+at /, r.stderr);
}

test('methods with its reader gone before it writes ends quietly with exit 0', async () => {
  assertQuiet(await withClosedReader([bin, 'methods'], 'start'));
});

test('lineage --full piped into a reader that stops after its first chunk ends quietly with exit 0', async () => {
  // 2,000 ancestors, about 140 KB of lines: more than a pipe holds, so writes meet the closed pipe
  const { store, db, ids } = cmaesRun(tempDir(), { generations: 401, lambda: 8, mu: 5 });
  store.close();
  const r = await withClosedReader([bin, 'lineage', 'cma', String(ids.at(-1)![0]), '--full', '--db', db], 'first-chunk');
  assert.ok(r.read > 0, 'the reader got a first chunk');
  assertQuiet(r);
});

test('a command that registers onOutputClosed is told which stream closed and ends in its own way, its later writes doing nothing', async () => {
  const script = `
    import { watchPipes, onOutputClosed, outputClosed } from ${JSON.stringify(pipes)};
    watchPipes();
    let stop = false;
    const release = onOutputClosed((stream) => { process.stderr.write('closed ' + stream + '\\n'); stop = true; });
    const line = 'x'.repeat(200) + '\\n';
    let batches = 0;
    const tick = () => {
      if (stop || batches++ > 20000) {
        process.stdout.write('after the close\\n', () => {
          process.stderr.write('stopped cleanly; outputClosed ' + outputClosed('stdout') + '\\n');
          release();
          process.exitCode = 3;
        });
        return;
      }
      for (let i = 0; i < 50; i++) process.stdout.write(line);
      setImmediate(tick);
    };
    tick();
  `;
  const r = await withClosedReader(['--import', 'tsx', '--input-type=module', '-e', script], 'first-chunk');
  assert.equal(r.code, 3, `the handler, not the default exit 0, decided: ${r.stderr}`);
  assert.match(r.stderr, /^closed stdout\nstopped cleanly; outputClosed true\n$/);
});
