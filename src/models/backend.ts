/**
 * TensorFlow.js backend selection.
 *
 * `auto` tries, in order: `@tensorflow/tfjs-node-gpu` (kept only when it sees a GPU),
 * `@tensorflow/tfjs-node`, `@tensorflow/tfjs-backend-wasm` (SIMD when the CPU has it), then the
 * pure-JS cpu backend. A missing optional package is an ordinary fallback, recorded in
 * `attempts`, not an error. A native backend can be loaded by one thread of a process only
 * (tensorflow/tfjs issue 8388), so a pool gives the native lane one thread and runs wasm, one
 * single-threaded instance, per worker.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { createRequire } from 'node:module';
import { isMainThread } from 'node:worker_threads';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { InputError, RuntimeFailure } from '../errors.ts';

export const BACKEND_CHOICES = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];
export type BackendName = Exclude<BackendChoice, 'auto'>;

export interface BackendInfo {
  /** The backend in use, as the user names it. */
  name: BackendName;
  /** The name tfjs registered it under (`tensorflow`, `wasm`, `cpu`). */
  tfName: string;
  /** Why each earlier candidate of `auto` was passed over. */
  attempts: Array<{ name: BackendName; reason: string }>;
}

export class BackendUnavailableError extends InputError {
  constructor(name: BackendName, reason: string) {
    super('E_BACKEND_UNAVAILABLE', `backend '${name}' cannot be used here: ${reason}; pass --backend auto to fall back to the best available one`);
  }
}

export class UnknownBackendError extends InputError {
  constructor(name: string) {
    super('E_BACKEND_UNKNOWN', `unknown backend '${name}'; choose one of ${BACKEND_CHOICES.join(', ')}`);
  }
}

export function parseBackendChoice(name: string): BackendChoice {
  if ((BACKEND_CHOICES as readonly string[]).includes(name)) return name as BackendChoice;
  throw new UnknownBackendError(name);
}

const require = createRequire(import.meta.url);
let current: BackendInfo | null = null;
let nativeLoaded: 'tensorflow-gpu' | 'tensorflow' | null = null;

/** Imports a package by name if it is installed; null when it is absent. Other failures propagate. */
async function importOptional(pkg: string): Promise<unknown | null> {
  let resolved: string;
  try {
    resolved = require.resolve(pkg);
  } catch {
    return null;
  }
  return import(pathToFileURL(resolved).href);
}

function message(err: unknown): string {
  return err instanceof Error ? err.message.split('\n')[0]! : String(err);
}

async function tryNative(name: 'tensorflow-gpu' | 'tensorflow'): Promise<string | null> {
  if (nativeLoaded !== null && nativeLoaded !== name) return `${nativeLoaded} is already loaded in this process`;
  const pkg = name === 'tensorflow-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
  let mod: unknown;
  try {
    mod = await importOptional(pkg);
  } catch (err) {
    return `${pkg} is installed but failed to load (${message(err)})`;
  }
  if (mod === null) return `${pkg} is not installed`;
  nativeLoaded = name;
  // tfjs-node registers the 'tensorflow' backend on the tfjs-core it imports; that must be ours.
  if (tf.findBackend('tensorflow') === null) {
    return `${pkg} loaded but registered its backend on another copy of @tensorflow/tfjs-core (versions differ from ${tf.version_core})`;
  }
  if (!(await tf.setBackend('tensorflow'))) return `${pkg} loaded but its backend failed to initialise`;
  if (name === 'tensorflow-gpu' && !nativeSeesGpu()) return `${pkg} loaded but TensorFlow sees no GPU`;
  return null;
}

/** Whether the native TensorFlow runtime placed work on a GPU (its device list names one). */
function nativeSeesGpu(): boolean {
  const backend = tf.backend() as unknown as { binding?: { TF_Version?: string }; isUsingGpuDevice?: boolean };
  if (typeof backend.isUsingGpuDevice === 'boolean') return backend.isUsingGpuDevice;
  // tfjs-node-gpu 4.x has no public device query; an environment without CUDA fails to load
  // the package at all, so a successful load is taken as a GPU unless the user hid them.
  const visible = process.env.CUDA_VISIBLE_DEVICES;
  return visible === undefined || (visible !== '' && visible !== '-1');
}

async function tryWasm(): Promise<string | null> {
  let wasm: typeof import('@tensorflow/tfjs-backend-wasm');
  try {
    wasm = await import('@tensorflow/tfjs-backend-wasm');
  } catch (err) {
    return `@tensorflow/tfjs-backend-wasm failed to load (${message(err)})`;
  }
  if (!wasmPathsSet) setPaths(wasm);
  try {
    if (!(await tf.setBackend('wasm'))) return 'the wasm backend failed to initialise';
  } catch (err) {
    return `the wasm backend failed to initialise (${message(err)})`;
  }
  return null;
}

let wasmPathsSet = false;
function setPaths(wasm: typeof import('@tensorflow/tfjs-backend-wasm')): void {
  wasmPathsSet = true;
  const dist = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
  // Node's fetch takes no plain paths: hand Emscripten absolute paths and let it read them with fs. Threads stay off
  // in Node (tfjs issue 3830): one single-threaded instance per worker is the layout we want.
  wasm.setWasmPaths({
    'tfjs-backend-wasm.wasm': join(dist, 'tfjs-backend-wasm.wasm'),
    'tfjs-backend-wasm-simd.wasm': join(dist, 'tfjs-backend-wasm-simd.wasm'),
    'tfjs-backend-wasm-threaded-simd.wasm': join(dist, 'tfjs-backend-wasm-threaded-simd.wasm'),
  }, false);
}

async function tryOne(name: BackendName): Promise<string | null> {
  switch (name) {
    case 'tensorflow-gpu':
    case 'tensorflow':
      return tryNative(name);
    case 'wasm':
      return tryWasm();
    case 'cpu':
      return (await tf.setBackend('cpu')) ? null : 'the cpu backend failed to initialise';
  }
}

/**
 * Makes `choice` the active tfjs backend of this thread and says which one is in use.
 * Calling it again with the same choice is cheap; switching backends is allowed (tensors of the
 * previous backend stay valid where tfjs can move them, but models should be reloaded).
 */
export async function useBackend(choice: BackendChoice = 'auto', options: { native?: boolean } = {}): Promise<BackendInfo> {
  if (current && (choice === 'auto' || choice === current.name) && tf.getBackend() === current.tfName) return current;
  // `auto` in a worker thread skips the native backends unless the caller owns the native lane:
  // a second thread loading tfjs-node crashes the process (tfjs issue 8388).
  const native = options.native ?? isMainThread;
  const order: BackendName[] = choice === 'auto' ? ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] : [choice];
  const attempts: BackendInfo['attempts'] = [];
  for (const name of order) {
    const reason = choice === 'auto' && !native && (name === 'tensorflow-gpu' || name === 'tensorflow')
      ? 'skipped in a worker thread: only the native evaluation lane loads a native backend'
      : await tryOne(name);
    if (reason === null) {
      await tf.ready();
      current = { name, tfName: tf.getBackend(), attempts };
      return current;
    }
    attempts.push({ name, reason });
    if (choice !== 'auto') throw new BackendUnavailableError(name, reason);
  }
  throw new RuntimeFailure('E_BACKEND_NONE', `no TensorFlow.js backend could be initialised: ${attempts.map((a) => `${a.name}: ${a.reason}`).join('; ')}`);
}

/** The backend selected by the last `useBackend` call of this thread, or null. */
export function currentBackend(): BackendInfo | null {
  return current;
}

export { tf };
