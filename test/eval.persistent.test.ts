/**
 * The evaluator protocol end to end (src/eval/protocol.ts, src/eval/persistent.ts) with a small
 * Python evaluator (test/helpers/protocol_evaluator.py, numpy only): the hello line, one answer
 * per candidate from one process, and each way a program can fail (a crash, a hang past the
 * timeout, a garbage line, a wrong id, an extra line, an error answer, no hello): that candidate
 * fails with the reason and the next one gets a fresh process; a stop is SIGTERM then SIGKILL,
 * and no process outlives its owner (checked by pid).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseManifest, type CommandManifest } from '../src/eval/manifest.ts';
import { CommandEvaluator } from '../src/eval/command.ts';
import { processAlive } from '../src/eval/children.ts';
import { writeTemporaryModel } from '../src/eval/materialize.ts';
import { PYTHON, requireNumpy } from './helpers/numpy.ts';
import { tempDir } from './helpers/tmp.ts';

const EVALUATOR = fileURLToPath(new URL('./helpers/protocol_evaluator.py', import.meta.url));
const root = tempDir('evomerge-persistent-');
requireNumpy();

const model = writeTemporaryModel({ config: { architectures: ['X'] }, tensors: [{ name: 'w', shape: [4], data: new Float32Array([1, 2, 3, 6]) }], parent: root });

let n = 0;
function evaluator(o: { env?: Record<string, string>; timeout?: number; persistent?: boolean; command?: string[]; base?: string } = {}): { ev: CommandEvaluator; pids: string; log: string } {
  const dir = join(root, `e${++n}`);
  const pids = join(dir, 'pids');
  mkdirSync(pids, { recursive: true });
  const m = parseManifest({
    version: 1, kind: 'command', split: 'validation', limit: 9, persistent: o.persistent ?? true, timeout_s: o.timeout ?? 20, startup_timeout_s: 20,
    command: o.command ?? [PYTHON, EVALUATOR, ...(o.persistent === false ? ['--model', '{model}', '--limit', '{limit}'] : ['--serve']), '--gpu', '{gpu}'],
    env: { EVAL_PID_DIR: pids, ...o.env }, metric: { name: 'score', direction: 'maximize' },
  }, join(dir, 'proto.yaml')) as CommandManifest;
  const log = join(dir, 'proto.log');
  return { ev: new CommandEvaluator(m, { placement: { gpu: '3', base: o.base ?? null }, log, graceMs: 1000 }), pids, log };
}

const ctx = (id: string) => ({ backend: null, modelDir: () => model.dir, requestId: id });
const started = (pids: string) => readdirSync(pids).map(Number).sort((a, b) => a - b);

async function gone(pid: number, ms = 5000): Promise<boolean> {
  for (const t0 = Date.now(); Date.now() - t0 < ms;) {
    if (!processAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !processAlive(pid);
}

test('a persistent evaluator is started once, says hello, answers one request per candidate on its slot\'s GPU, and close stops it', async () => {
  const { ev, pids } = evaluator();
  try {
    const a = await ev.evaluate(null, ctx('1'));
    const b = await ev.evaluate(null, ctx('2'));
    const c = await ev.evaluate(null, ctx('3'));
    assert.equal(a.fitness, 3, 'the mean of the tensor values 1, 2, 3, 6');
    assert.deepEqual([a.metrics.served, b.metrics.served, c.metrics.served], [1, 2, 3], 'one process answered all three');
    assert.equal(new Set([a.metrics.pid, b.metrics.pid, c.metrics.pid]).size, 1);
    assert.equal(a.metrics.cuda, 3, 'CUDA_VISIBLE_DEVICES is the slot\'s GPU');
    assert.equal(a.metrics.gpu_arg, 3, '{gpu} is the slot\'s GPU');
    assert.equal(a.metrics.limit, 9, 'the request carries the manifest\'s limit');
    assert.equal(a.metrics.note, undefined, 'a field that is not a number is ignored');
    assert.equal(started(pids).length, 1);
  } finally {
    await ev.close();
  }
  assert.ok(await gone(started(pids)[0]!), 'closed: the process is gone');
});

test('a crash fails that candidate with its stderr, and the next candidate gets a fresh process', async () => {
  const { ev, pids, log } = evaluator({ env: { EVAL_FAULTS: 'crash@2' } });
  try {
    const a = await ev.evaluate(null, ctx('1'));
    await assert.rejects(ev.evaluate(null, ctx('2')), (e: Error & { code?: string }) => e.code === 'E_EVAL_COMMAND_EXIT' && /exited with 3: .*crashing on purpose/.test(e.message) && e.message.includes(log));
    const c = await ev.evaluate(null, ctx('3'));
    assert.notEqual(c.metrics.pid, a.metrics.pid);
    assert.equal(c.metrics.served, 1);
    assert.ok(await gone(a.metrics.pid!));
  } finally {
    await ev.close();
  }
  for (const pid of started(pids)) assert.ok(await gone(pid));
});

test('a request that hangs past the timeout fails, its process is killed, and the next candidate is scored by a new one', async () => {
  const { ev, pids } = evaluator({ env: { EVAL_FAULTS: 'hang@2' }, timeout: 1.5 });
  try {
    const a = await ev.evaluate(null, ctx('1'));
    const t0 = performance.now();
    await assert.rejects(ev.evaluate(null, ctx('2')), (e: Error & { code?: string }) => e.code === 'E_EVAL_COMMAND_TIMEOUT' && /no answer to request 2 within its timeout of 1.5 s/.test(e.message));
    assert.ok(performance.now() - t0 < 6000);
    assert.ok(await gone(a.metrics.pid!), 'the hung process was killed');
    const c = await ev.evaluate(null, ctx('3'));
    assert.notEqual(c.metrics.pid, a.metrics.pid);
  } finally {
    await ev.close();
  }
  for (const pid of started(pids)) assert.ok(await gone(pid));
});

test('a garbage line, a wrong id or a line nobody asked for break the protocol: that candidate fails and the next gets a fresh process', async () => {
  for (const [fault, message] of [['garbage', /not a JSON object: "this is not json"/], ['wrongid', /answered request 2 with id "somebody-else"/]] as const) {
    const { ev } = evaluator({ env: { EVAL_FAULTS: `${fault}@2` } });
    try {
      const a = await ev.evaluate(null, ctx('1'));
      await assert.rejects(ev.evaluate(null, ctx('2')), (e: Error & { code?: string }) => e.code === 'E_EVAL_PROTOCOL' && message.test(e.message));
      const c = await ev.evaluate(null, ctx('3'));
      assert.notEqual(c.metrics.pid, a.metrics.pid, fault);
      assert.ok(await gone(a.metrics.pid!));
    } finally {
      await ev.close();
    }
  }
  // an extra line after a good answer: that candidate keeps its score, the process is not trusted again
  const { ev } = evaluator({ env: { EVAL_FAULTS: 'extra@1' } });
  try {
    const a = await ev.evaluate(null, ctx('1'));
    assert.equal(a.fitness, 3);
    await new Promise((r) => setTimeout(r, 200));
    const b = await ev.evaluate(null, ctx('2'));
    assert.notEqual(b.metrics.pid, a.metrics.pid);
  } finally {
    await ev.close();
  }
});

test('an error answer fails the candidate with the program\'s reason and keeps the process', async () => {
  const { ev } = evaluator({ env: { EVAL_FAULTS: 'error@2' } });
  try {
    const a = await ev.evaluate(null, ctx('1'));
    await assert.rejects(ev.evaluate(null, ctx('2')), (e: Error & { code?: string }) => e.code === 'E_EVAL_COMMAND_ANSWER' && /reported an error: the task could not be scored/.test(e.message));
    const c = await ev.evaluate(null, ctx('3'));
    assert.equal(c.metrics.pid, a.metrics.pid);
  } finally {
    await ev.close();
  }
});

test('a program that exits before its hello, or prints something else first, or is not there, fails with a clear error', async () => {
  const early = evaluator({ env: { EVAL_FAULTS: 'nohello' } });
  await assert.rejects(early.ev.evaluate(null, ctx('1')), (e: Error & { code?: string }) => e.code === 'E_EVAL_COMMAND_EXIT' && /exited with 4.*failing before the hello line/.test(e.message));
  const chatty = evaluator({ command: [PYTHON, '-c', 'print("loading the model..."); import time; time.sleep(30)'] });
  await assert.rejects(chatty.ev.evaluate(null, ctx('1')), (e: Error & { code?: string }) => e.code === 'E_EVAL_PROTOCOL' && /must first print \{"evomerge_evaluator": 1/.test(e.message) && /loading the model/.test(e.message));
  const future = evaluator({ command: [PYTHON, '-c', 'import json, sys, time; print(json.dumps({"evomerge_evaluator": 99}), flush=True); time.sleep(30)'] });
  await assert.rejects(future.ev.evaluate(null, ctx('1')), /speaks evaluator protocol version 99, this evomerge speaks version 1/);
  const missing = evaluator({ command: [join(root, 'no-such-program')] });
  await assert.rejects(missing.ev.evaluate(null, ctx('1')), { code: 'E_EVAL_COMMAND_START' });
  for (const e of [early, chatty, future]) for (const pid of started(e.pids)) assert.ok(await gone(pid));
});

test('a program that ignores SIGTERM is killed after the grace period', async () => {
  const { ev } = evaluator({ command: [PYTHON, '-c', 'import json, signal, sys\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint(json.dumps({"evomerge_evaluator": 1, "capabilities": []}), flush=True)\nfor line in sys.stdin:\n    r = json.loads(line); print(json.dumps({"id": r["id"], "score": 1, "pid": __import__("os").getpid()}), flush=True)\nimport time\ntime.sleep(60)'] });
  const a = await ev.evaluate(null, ctx('1'));
  const t0 = performance.now();
  await ev.close();
  const waited = performance.now() - t0;
  assert.ok(!processAlive(a.metrics.pid!));
  assert.ok(waited >= 900 && waited < 5000, `stopped after the 1 s grace period (${waited.toFixed(0)} ms)`);
});

test('the one-shot form reads the same answer from its arguments, on its slot\'s GPU', async () => {
  const { ev, pids } = evaluator({ persistent: false });
  const a = await ev.evaluate(null, ctx('1'));
  const b = await ev.evaluate(null, ctx('2'));
  assert.deepEqual([a.fitness, a.metrics.cuda, a.metrics.gpu_arg, a.metrics.limit], [3, 3, 3, 9]);
  assert.notEqual(a.metrics.pid, b.metrics.pid, 'a process per candidate');
  assert.equal(started(pids).length, 2);
});

test('{base} is the slot\'s base checkpoint, and the program starts before the first candidate; without a known base it is the first candidate\'s folder, started at that request', async () => {
  const other = writeTemporaryModel({ config: { architectures: ['X'] }, tensors: [{ name: 'w', shape: [2], data: new Float32Array([10, 20]) }], parent: root });
  const command = [PYTHON, EVALUATOR, '--serve', '--base', '{base}'];
  const known = evaluator({ command, base: other.dir });
  const withBase = known.ev;
  const unknown = evaluator({ command });
  try {
    withBase.prestart();
    for (const t0 = Date.now(); started(known.pids).length === 0 && Date.now() - t0 < 10_000;) await new Promise((r) => setTimeout(r, 20));
    assert.equal(started(known.pids).length, 1, 'a known base: started before any candidate');
    const a = await withBase.evaluate(null, ctx('1'));
    assert.deepEqual([a.metrics.base_mean, a.fitness, a.metrics.served], [15, 3, 1], 'built from the base (mean 15), scored the candidate (mean 3)');
    unknown.ev.prestart();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(started(unknown.pids).length, 0, 'no base known: nothing started before the first candidate');
    const b = await unknown.ev.evaluate(null, ctx('1'));
    assert.deepEqual([b.metrics.base_mean, b.fitness], [3, 3], '{base} is the first candidate\'s folder');
    const c = await unknown.ev.evaluate(null, { backend: null, modelDir: () => other.dir, requestId: '2' });
    assert.deepEqual([c.metrics.base_mean, c.fitness, c.metrics.served], [3, 15, 2], 'the same process for the next candidate');
  } finally {
    await Promise.all([withBase.close(), unknown.ev.close()]);
  }
});

test('a persistent manifest that passes {model} as an argument is refused, naming the request field instead', () => {
  assert.throws(() => parseManifest({ version: 1, kind: 'command', split: 'validation', persistent: true, command: ['x', '{model}'], metric: { name: 's', direction: 'maximize' } }, join(root, 'bad.yaml')),
    (e: Error & { code?: string }) => e.code === 'E_EVAL_MANIFEST' && /persistent evaluator is started once and receives each candidate's folder in its request line/.test(e.message));
});

test('a process that exits without closing its evaluators (process.exit after a second Ctrl-C) takes their programs with it', async () => {
  const dir = join(root, 'exit');
  mkdirSync(join(dir, 'pids'), { recursive: true });
  const script = join(dir, 'owner.mts');
  writeFileSync(script, [
    `import { CommandEvaluator } from ${JSON.stringify(fileURLToPath(new URL('../src/eval/command.ts', import.meta.url)))};`,
    `import { parseManifest } from ${JSON.stringify(fileURLToPath(new URL('../src/eval/manifest.ts', import.meta.url)))};`,
    `const m = parseManifest(${JSON.stringify({ version: 1, kind: 'command', split: 'validation', persistent: true, command: [PYTHON, EVALUATOR, '--serve'], env: { EVAL_PID_DIR: join(dir, 'pids') }, metric: { name: 'score', direction: 'maximize' } })}, ${JSON.stringify(join(dir, 'p.yaml'))});`,
    'const ev = new CommandEvaluator(m);',
    `const r = await ev.evaluate(null, { backend: null, modelDir: () => ${JSON.stringify(model.dir)}, requestId: '1' });`,
    'console.log(r.metrics.pid);',
    'process.exit(130);',
  ].join('\n'));
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
  const code = await new Promise((r) => child.on('close', r));
  assert.equal(code, 130);
  const pid = Number(out.trim());
  assert.ok(pid > 0 && started(join(dir, 'pids')).includes(pid));
  assert.ok(await gone(pid, 3000), 'the evaluator died with its owner');
});
