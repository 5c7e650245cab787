/**
 * A Redis for queue tests, on 127.0.0.1 only: the one CI starts on port 6379 when it answers,
 * else a private redis-server on a free port. Each test file gets its own key prefix, so files can
 * share one server. The caller registers `stop` in a top-level `after` (it removes the prefix's
 * keys and stops a private server): an `after` registered from inside a `before` hook runs as
 * soon as that hook ends, which stopped the private server before the first test could use it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

async function answers(port: number): Promise<boolean> {
  const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null, connectTimeout: 1000 });
  c.on('error', () => {});
  try {
    await c.connect();
    return (await c.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    c.disconnect();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** A redis:// URL (with a fresh ?prefix=) on a Redis that answers. */
export async function testRedis(): Promise<{ url: string; port: number; prefix: string; stop: () => Promise<void> }> {
  let server: ChildProcess | null = null;
  const prefix = `evtest${process.pid}x${Date.now().toString(36)}`;
  let port = 6379;
  if (!(await answers(port))) {
    if (spawnSync('redis-server', ['--version']).status !== 0) throw new Error('queue tests need Redis: install redis-server (apt-get install redis-server) or start one on 127.0.0.1:6379 (see .ci/run)');
    port = await freePort();
    const proc = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    server = proc;
    process.on('exit', () => proc.kill('SIGTERM'));
    for (let i = 0; i < 50 && !(await answers(port)); i++) await new Promise((r) => setTimeout(r, 100));
  }
  const stop = async (): Promise<void> => {
    const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true });
    c.on('error', () => {});
    try {
      await c.connect();
      let cursor = '0';
      do {
        const [next, keys] = await c.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        if (keys.length > 0) await c.del(...keys);
        cursor = next;
      } while (cursor !== '0');
    } catch { /* the private server may be gone already */ } finally {
      c.disconnect();
    }
    server?.kill('SIGTERM');
  };
  return { url: `redis://127.0.0.1:${port}/0?prefix=${prefix}`, port, prefix, stop };
}
