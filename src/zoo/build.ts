/**
 * What every trained zoo shares: its zoo.json, the cache key that makes a second identical
 * build instant (looked up before the training backend starts), progress reporting, and the
 * evaluator manifests written for each task. Output is atomic (buildAtomically in
 * src/checkpoint/atomic.ts: a temporary folder beside the target, renamed when complete).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { writeFileAtomic } from '../checkpoint/atomic.ts';
import { CheckpointWriter } from '../checkpoint/index.ts';
import { RuntimeFailure } from '../errors.ts';
import { deriveSeed } from '../tensor/rng.ts';
import type { ZooLayout, ZooTask } from '../space/zoo.ts';
import { useTrainingBackend } from '../train/backend.ts';
import type { SourceFile } from './data/mnist.ts';

/** Bump when a builder's output changes for the same inputs, so old caches are not reused. */
export const ZOO_FORMAT = 2;

export interface ZooProgress {
  /** What is running, e.g. `train base` or `evaluate`. */
  stage: string;
  /** Work units done and in total (training steps, with evaluations counted in step equivalents). */
  done: number;
  total: number;
}

export interface ZooBuildOptions {
  seed: number;
  /** The reduced size, for tests and quick looks (builds in seconds). */
  small?: boolean;
  /** Rebuild even when the folder holds a build with the same cache key. */
  force?: boolean;
  onProgress?: (p: ZooProgress) => void;
  /** Where Debian data packages are found: `/` when installed, or a `dpkg -x` folder (vision-plus). */
  dataRoot?: string;
}

/** A specialist's score on its own task next to the base's, on held-out data. */
export interface SpecialistCheck {
  task: string;
  model: string;
  metric: string;
  split: 'validation' | 'test';
  samples: number;
  base: number;
  specialist: number;
  /** maximize unless stated (perplexity is minimised). */
  direction?: 'maximize' | 'minimize';
  beatsBase: boolean;
}

export interface ZooTaskInfo extends ZooTask {
  description: string;
  /** True for tasks made by transforming a dataset (not the dataset's own labels and inputs). */
  derived: boolean;
  [k: string]: unknown;
}

/** A zoo's zoo.json: the layout a search space reads (src/space/zoo.ts), with how the zoo was made. */
export interface ZooManifest extends ZooLayout {
  zoo: string;
  format: number;
  cacheKey: string;
  seed: number;
  size: 'full' | 'small';
  family: string;
  tasks: ZooTaskInfo[];
  sources: SourceFile[];
  training: Record<string, unknown>;
  checks: SpecialistCheck[];
  backend: string;
  seconds: number;
  createdAt: string;
}

export interface ZooResult {
  dir: string;
  base: string;
  models: string[];
  cached: boolean;
  manifest: ZooManifest;
}

export function zooCacheKey(parts: Record<string, unknown>): string {
  return deriveSeed('evomerge-zoo', ZOO_FORMAT, JSON.stringify(parts));
}

/** The zoo already in `dir` when it was built from exactly these inputs, else null. */
export function cachedZoo(dir: string, key: string): ZooResult | null {
  const file = join(dir, 'zoo.json');
  if (!existsSync(file)) return null;
  let manifest: ZooManifest;
  try {
    manifest = JSON.parse(readFileSync(file, 'utf8')) as ZooManifest;
  } catch {
    return null;
  }
  if (manifest.cacheKey !== key) return null;
  const paths = [manifest.base, ...manifest.models.map((m) => m.path)].map((p) => join(dir, p));
  if (!paths.every((p) => existsSync(join(p, 'config.json')))) return null;
  return { dir, base: paths[0]!, models: paths.slice(1), cached: true, manifest };
}

/**
 * The zoo already in `dir` when built from these inputs, looked up before a backend starts (a
 * hit costs only hashing the inputs), or else the backend to train on and the new build's key.
 */
export async function cachedOrTrainingBackend(dir: string, keyFor: (backend: string) => string, force = false): Promise<{ hit: ZooResult } | { hit: null; backend: string; key: string }> {
  const expected = keyFor('wasm');
  if (!force) {
    const hit = cachedZoo(dir, expected);
    if (hit) return { hit };
  }
  const backend = await useTrainingBackend();
  const key = keyFor(backend);
  if (!force && key !== expected) {
    const hit = cachedZoo(dir, key);
    if (hit) return { hit };
  }
  return { hit: null, backend, key };
}

/** Writes a checkpoint folder of F32 tensors in the order given. */
export function writeModelFolder(dir: string, config: object, tensors: ReadonlyArray<{ name: string; shape: number[] }>, weights: ReadonlyMap<string, Float32Array>, files: Record<string, string> = {}): void {
  const writer = new CheckpointWriter(dir, { tensors: tensors.map((t) => ({ ...t, dtype: 'F32' as const })) });
  try {
    for (const { name } of tensors) {
      const w = weights.get(name);
      if (!w) throw new RuntimeFailure('E_ZOO_INTERNAL', `zoo: tensor ${name} was not produced by training`);
      writer.write(name, w);
    }
    writer.finish({ config, files });
  } catch (err) {
    writer.abort();
    throw err;
  }
}

export function writeYaml(path: string, value: unknown, header: string): void {
  writeFileAtomic(path, `# ${header}\n${stringify(value)}`);
}

export function writeZooManifest(dir: string, manifest: ZooManifest): void {
  writeFileAtomic(join(dir, 'zoo.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}

/** Counts work units and forwards them to the caller's progress callback. */
export class ProgressCounter {
  private done = 0;
  constructor(private readonly total: number, private readonly cb?: (p: ZooProgress) => void) {}
  add(units: number, stage: string): void {
    this.done = Math.min(this.total, this.done + units);
    this.cb?.({ stage, done: this.done, total: this.total });
  }
}
