/**
 * The sources of a search as catalogues: names, dtypes, shapes, config and layer structure of
 * every checkpoint, and nothing of their weights. Every worker thread (and every queue worker
 * process) reads the tensors it merges from the checkpoint files one at a time, in their stored
 * dtype, through a pooled SourceSet (src/merge/reader.ts says why: measured, a read from the page
 * cache costs about 12% of the float32 decode and needs no resident copy). The only weights held
 * in memory are those of models that exist nowhere else: a hybrid run's merged PS best.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
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

/** The safetensors files of a checkpoint (its shards, or its one file). */
export function checkpointFiles(path: string): string[] {
  const ckpt = openCheckpoint(path);
  try {
    return [...ckpt.files];
  } finally {
    ckpt.close();
  }
}

/**
 * SHA-256 of a file, streamed in 4 MiB pieces: the event loop keeps running meanwhile (a queue
 * worker's BullMQ lock renewal, an owner's lease), whatever the checkpoint's size.
 */
export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 22 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * The fingerprint of a checkpoint: SHA-256 of each of its safetensors files. A run records its
 * sources' fingerprints to notice a changed source on resume; a queue worker checks its copy
 * against them before it evaluates the run's candidates (src/queue/consumer.ts).
 */
export async function fingerprint(path: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const file of checkpointFiles(path)) out[file] = await sha256File(file);
  return out;
}
