/**
 * Knowledge fusion, stage 1 of FuseLLM (Wan et al., ICLR 2024, "Knowledge Fusion of Large
 * Language Models") and FuseChat (Wan et al. 2024, "FuseChat: Knowledge Fusion of Chat Models"):
 * source models of other tokenizers and architectures are distilled into copies of one pivot,
 * giving targets of one architecture that `search`, `merge` and `baselines` take directly.
 *
 * - FuseLLM mode: one target, `<out>/fused/`, trained towards the fusion of the distributions of
 *   the pivot and every source (FuseLLM section 3.2: the target model is one of the sources).
 * - Pairwise mode (FuseChat section 3.2): one target per source, `<out>/<source>/`, each the pivot
 *   trained towards the fusion of the pivot's distribution and that one source's.
 *
 * Distributions are computed once per model and corpus and stored under `<out>/.fuse-work/`
 * (teacher.ts); training checkpoints each epoch there too (train.ts), so a killed run resumes,
 * and a target whose folder is complete for the same inputs is not trained again.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { CheckpointWriter, buildAtomically, openCheckpoint, writeFileAtomic } from '../checkpoint/index.ts';
import { EvomergeError, InputError } from '../errors.ts';
import { llamaShapesOf } from '../models/llama-layout.ts';
import { fingerprint } from '../candidate/sources.ts';
import { useTrainingBackend } from '../train/backend.ts';
import type { TopK } from './distributions.ts';
import { fuseAvgCE, fuseMinCE } from './fusion.ts';
import { FUSE_MAPPINGS, openFuseModel, pivotWindows, readCorpus, teacherDistributions, type Corpus, type FuseMapping, type FuseModel } from './teacher.ts';
import { trainFused } from './train.ts';

export const FUSE_FUNCTIONS = ['minCE', 'avgCE'] as const;
export type FuseFunction = (typeof FUSE_FUNCTIONS)[number];

export interface FuseProgress {
  /** `distributions <model>` or `train <target>`. */
  stage: string;
  done: number;
  total: number;
  loss?: number;
}

export interface FuseOptions {
  pivot: string;
  sources: string[];
  /** One corpus (text file or manifest) for every target, or in pairwise mode one per source. */
  data: string | string[];
  out: string;
  pairwise?: boolean;
  mapping?: FuseMapping;
  fusion?: FuseFunction;
  /** Weight of the causal-LM loss (FuseLLM section 4.1: 0.9). */
  lambda?: number;
  epochs?: number;
  lr?: number;
  batch?: number;
  seed?: number;
  /** Top-k kept per position (FuseLLM repository: 10). */
  k?: number;
  /** Tokens predicted per training window (default: the pivot's max_position_embeddings, at most 128). */
  context?: number;
  /** Run at most this many epochs per target in this call (the rest on the next call). */
  stopAfter?: number;
  onProgress?: (p: FuseProgress) => void;
}

export interface FusedTarget {
  name: string;
  dir: string;
  sources: string[];
  windows: number;
  losses: number[];
  /** True when the folder was already complete for these inputs. */
  cached: boolean;
  complete: boolean;
  resumedFrom: number;
  seconds: { distributions: number; training: number };
}

export interface FuseResult {
  out: string;
  mode: 'fusellm' | 'pairwise';
  backend: string;
  targets: FusedTarget[];
  seconds: number;
}

const sha = (v: unknown) => createHash('sha256').update(typeof v === 'string' ? v : JSON.stringify(v)).digest('hex');

function choice<T extends string>(flag: string, value: T | undefined, allowed: readonly T[], fallback: T): T {
  const v = value ?? fallback;
  if (!allowed.includes(v)) throw new InputError('E_BAD_FLAG', `${flag} must be one of ${allowed.join(', ')}, got '${v}'`);
  return v;
}

function positiveInt(flag: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new InputError('E_BAD_FLAG', `${flag} must be a positive integer, got ${v}`);
  return v;
}

function pivotWeights(pivot: FuseModel): Map<string, Float32Array> {
  const ckpt = openCheckpoint(pivot.dir);
  try {
    const out = new Map<string, Float32Array>();
    for (const { name } of llamaShapesOf(pivot.config)) {
      if (!ckpt.has(name)) throw new InputError('E_FUSE_MODEL', `pivot ${pivot.dir}: tensor ${name} is missing; the config implies it`);
      out.set(name, ckpt.readFloat32(name));
    }
    return out;
  } finally {
    ckpt.close();
  }
}

/** Runs stage 1; returns the targets written (see the module comment for the layout). */
export async function fuseModels(options: FuseOptions): Promise<FuseResult> {
  const started = performance.now();
  const out = resolve(options.out);
  const pairwise = options.pairwise ?? false;
  const mapping = choice('--mapping', options.mapping, FUSE_MAPPINGS, 'mined');
  const fusion = choice('--fusion', options.fusion, FUSE_FUNCTIONS, 'minCE');
  const lambda = options.lambda ?? 0.9;
  if (!(lambda >= 0 && lambda <= 1)) throw new InputError('E_BAD_FLAG', `--lambda must be in [0, 1], got ${options.lambda}`);
  const epochs = positiveInt('--epochs', options.epochs ?? 1);
  const batch = positiveInt('--batch', options.batch ?? 16);
  const k = positiveInt('--k', options.k ?? 10);
  const lr = options.lr ?? 1e-3;
  if (!(lr > 0) || !Number.isFinite(lr)) throw new InputError('E_BAD_FLAG', `--lr must be a positive number, got ${options.lr}`);
  const seed = options.seed ?? 0;
  if (options.sources.length === 0) throw new InputError('E_FUSE_SOURCES', 'fuse: no --source given; give at least one source model folder');

  const pivot = openFuseModel(options.pivot, 'pivot');
  const sources = options.sources.map((d) => openFuseModel(d, 'source'));
  const seen = new Map<string, string>();
  for (const s of sources) {
    if (resolve(s.dir) === resolve(pivot.dir)) throw new InputError('E_FUSE_SOURCES', `fuse: source ${s.dir} is the pivot; the pivot's own distributions always take part, so leave it out of --source`);
    if (seen.has(s.name)) throw new InputError('E_FUSE_SOURCES', `fuse: sources ${seen.get(s.name)} and ${s.dir} have the same folder name '${s.name}', which names their outputs; rename one`);
    if (s.name === 'fused' || s.name.startsWith('.')) throw new InputError('E_FUSE_SOURCES', `fuse: a source folder may not be named '${s.name}' (reserved in the output); rename it`);
    seen.set(s.name, s.dir);
  }
  const dataPaths = Array.isArray(options.data) ? options.data : [options.data];
  if (dataPaths.length === 0) throw new InputError('E_FUSE_DATA', 'fuse: no --data given; give a text file or an evaluator manifest with a train split');
  if (dataPaths.length > 1 && !(pairwise && dataPaths.length === sources.length)) {
    throw new InputError('E_FUSE_DATA', `fuse: ${dataPaths.length} --data given for ${sources.length} sources; give one corpus, or with --pairwise one per source in the order of --source`);
  }
  const corpora = dataPaths.map(readCorpus);
  const T = positiveInt('--context', options.context ?? Math.min(pivot.config.maxPositions, 128));
  if (T > pivot.config.maxPositions) throw new InputError('E_BAD_FLAG', `--context ${T} is longer than the pivot's max_position_embeddings (${pivot.config.maxPositions})`);

  const backend = await useTrainingBackend();
  const work = join(out, '.fuse-work');
  const initial = pivotWeights(pivot);
  const pivotPrint = await fingerprint(pivot.dir);
  const plans: Array<{ name: string; members: FuseModel[]; corpus: Corpus[] }> = pairwise
    ? sources.map((s, i) => ({ name: s.name, members: [s], corpus: corpora.length === 1 ? corpora : [corpora[i]!] }))
    : [{ name: 'fused', members: sources, corpus: corpora }];

  const targets: FusedTarget[] = [];
  for (const plan of plans) {
    const dir = join(out, plan.name);
    const text = plan.corpus.map((c) => c.text).join('\n');
    const windows = pivotWindows(pivot, text, T);
    const t0 = performance.now();
    const dists: TopK[][] = [];
    const ces: number[][] = [];
    const keys: string[] = [];
    for (const m of [pivot, ...plan.members]) {
      const r = await teacherDistributions({
        model: m, pivot, windows, mapping, k, workDir: join(work, 'distributions'),
        onProgress: (p) => options.onProgress?.({ stage: `distributions ${p.model}`, done: p.done, total: p.total }),
      });
      dists.push(r.seqs);
      ces.push(r.crossEntropies);
      keys.push(r.metadata.key!);
    }
    const settings = { mode: pairwise ? 'pairwise' : 'fusellm', fusion, mapping, lambda, epochs, batch, lr, seed, k, context: T };
    const key = sha({ pivot: pivotPrint, distributions: keys, settings });
    const t1 = performance.now();
    const done = existsSync(join(dir, 'fuse.json')) ? (JSON.parse(readFileSync(join(dir, 'fuse.json'), 'utf8')) as { key?: string; losses?: number[] }) : null;
    if (done?.key === key && existsSync(join(dir, 'config.json'))) {
      targets.push({ name: plan.name, dir, sources: plan.members.map((m) => m.dir), windows: windows.ids.length, losses: done.losses ?? [], cached: true, complete: true, resumedFrom: epochs, seconds: { distributions: (t1 - t0) / 1000, training: 0 } });
      continue;
    }
    // FuseLLM section 3.3 / FuseChat section 3.2: the fusion function chooses (MinCE) or weights
    // (AvgCE) the distributions of a window by each model's cross-entropy on its own tokenization
    // of it (FuseLLM's metric_ce); a model with no prediction in a window ranks last
    const fuse = fusion === 'minCE' ? fuseMinCE : fuseAvgCE;
    const fused = windows.ids.map((w, i) => fuse(dists.map((d) => d[i]!), w.subarray(1), k, 'sequence', {
      crossEntropies: ces.map((c) => (Number.isFinite(c[i]) ? c[i]! : Infinity)),
    }));
    let result;
    try {
      result = await trainFused({
        config: pivot.configJson, initial, windows: windows.ids, targets: fused, lambda, epochs, batch, learningRate: lr,
        seed: `${seed}:${plan.name}`, workDir: join(work, `train-${plan.name}`), key, stopAfter: options.stopAfter,
        onProgress: (p) => options.onProgress?.({ stage: `train ${plan.name} epoch ${p.epoch}/${p.epochs}`, done: (p.epoch - 1) * p.steps + p.step, total: p.epochs * p.steps, loss: p.loss }),
      });
    } catch (err) {
      if (err instanceof EvomergeError && err.code === 'E_ZOO_TRAIN') throw new InputError('E_FUSE_MODEL', `pivot ${pivot.dir}: ${err.message}`);
      throw err;
    }
    const t2 = performance.now();
    if (result.complete) {
      const record = {
        key, method: pairwise ? 'FuseChat pairwise knowledge fusion (stage 1)' : 'FuseLLM knowledge fusion (stage 1)',
        pivot: pivot.dir, sources: plan.members.map((m) => m.dir),
        data: plan.corpus.map((c) => ({ path: c.path, origin: c.origin, sha256: c.sha256, characters: c.text.length })),
        windows: windows.ids.length, ...settings, losses: result.losses, backend, createdAt: new Date().toISOString(),
      };
      await buildAtomically(dir, async (tmp) => {
        const shapes = llamaShapesOf(pivot.config);
        const writer = new CheckpointWriter(tmp, { tensors: shapes.map((s) => ({ ...s, dtype: 'F32' as const })) });
        try {
          for (const { name } of shapes) writer.write(name, result.weights.get(name)!);
          writer.finish({
            config: { ...pivot.configJson, evomerge_fuse: { mode: settings.mode, pivot: pivot.name, sources: plan.members.map((m) => m.name) } },
            tokenizerFrom: pivot.dir,
            files: { 'README.md': card(plan.name, record) },
          });
        } catch (err) {
          writer.abort();
          throw err;
        }
        writeFileAtomic(join(tmp, 'fuse.json'), `${JSON.stringify(record, null, 2)}\n`);
      });
    }
    targets.push({
      name: plan.name, dir, sources: plan.members.map((m) => m.dir), windows: windows.ids.length, losses: result.losses, cached: false,
      complete: result.complete, resumedFrom: result.resumedFrom, seconds: { distributions: (t1 - t0) / 1000, training: (t2 - t1) / 1000 },
    });
  }
  return { out, mode: pairwise ? 'pairwise' : 'fusellm', backend, targets, seconds: (performance.now() - started) / 1000 };
}

function card(name: string, r: Record<string, unknown> & { sources: string[]; losses: number[] }): string {
  return `# ${name}: fused target\n\n${String(r.method)}: the pivot \`${String(r.pivot)}\` trained towards the ${String(r.fusion)} fusion of its own next-token distributions and those of ${r.sources.map((s) => `\`${s}\``).join(', ')} (top-${String(r.k)}, vocabulary mapping ${String(r.mapping)}), with L = ${String(r.lambda)} CE(gold) + ${(1 - Number(r.lambda)).toFixed(2)} CE(fused), ${String(r.epochs)} epoch(s) over ${String(r.windows)} windows of ${String(r.context)} tokens.\n\nMean loss per epoch: ${r.losses.map((l) => l.toFixed(4)).join(', ')}.\n\nWritten by \`evomerge fuse\`; fuse.json holds the settings, the data with SHA-256, and the inputs' key. The architecture and tokenizer are the pivot's.\n`;
}
