/**
 * The merge's reader over its sources' files (the TensorReader of ./execute.ts that the writer,
 * the search's candidates and the gradient stage read through).
 */
import { openCheckpoint, openLoraAdapter } from '../checkpoint/index.ts';
import type { Checkpoint, LoraAdapter } from '../checkpoint/index.ts';
import { MissingTensorError } from '../errors.ts';
import type { TensorReader } from './execute.ts';
import type { HalfSource } from '../tensor/wasm-half.ts';

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

  /**
   * A source tensor's BF16 or F16 bits as a source that kernels read block by block with
   * positioned reads straight into their staging (tensor/wasm-half.ts): nothing of the tensor is
   * held. Null when the tensor is held in memory or stored in another dtype.
   */
  readHalf(model: string, tensor: string): { dtype: 'BF16' | 'F16'; source: HalfSource } | null {
    if (this.memory.has(model)) return null;
    const ckpt = this.checkpoint(model);
    const info = ckpt.info(tensor);
    if (info.dtype !== 'BF16' && info.dtype !== 'F16') return null;
    const length = info.byteLength / 2;
    return {
      dtype: info.dtype,
      source: { length, read: (offset, into) => ckpt.readRawRange(tensor, offset * 2, new Uint8Array(into.buffer, into.byteOffset, into.byteLength)) },
    };
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
      readHalf: (model, tensor) => this.readHalf(model, tensor),
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
