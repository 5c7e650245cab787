/**
 * Merging to disk: planning against the sources opened once (./reader.ts SourceSet; every input
 * error raised there, before any output), and the streaming writer that merges
 * into a Hugging Face folder through the checkpoint writer. Peak memory is about the sources'
 * float32 copies of one tensor plus its output. The finished folder of `evomerge merge` (card,
 * recipe.json, mergekit_config.yml, staging) is src/report/merge-folder.ts.
 */
import { CheckpointWriter } from '../checkpoint/index.ts';
import type { Checkpoint } from '../checkpoint/index.ts';
import { DTYPE_SIZE, type DType } from '../tensor/dtype.ts';
import type { Recipe } from '../recipe/index.ts';
import { computeTensor } from './execute.ts';
import { planMerge, type MergePlan } from './plan.ts';
import { SourceSet } from './reader.ts';

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
  /** Accumulates the milliseconds spent in writing (the rest of the call is merging). */
  timing?: { writeMs: number };
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
  const timed = (f: () => void) => {
    if (!o.timing) return f();
    const t0 = performance.now();
    f();
    o.timing.writeMs += performance.now() - t0;
  };
  try {
    for (const [i, task] of plan.tasks.entries()) {
      if (task.kind === 'copy') {
        const raw = sources.readRaw(task.models[0]!.model, task.models[0]!.tensor);
        timed(() => writer.write(task.name, raw));
        bytes += raw.byteLength;
      } else {
        const n = task.shape.reduce((a, b) => a * b, 1);
        if (!out || out.length < n) out = new Float32Array(n);
        const merged = computeTensor(task, plan.method, reader, o.seed, out.length === n ? out : out.subarray(0, n));
        timed(() => writer.write(task.name, merged));
        bytes += n * DTYPE_SIZE[task.dtype];
      }
      o.onProgress?.(i + 1, plan.tasks.length, task.name);
    }
    timed(() => writer.finish({ config: o.config, ...(o.tokenizerFrom ? { tokenizerFrom: o.tokenizerFrom, tokenizerSkip: o.tokenizerSkip } : {}), files: o.files }));
  } catch (err) {
    writer.abort();
    throw err;
  }
  return bytes;
}
