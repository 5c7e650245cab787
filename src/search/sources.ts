/**
 * The sources of a search as catalogues: names, dtypes, shapes, config and layer structure of
 * every checkpoint, and nothing of their weights. Every worker thread (and every queue worker
 * process) reads the tensors it merges from the checkpoint files one at a time, in their stored
 * dtype, through a pooled SourceSet (src/merge/write.ts says why: measured, a read from the page
 * cache costs about 12% of the float32 decode and needs no resident copy). The only weights held
 * in memory are those of models that exist nowhere else: a hybrid run's merged PS best.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { dirname } from 'node:path';
import { openCheckpoint } from '../checkpoint/index.ts';
import { DTYPE_SIZE, type DType } from '../tensor/dtype.ts';
import { SourceSet, type SourceCatalog } from '../merge/index.ts';

export interface SourceTensor {
  dtype: DType;
  shape: number[];
}

export interface SourceModel {
  path: string;
  format: string;
  config: Record<string, unknown> | null;
  layers: { count: number; prefix: string | null };
  /** Folder holding tokenizer files, when there are any. */
  tokenizerDir: string | null;
  tensors: Record<string, SourceTensor>;
  /** Float32 tensors held in memory (SharedArrayBuffer-backed, viewed by workers without a copy); only for models with no files. */
  memory?: Record<string, Float32Array>;
}

export type SourceModels = Record<string, SourceModel>;

/** Bytes of a tensor in its stored dtype. */
export function tensorBytes(t: SourceTensor): number {
  return t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[t.dtype];
}

/** A checkpoint's catalogue (its header and config; no weights are read). */
export function loadSourceModel(path: string): SourceModel {
  const ckpt = openCheckpoint(path);
  try {
    const tensors: Record<string, SourceTensor> = {};
    for (const name of ckpt.names()) {
      const info = ckpt.info(name);
      tensors[name] = { dtype: info.dtype, shape: info.shape };
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

/** The planner's view of a source model. */
export function sourceCatalog(m: SourceModel): SourceCatalog {
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

/** A pooled reader over the sources: files read per tensor, in-memory models viewed in place. Close it when done. */
export function sourceSet(sources: SourceModels): SourceSet {
  const memory = new Map<string, Map<string, Float32Array>>();
  for (const [key, m] of Object.entries(sources)) if (m.memory) memory.set(key, new Map(Object.entries(m.memory)));
  return new SourceSet(memory);
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
