import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { WorkerPool, threadsFor } from '../src/pool/index.ts';

const handler = fileURLToPath(new URL('./helpers/pool-handler.ts', import.meta.url));

test('tasks run in worker threads, and failures of every kind become outcomes while the pool goes on', async () => {
  const pool = new WorkerPool<object, any>({ handler, threads: 2, timeoutMs: 30_000 }); // generous: a thread's start (tsx) is slow on a loaded machine; the hang tests set their own
  try {
    const ok = await pool.run({ kind: 'echo', value: 42 });
    assert.ok(ok.ok && ok.value.value === 42 && ok.worker > 0, JSON.stringify(ok));

    const thrown = await pool.run({ kind: 'throw', value: 7 });
    assert.ok(!thrown.ok);
    assert.equal(thrown.kind, 'error');
    assert.match(thrown.error, /evaluator failed on purpose \(7\)/);

    const hung = await pool.run({ kind: 'hang' }, { timeoutMs: 300 });
    assert.ok(!hung.ok && hung.kind === 'timeout', JSON.stringify(hung));

    const spun = await pool.run({ kind: 'spin' }, { timeoutMs: 300 });
    assert.ok(!spun.ok && spun.kind === 'timeout', 'a synchronous hang is terminated too');

    const exited = await pool.run({ kind: 'exit' });
    assert.ok(!exited.ok, JSON.stringify(exited));
    assert.equal(exited.kind, 'worker-exit', exited.error);

    // the pool replaced the lost threads and still works, in parallel
    const results = await Promise.all([1, 2, 3, 4].map((v) => pool.run({ kind: 'echo', value: v })));
    assert.deepEqual(results.map((r) => r.ok && r.value.value), [1, 2, 3, 4]);
  } finally {
    await pool.close();
  }
});

test('SharedArrayBuffer data reaches every thread without copying', async () => {
  const shared = new Float32Array(new SharedArrayBuffer(4 * 8));
  shared[0] = 1.5;
  const pool = new WorkerPool<object, any>({ handler, threads: 2, data: { shared } });
  try {
    const outs = await Promise.all([1, 2, 3].map((i) => pool.run({ kind: 'shared', value: i })));
    for (const o of outs) assert.ok(o.ok && o.value.seen === 1.5);
    for (const i of [1, 2, 3]) assert.ok(shared[i]! > 0, `the owner sees the write of task ${i}`);
  } finally {
    await pool.close();
  }
});

test('two threads keep busy: utilisation is high when work is queued', async () => {
  const pool = new WorkerPool<object, any>({ handler, threads: 2 });
  try {
    await pool.run({ kind: 'echo', value: 0 }); // warm the threads up
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 8 }, () => pool.run({ kind: 'sleep', ms: 100 })));
    const wall = performance.now() - t0;
    // one thread would need 800 ms; two busy threads about 400 (bound loose for loaded machines)
    assert.ok(wall < 8 * 100 * 0.85, `8 tasks of 100 ms on 2 threads took ${wall.toFixed(0)} ms`);
  } finally {
    await pool.close();
  }
});

test('a native backend gets one thread per process; other backends what was asked', () => {
  assert.equal(threadsFor('native', 4), 1);
  assert.equal(threadsFor('wasm', 2), 2);
  assert.throws(() => threadsFor('cpu', 0), /positive integer/);
});
