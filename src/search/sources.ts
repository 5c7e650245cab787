/**
 * Source models held once per process in SharedArrayBuffers. The owner reads every tensor of
 * every source once; worker threads receive the same memory (structured clone shares a
 * SharedArrayBuffer) and merge from it without copying or touching the disk.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { dirname } from 'node:path';
import { openCheckpoint } from '../checkpoint/index.ts';
import type { DType } from '../tensor/dtype.ts';
import type { SourceCatalog, TensorReader } from '../merge/index.ts';
import { memoryReader } from '../merge/index.ts';

export interface SharedTensor {
  dtype: DType;
  shape: number[];
  data: Float32Array;
}

export interface SharedModel {
  path: string;
  format: string;
  config: Record<string, unknown> | null;
  layers: { count: number; prefix: string | null };
  /** Folder holding tokenizer files, when there are any. */
  tokenizerDir: string | null;
  tensors: Record<string, SharedTensor>;
}

export type SharedSources = Record<string, SharedModel>;

/** Read a checkpoint's tensors into shared memory. */
export function loadShared(path: string): SharedModel {
  const ckpt = openCheckpoint(path);
  try {
    const tensors: Record<string, SharedTensor> = {};
    for (const name of ckpt.names()) {
      const info = ckpt.info(name);
      tensors[name] = { dtype: info.dtype, shape: info.shape, data: ckpt.readFloat32(name, { shared: true }) };
    }
    const tok = ckpt.tokenizerFiles();
    return {
      path, format: ckpt.format, config: ckpt.config, layers: { count: ckpt.layers.count, prefix: ckpt.layers.prefix },
      tokenizerDir: tok.length > 0 ? dirname(tok[0]!) : null, tensors,
    };
  } finally {
    ckpt.close();
  }
}

/** The planner's view of a shared model. */
export function sharedCatalog(m: SharedModel): SourceCatalog {
  return {
    path: m.path,
    format: m.format,
    config: m.config,
    layers: m.layers,
    names: () => Object.keys(m.tensors).sort(),
    has: (name) => Object.hasOwn(m.tensors, name),
    info: (name) => {
      const t = m.tensors[name];
      if (!t) throw new Error(`${m.path} has no tensor ${name}`);
      return { dtype: t.dtype, shape: t.shape };
    },
  };
}

export function sharedReader(sources: SharedSources): TensorReader {
  const maps = new Map(Object.entries(sources).map(([k, m]) => [k, new Map(Object.entries(m.tensors).map(([n, t]) => [n, t.data]))]));
  return memoryReader(maps);
}

/** SHA-256 of each safetensors file of a checkpoint: what a run records to notice changed sources. */
export function fingerprint(path: string): Record<string, string> {
  const ckpt = openCheckpoint(path);
  const files = [...ckpt.files];
  ckpt.close();
  const out: Record<string, string> = {};
  const buf = Buffer.allocUnsafe(1 << 22);
  for (const file of files) {
    const h = createHash('sha256');
    const fd = openSync(file, 'r');
    try {
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, null);
        if (n === 0) break;
        h.update(buf.subarray(0, n));
      }
    } finally {
      closeSync(fd);
    }
    out[file] = h.digest('hex');
  }
  return out;
}
