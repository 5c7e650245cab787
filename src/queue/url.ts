/**
 * The --queue URL: redis://[user:password@]host[:port][/db][?prefix=name], rediss:// for TLS.
 * `prefix` namespaces BullMQ's keys (default 'bull'), so several setups can share one Redis.
 */
import { Redis } from 'ioredis';
import { QueueUnreachableError, QueueUrlError } from './errors.ts';

export interface QueueUrl {
  /** Connection options for ioredis, as BullMQ takes them. */
  connection: { host: string; port: number; db: number; username?: string; password?: string; tls?: Record<string, never> };
  prefix: string;
  /** The URL without its password, for messages and logs. */
  display: string;
}

export function parseQueueUrl(url: string): QueueUrl {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new QueueUrlError(url, 'not a URL');
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new QueueUrlError(url, `the scheme is '${u.protocol.replace(/:$/, '')}', not redis or rediss`);
  if (!u.hostname) throw new QueueUrlError(url, 'no host');
  const port = u.port ? Number(u.port) : 6379;
  const path = u.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d+$/.test(path)) throw new QueueUrlError(url, `the path '/${path}' is not a database number`);
  const db = path === '' ? 0 : Number(path);
  for (const key of u.searchParams.keys()) if (key !== 'prefix') throw new QueueUrlError(url, `unknown parameter '${key}' (only 'prefix' is known)`);
  const prefix = u.searchParams.get('prefix') ?? 'bull';
  if (!/^[A-Za-z0-9_.-]+$/.test(prefix)) throw new QueueUrlError(url, `prefix '${prefix}' may hold only letters, digits, '_', '.' and '-'`);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const connection: QueueUrl['connection'] = { host, port, db };
  if (u.username) connection.username = decodeURIComponent(u.username);
  if (u.password) connection.password = decodeURIComponent(u.password);
  if (u.protocol === 'rediss:') connection.tls = {};
  const shown = new URL(url);
  if (shown.password) shown.password = '***';
  return { connection, prefix, display: shown.toString() };
}

/** A plain ioredis client on the queue's server; errors surface as rejected commands, not crashes. */
export function redisClient(q: QueueUrl, options: { failFast?: boolean; timeoutMs?: number } = {}): Redis {
  const client = new Redis({
    ...q.connection,
    lazyConnect: true,
    connectTimeout: options.timeoutMs ?? 10_000,
    ...(options.failFast ? { maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null } : {}),
  });
  client.on('error', () => {});
  return client;
}

/**
 * Fail fast when Redis does not answer PING: BullMQ itself would retry forever, so without
 * this an unreachable server looks like a hang.
 */
export async function checkReachable(q: QueueUrl, timeoutMs = 3000): Promise<void> {
  const client = redisClient(q, { failFast: true, timeoutMs });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.connect().then(() => client.ping()),
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('no answer')), timeoutMs); }),
    ]);
  } catch (err) {
    throw new QueueUnreachableError(q.display, err, timeoutMs);
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}
