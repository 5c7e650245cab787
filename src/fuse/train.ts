/**
 * Stage 1 of FuseLLM / FuseChat, the training: the pivot (target) model is trained on token
 * windows with L = lambda * CE(gold) + (1 - lambda) * CE(fused distribution) (FuseLLM, Wan et al.
 * 2024, "Knowledge Fusion of Large Language Models", section 3.2; lambda = 0.9 as in its section
 * 4.1), by `LlamaTrainer.step` with a soft target. The fused top-k distributions were computed
 * once before training (src/fuse/teacher.ts) and are read here, never recomputed per epoch.
 *
 * Epochs run over the stored windows in a seeded order (one permutation per epoch, derived from
 * the seed and the epoch number, so no random stream has to be saved). After each epoch the
 * weights, Adam's moments and bias-correction accumulators, the epoch and the losses go to one
 * safetensors file written atomically; a run killed at any point resumes from the last finished
 * epoch and ends with the same weights, bit for bit, as one that was never interrupted.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SafetensorsFile, writeSafetensors } from '../checkpoint/index.ts';
import { InputError } from '../errors.ts';
import { tf } from '../models/backend.ts';
import { parseLlamaConfig } from '../models/llama-config.ts';
import { llamaShapesOf } from '../models/llama-layout.ts';
import { Rng, deriveSeed } from '../tensor/rng.ts';
import { LlamaTrainer } from '../train/llama.ts';
import type { TopK } from './distributions.ts';

export interface FuseTrainProgress {
  epoch: number;
  epochs: number;
  /** Steps done in this epoch and per epoch. */
  step: number;
  steps: number;
  /** Loss of the last step. */
  loss: number;
}

export interface FuseTrainOptions {
  /** The pivot's config.json and its initial weights (Hugging Face names and layout). */
  config: Record<string, unknown>;
  initial: ReadonlyMap<string, Float32Array>;
  /** Token windows of the pivot, each T + 1 tokens (inputs the first T, gold the last T). */
  windows: readonly Int32Array[];
  /** The fused distribution for each window: T positions of top-k over the pivot's vocabulary. */
  targets: readonly TopK[];
  lambda: number;
  epochs: number;
  batch: number;
  learningRate: number;
  seed: string | number;
  /** Folder of the per-epoch checkpoint (`train-state.safetensors`); resumed from when its key matches. */
  workDir: string;
  /** Names the inputs (sources, data, settings): a checkpoint with another key is not resumed. */
  key: string;
  /** Run at most this many epochs in this call (then return, resumable); for tests and budgets. */
  stopAfter?: number;
  onProgress?: (p: FuseTrainProgress) => void;
}

export interface FuseTrainResult {
  weights: Map<string, Float32Array>;
  /** Mean loss per finished epoch (all epochs, resumed ones included). */
  losses: number[];
  /** Epochs already done when this call started (0: a fresh start). */
  resumedFrom: number;
  /** True when every epoch is done. */
  complete: boolean;
}

const STATE_FILE = 'train-state.safetensors';

/**
 * Adds a window's top-k rows into a dense [T, V] block at `offset` of `out`: probability mass of
 * id c at position t goes to out[offset + t V + c]; negative ids (no pivot token) carry nothing.
 */
export function denseFromTopK(d: TopK, vocab: number, out: Float32Array, offset = 0): Float32Array {
  for (let t = 0; t < d.length; t++) {
    for (let j = 0; j < d.k; j++) {
      const id = d.ids[t * d.k + j]!;
      if (id < 0) continue;
      if (id >= vocab) throw new InputError('E_FUSE_TARGET', `fused distribution: token id ${id} at position ${t} is outside the pivot's vocabulary of ${vocab}`);
      out[offset + t * vocab + id] += d.probs[t * d.k + j]!;
    }
  }
  return out;
}

/** The seeded order of the windows in `epoch` (Fisher-Yates over a stream derived from seed and epoch). */
export function epochOrder(n: number, seed: string | number, epoch: number): Int32Array {
  const rng = Rng.seeded(deriveSeed('fuse-train', seed, 'epoch', epoch));
  const order = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

interface AdamInternals {
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  iterations_: number;
}

interface SavedState {
  epoch: number;
  losses: number[];
  weights: Map<string, Float32Array>;
  moments: { m: Float32Array[]; v: Float32Array[] } | null;
  iterations: number;
  accBeta1: number;
  accBeta2: number;
}

function readState(file: string, key: string, shapes: ReadonlyArray<{ name: string }>): SavedState | null {
  if (!existsSync(file)) return null;
  const f = SafetensorsFile.open(file);
  try {
    const meta = f.metadata ?? {};
    if (meta.key !== key) return null;
    const weights = new Map<string, Float32Array>();
    for (const { name } of shapes) weights.set(name, f.readFloat32(`w:${name}`));
    const count = Number(meta.moments ?? 0);
    const moments = count > 0 ? { m: Array.from({ length: count }, (_, i) => f.readFloat32(`m:${i}`)), v: Array.from({ length: count }, (_, i) => f.readFloat32(`v:${i}`)) } : null;
    return {
      epoch: Number(meta.epoch), losses: JSON.parse(meta.losses ?? '[]') as number[], weights, moments,
      iterations: Number(meta.iterations), accBeta1: Number(meta.accBeta1), accBeta2: Number(meta.accBeta2),
    };
  } finally {
    f.close();
  }
}

async function writeState(file: string, key: string, epoch: number, losses: number[], trainer: LlamaTrainer, optimizer: tf.AdamOptimizer): Promise<void> {
  const tensors: Array<{ name: string; dtype: 'F32'; shape: number[]; data: Float32Array }> = [];
  const w = trainer.weights();
  for (const [name, data] of w) tensors.push({ name: `w:${name}`, dtype: 'F32', shape: [data.length], data });
  // getWeights: [iterations, first moments..., second moments...] in the order the variables were first updated
  const opt = await optimizer.getWeights();
  const moments = opt.slice(1);
  const count = moments.length / 2;
  moments.forEach((nt, i) => {
    const data = Float32Array.from(nt.tensor.dataSync() as Float32Array);
    tensors.push({ name: `${i < count ? 'm' : 'v'}:${i < count ? i : i - count}`, dtype: 'F32', shape: [data.length], data });
  });
  const internals = optimizer as unknown as AdamInternals;
  mkdirSync(dirname(file), { recursive: true });
  writeSafetensors(file, tensors, {
    key, epoch: String(epoch), losses: JSON.stringify(losses), moments: String(count),
    iterations: String(internals.iterations_),
    // the bias-correction accumulators beta^t, kept as the optimizer holds them (float32 products):
    // setWeights recomputes them with pow, which can differ in the last bit
    accBeta1: String(internals.accBeta1.dataSync()[0]), accBeta2: String(internals.accBeta2.dataSync()[0]),
    format: 'evomerge-fuse-train-1',
  });
}

/**
 * Trains the pivot on the fused targets; resumes from `workDir` when a checkpoint of the same
 * key is there. The caller selects the backend and registers the gradients (ensureGradients).
 */
export async function trainFused(o: FuseTrainOptions): Promise<FuseTrainResult> {
  if (o.windows.length === 0) throw new InputError('E_FUSE_EMPTY', 'fuse: no training windows; give a corpus with at least one window of the pivot\'s context length');
  if (o.windows.length !== o.targets.length) throw new InputError('E_FUSE_TARGET', `fuse: ${o.windows.length} windows but ${o.targets.length} fused distributions`);
  if (!(o.lambda >= 0 && o.lambda <= 1)) throw new InputError('E_FUSE_LAMBDA', `fuse: lambda must be in [0, 1], got ${o.lambda}`);
  if (!Number.isSafeInteger(o.epochs) || o.epochs < 1) throw new InputError('E_FUSE_EPOCHS', `fuse: epochs must be a positive integer, got ${o.epochs}`);
  if (!Number.isSafeInteger(o.batch) || o.batch < 1) throw new InputError('E_FUSE_BATCH', `fuse: batch must be a positive integer, got ${o.batch}`);
  const T = o.windows[0]!.length - 1;
  o.windows.forEach((w, i) => {
    if (w.length !== T + 1) throw new InputError('E_FUSE_WINDOW', `fuse: window ${i} has ${w.length} tokens, the first ${T + 1}; windows need one length`);
    if (o.targets[i]!.length !== T) throw new InputError('E_FUSE_TARGET', `fuse: the fused distribution of window ${i} has ${o.targets[i]!.length} positions, the window ${T}`);
  });
  const c = parseLlamaConfig(o.config);
  const V = c.vocabSize;
  const shapes = llamaShapesOf(c);
  const file = join(o.workDir, STATE_FILE);
  const saved = readState(file, o.key, shapes);
  const trainer = new LlamaTrainer(o.config, saved?.weights ?? o.initial);
  const optimizer = tf.train.adam(o.learningRate);
  try {
    const variables = trainer.trainableVariables();
    if (saved?.moments) {
      const { m, v } = saved.moments;
      if (m.length !== variables.length) throw new InputError('E_FUSE_CHECKPOINT', `${file}: holds Adam moments for ${m.length} tensors, the model has ${variables.length}; delete it to start over`);
      await optimizer.setWeights([
        { name: 'iter', tensor: tf.scalar(saved.iterations, 'int32') },
        ...m.map((data, i) => ({ name: `m${i}`, tensor: tf.tensor(data, variables[i]!.shape) })),
        ...v.map((data, i) => ({ name: `v${i}`, tensor: tf.tensor(data, variables[i]!.shape) })),
      ]);
      const internals = optimizer as unknown as AdamInternals;
      internals.accBeta1.assign(tf.scalar(saved.accBeta1));
      internals.accBeta2.assign(tf.scalar(saved.accBeta2));
    }
    const losses = [...(saved?.losses ?? [])];
    const start = saved?.epoch ?? 0;
    const end = Math.min(o.epochs, start + (o.stopAfter ?? o.epochs));
    const steps = Math.ceil(o.windows.length / o.batch);
    for (let epoch = start; epoch < end; epoch++) {
      const order = epochOrder(o.windows.length, o.seed, epoch);
      let sum = 0;
      for (let s = 0; s < steps; s++) {
        const idx = order.subarray(s * o.batch, Math.min(order.length, (s + 1) * o.batch));
        const B = idx.length;
        const dense = new Float32Array(B * T * V);
        idx.forEach((w, b) => denseFromTopK(o.targets[w]!, V, dense, b * T * V));
        const lossT = trainer.step(optimizer, [...idx].map((w) => o.windows[w]!), variables, { lambda: o.lambda, dense });
        const loss = lossT.dataSync()[0]!;
        lossT.dispose();
        if (!Number.isFinite(loss)) throw new InputError('E_FUSE_DIVERGED', `fuse: the loss became ${loss} at epoch ${epoch + 1}, step ${s + 1}; lower the learning rate (--lr)`);
        sum += loss;
        o.onProgress?.({ epoch: epoch + 1, epochs: o.epochs, step: s + 1, steps, loss });
        if (s % 4 === 3) await new Promise((r) => setImmediate(r));
      }
      losses.push(sum / steps);
      await writeState(file, o.key, epoch + 1, losses, trainer, optimizer);
    }
    return { weights: trainer.weights(), losses, resumedFrom: start, complete: end === o.epochs };
  } finally {
    optimizer.dispose();
    trainer.dispose();
  }
}
