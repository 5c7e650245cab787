// The entry of each pool thread (piscina loads it). Sources are TypeScript run through tsx, so
// the loader is registered here, in the thread, before the handler module is imported. The
// handler module exports `createHandler(data)`, called once per thread; it returns the function
// that turns one task into a result.
import { register } from 'tsx/esm/api';
import { threadId, workerData } from 'node:worker_threads';

register();

let handler;

async function getHandler() {
  if (!handler) {
    const mod = await import(workerData.handler);
    if (typeof mod.createHandler !== 'function') {
      throw new Error(`${workerData.handler} does not export createHandler(data)`);
    }
    handler = await mod.createHandler(workerData.data);
  }
  return handler;
}

export default async function run(task) {
  const fn = await getHandler();
  const t0 = performance.now();
  const value = await fn(task);
  return { value, worker: threadId, ms: performance.now() - t0 };
}
