/**
 * Merging to disk: the sources opened once and read tensor by tensor, planning against them
 * (every input error raised there, before any output), and the streaming writer that merges
 * into a Hugging Face folder through the checkpoint writer. Peak memory is about the sources'
 * float32 copies of one tensor plus its output. The finished folder of `evomerge merge` (card,
 * recipe.json, mergekit_config.yml, staging) is src/report/merge-folder.ts.
 */
import { openCheckpoint, openLoraAdapter, CheckpointWriter } from '../checkpoint/index.ts';
import type { Checkpoint, LoraAdapter } from '../checkpoint/index.ts';
import { MissingTensorError } from '../errors.ts';
import { DTYPE_SIZE, type DType } from '../tensor/dtype.ts';
import type { Recipe } from '../recipe/index.ts';
import { computeTensor, type TensorReader } from './execute.ts';
import { planMerge, type MergePlan } from './plan.ts';

/**
 * Opened sources of a recipe, closed together, read one tensor at a time from their files.
 *
 * Why per-tensor reads and not a resident copy: on this kind of machine a positioned read of a
 * 65.5M-element BF16 tensor from the page cache took 8 ms against 68 ms to decode it to float32
 * (about 12% on top), so holding sources in memory would save little, while reading on demand
 * costs no resident memory at all, needs no up-front load, shares the page cache with every
 * worker thread and process (queue workers too), and works for sources larger than RAM. What
 * does cost is allocation: a fresh 262 MB array measured 2.5 ms per MB of page faults, several
 * times the decode. So the reader decodes into pooled float32 arrays reused from one tensor task
 * to the next (`reset`); raw bytes pass through a small piece buffer decoded while in cache: a
 * thread's working memory is bounded by (inputs per tensor) x (its largest tensor), whatever the
 * model size.
 *
 * `memory` adds models that exist only in memory (a hybrid run's merged PS best).
 */
export class SourceSet {
  private readonly checkpoints = new Map<string, Checkpoint>();
  private readonly adapters = new Map<string, LoraAdapter>();
  private pool: Float32Array[] = [];
  private next = 0;

  constructor(private readonly memory: ReadonlyMap<string, ReadonlyMap<string, Float32Array>> = new Map()) {}

  checkpoint(model: string): Checkpoint {
    let c = this.checkpoints.get(model);
    if (!c) {
      c = openCheckpoint(model);
      this.checkpoints.set(model, c);
    }
    return c;
  }

  adapter(model: string): LoraAdapter {
    let a = this.adapters.get(model);
    if (!a) {
      a = openLoraAdapter(model);
      this.adapters.set(model, a);
    }
    return a;
  }

  /** One float32 source tensor, decoded into a pooled array valid until the next `reset`. */
  read(model: string, tensor: string): Float32Array {
    const held = this.memory.get(model);
    if (held) {
      const t = held.get(tensor);
      if (!t) throw new MissingTensorError(`tensor ${tensor} is not in ${model}`);
      return t;
    }
    const ckpt = this.checkpoint(model);
    const info = ckpt.info(tensor);
    const count = info.shape.reduce((a, b) => a * b, 1);
    let buf = this.pool[this.next];
    if (!buf || buf.length < count) {
      buf = new Float32Array(Math.max(count, buf?.length ?? 0));
      this.pool[this.next] = buf;
    }
    this.next++;
    return ckpt.readFloat32(tensor, { into: buf.length === count ? buf : buf.subarray(0, count) });
  }

  /** Raw bytes of a tensor (non-float tensors are copied through unchanged). */
  readRaw(model: string, tensor: string): Uint8Array {
    const held = this.memory.get(model)?.get(tensor);
    if (held) return new Uint8Array(held.buffer, held.byteOffset, held.byteLength);
    return this.checkpoint(model).readRaw(tensor);
  }

  /** Bytes this set holds for reading: the pooled float32 arrays (raw bytes pass through a 512 KiB piece per thread). */
  heldBytes(): number {
    return this.pool.reduce((n, b) => n + b.byteLength, 0);
  }

  /** The reader over these sources (pooled: see `read`). */
  reader(): TensorReader {
    return {
      read: (model, tensor) => this.read(model, tensor),
      reset: () => { this.next = 0; },
      owns: (a) => this.pool.some((b) => b.buffer === a.buffer),
      loraFactors: (adapter, tensor) => this.adapter(adapter).factors(tensor),
      loraDelta: (adapter, tensor) => this.adapter(adapter).delta(tensor),
    };
  }

  close(): void {
    for (const c of this.checkpoints.values()) c.close();
    for (const a of this.adapters.values()) a.close();
    this.checkpoints.clear();
    this.adapters.clear();
    this.pool = [];
  }
}

/** Plan a recipe against its sources on disk (raises every input error). */
export function planRecipe(recipe: Recipe, sources: SourceSet, outDtype?: DType): MergePlan {
  return planMerge(recipe, (m) => sources.checkpoint(m), (m) => sources.adapter(m), outDtype);
}

export interface WriteFolderOptions {
  seed: string | number;
  maxShardBytes?: number;
  metadata?: Record<string, string>;
  /** Flush shards to disk (default true; false for a folder deleted after one read). */
  durable?: boolean;
  /** config.json of the output; none is written when absent (a bare safetensors source). */
  config?: object;
  tokenizerFrom?: Checkpoint | string;
  /** Tokenizer files of `tokenizerFrom` not to copy. */
  tokenizerSkip?: readonly string[];
  files?: Record<string, string>;
  onProgress?: (done: number, total: number, name: string) => void;
}

/**
 * Merge every tensor task of a plan straight into a new Hugging Face folder at `dir`, one tensor
 * at a time: the sources are read through the set's pooled reader and every output reuses one
 * buffer, so nothing of the model is held whole (peak: one task's inputs and output). Shards,
 * index, config, tokenizer files and `files` are written as CheckpointWriter does; on an error the
 * temporary files are removed and the error is rethrown. Returns the bytes of tensor data written.
 * Used by `evomerge merge` and by search workers writing a candidate for a command evaluator.
 */
export function writeMergedFolder(plan: MergePlan, sources: SourceSet, dir: string, o: WriteFolderOptions): number {
  const writer = new CheckpointWriter(dir, {
    tensors: plan.tasks.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })),
    maxShardBytes: o.maxShardBytes,
    metadata: o.metadata ?? { format: 'pt' },
    durable: o.durable,
  });
  const reader = sources.reader();
  let out: Float32Array | null = null;
  let bytes = 0;
  try {
    for (const [i, task] of plan.tasks.entries()) {
      if (task.kind === 'copy') {
        const raw = sources.readRaw(task.models[0]!.model, task.models[0]!.tensor);
        writer.write(task.name, raw);
        bytes += raw.byteLength;
      } else {
        const n = task.shape.reduce((a, b) => a * b, 1);
        if (!out || out.length < n) out = new Float32Array(n);
        const merged = computeTensor(task, plan.method, reader, o.seed, out.length === n ? out : out.subarray(0, n));
        writer.write(task.name, merged);
        bytes += n * DTYPE_SIZE[task.dtype];
      }
      o.onProgress?.(i + 1, plan.tasks.length, task.name);
    }
    writer.finish({ config: o.config, ...(o.tokenizerFrom ? { tokenizerFrom: o.tokenizerFrom, tokenizerSkip: o.tokenizerSkip } : {}), files: o.files });
  } catch (err) {
    writer.abort();
    throw err;
  }
  return bytes;
}
