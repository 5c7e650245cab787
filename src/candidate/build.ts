/**
 * Building a candidate from the sources' catalogues: a PS recipe is planned (src/merge/plan.ts)
 * and merged tensor by tensor from the checkpoint files; a DFS layer path is composed of the
 * sources' layers. A TensorFlow.js model is built only when some evaluator runs one (its tensors
 * go to the backend as they are merged); a `command` evaluator gets the candidate streamed into a
 * temporary Hugging Face folder (sharded, the sources' dtype, tokenizer files copied), written
 * once, on its first request. So a command-only search needs nothing of the architecture but
 * tensor names, shapes and layer structure, and no whole model is ever held in memory.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { openCheckpoint } from '../checkpoint/index.ts';
import { temporaryModelFolder, type TemporaryModel } from '../eval/index.ts';
import { InputError, MissingTensorError } from '../errors.ts';
import { computeTensor, planLayerPath, planMerge, withPlannedVocab, writeMergedFolder, type MergePlan, type SourceSet } from '../merge/index.ts';
import { MLP_ARCHITECTURE, composeLlamaPath, composeMlpPath, familyOf, LlamaModel, loadTokenizer, modelFromWeights, parseLlamaConfig, parseResidualMlpConfig, ResidualMlp, weightsFromMap, type RunnableModel, type TextTokenizer, type WeightSource } from '../models/index.ts';
import type { Recipe } from '../recipe/index.ts';
import { decodeToFloat32 } from '../tensor/dtype.ts';
import { sourceCatalog, sourceSet, type SourceModel, type SourceModels } from './sources.ts';
import type { BuiltFolder, CandidateTask, WorkerData } from './types.ts';

/** The merge plan of a PS recipe over the sources' catalogues (every input error raised here). */
export function planCandidate(recipe: Recipe, sources: SourceModels): MergePlan {
  return planMerge(recipe, (m) => {
    const s = sources[m];
    if (!s) throw new InputError('E_RECIPE_MODEL', `the recipe names model ${m}, which is not among the search's sources (${Object.keys(sources).join(', ')})`);
    return sourceCatalog(s);
  });
}

/** Merge a recipe into memory: tensor name -> float32 data (each output its own array). */
export function mergeToMemory(recipe: Recipe, sources: SourceModels): { tensors: Map<string, Float32Array>; configFrom: string } {
  const plan = planCandidate(recipe, sources);
  const set = sourceSet(sources);
  try {
    const weights = mergedWeights(plan, set, recipe.seed, 'merged model');
    return { tensors: new Map(plan.tasks.map((t) => [t.name, weights.readFloat32(t.name)])), configFrom: plan.configFrom };
  } finally {
    set.close();
  }
}

/**
 * A plan's output as a weight source that merges each tensor when the model asks for it, into an
 * array of its own that the backend then holds: a model is built with no second, whole merged copy
 * beside it.
 */
export function mergedWeights(plan: MergePlan, set: SourceSet, seed: string | number, label: string): WeightSource {
  const tasks = new Map(plan.tasks.map((t) => [t.name, t]));
  const reader = set.reader();
  const task = (name: string) => {
    const t = tasks.get(name);
    if (!t) throw new MissingTensorError(`tensor ${name} is not in ${label}`);
    return t;
  };
  return {
    path: label,
    has: (name) => tasks.has(name),
    info: (name) => ({ shape: task(name).shape }),
    readFloat32(name) {
      const t = task(name);
      if (t.kind === 'copy') {
        const ref = t.models[0]!;
        return decodeToFloat32(t.dtype, set.readRaw(ref.model, ref.tensor));
      }
      const out = new Float32Array(t.shape.reduce((a, b) => a * b, 1));
      const merged = computeTensor(t, plan.method, reader, seed, out);
      // a method may hand back one of its (pooled) inputs: keep a copy, the pool is reused
      return merged === out ? out : Float32Array.from(merged);
    },
  };
}

/** A model's config with its layer count set to `layers`, under whichever key it uses. */
export function withLayerCount(config: Record<string, unknown> | null, layers: number): Record<string, unknown> | undefined {
  if (!config) return undefined;
  const out = { ...config };
  for (const key of ['num_hidden_layers', 'num_blocks', 'n_layer', 'num_layers']) if (key in out) out[key] = layers;
  return out;
}

/**
 * A recipe merged into a new in-memory source (a hybrid run's PS best, as a DFS source): the
 * owner and remote workers build it the same way, so their DFS candidates see the same model.
 * Its float32 tensors live in SharedArrayBuffers that every worker thread views without a copy.
 */
export function mergedSourceModel(key: string, recipe: Recipe, sources: SourceModels): SourceModel {
  const { tensors, configFrom } = mergeToMemory(recipe, sources);
  const from = sources[configFrom]!;
  const memory: Record<string, Float32Array> = {};
  const catalog: SourceModel['tensors'] = {};
  for (const [n, t] of tensors) {
    const shared = new Float32Array(new SharedArrayBuffer(t.byteLength));
    shared.set(t);
    memory[n] = shared;
    catalog[n] = { dtype: from.tensors[n]?.dtype ?? 'F32', shape: from.tensors[n]?.shape ?? [t.length] };
  }
  return { path: key, format: 'merged', config: from.config, layers: from.layers, tokenizerDir: from.tokenizerDir, tensors: catalog, memory };
}

/**
 * A candidate ready to score: the model the built-in evaluators run (null when every evaluator
 * is a command), and its folder for command evaluators, written on the first call of `modelDir`.
 */
export interface BuiltCandidate {
  model: RunnableModel | null;
  modelDir(): string;
  /** Frees the model (unless it shares its sources' tensors, as a layer path does) and removes the folder. */
  dispose(): void;
}

/**
 * Builds the candidates of one evaluation slot (a pool thread). It holds what candidates share:
 * the slot's pooled reader over the source files, the sources' tokenizers, and the DFS sources
 * uploaded to the backend once each (layer paths share their tensors). Close it with the slot.
 */
export class CandidateBuilder {
  private readonly set: SourceSet;
  private readonly tokenizers = new Map<string, TextTokenizer | null>();
  private readonly loaded = new Map<string, RunnableModel>();

  /** `needsModel`: some evaluator runs the model itself (else only folders are written). */
  constructor(private readonly data: WorkerData, private readonly needsModel: boolean) {
    this.set = sourceSet(data.sources);
  }

  /** A PS candidate from its plan (planCandidate of its recipe). */
  ps(task: Extract<CandidateTask, { kind: 'ps' }>, plan: MergePlan): BuiltCandidate {
    const from = this.data.sources[plan.configFrom]!;
    const model = this.needsModel
      ? modelFromWeights(withPlannedVocab(from.config!, plan), mergedWeights(plan, this.set, task.recipe.seed, 'merged candidate'), { tokenizer: this.tokenizerOf(plan.tokenizerFrom), file: `${plan.configFrom}/config.json` })
      : null;
    const config = withPlannedVocab(task.recipe.slices ? withLayerCount(from.config, plan.layers) : from.config ?? undefined, plan);
    return this.built(model, true, () => this.writeFolder(plan, task.recipe.seed, config));
  }

  /** A DFS candidate: the layer path composed of the uploaded sources; its folder planned by planLayerPath. */
  dfs(task: Extract<CandidateTask, { kind: 'dfs' }>): BuiltCandidate {
    let model: RunnableModel | null = null;
    if (this.needsModel) {
      const models = task.sources.map((p) => this.sourceModel(p));
      model = models[0] instanceof LlamaModel
        ? composeLlamaPath(models as LlamaModel[], task.steps, { embeddings: task.embeddings, head: task.head })
        : composeMlpPath(models as ResidualMlp[], task.steps, { embeddings: task.embeddings, head: task.head });
    }
    return this.built(model, false, () => {
      const plan = this.layerPathPlan(task);
      return this.writeFolder(plan, 0, withLayerCount(this.data.sources[plan.configFrom]!.config, plan.layers));
    });
  }

  private layerPathPlan(task: Extract<CandidateTask, { kind: 'dfs' }>): MergePlan {
    const sources = task.sources.map((key) => {
      const m = this.data.sources[key]!;
      return { key, catalog: sourceCatalog(m), inputIsEmbedding: isResidualMlp(m) };
    });
    return planLayerPath(sources, task.steps, task.embeddings, task.head);
  }

  /**
   * A candidate written to a folder of its own under `parent`, kept after the call (the
   * pipelined runner scores it on an evaluation slot and removes it: src/pool/pipeline.ts), with
   * the times of its merge and of the writing within it.
   */
  folder(task: CandidateTask, plan: MergePlan | null, parent: string): BuiltFolder {
    const mergeStart = epochMs();
    const timing = { writeMs: 0 };
    let written: TemporaryModel;
    if (task.kind === 'ps') {
      const from = this.data.sources[plan!.configFrom]!;
      const config = withPlannedVocab(task.recipe.slices ? withLayerCount(from.config, plan!.layers) : from.config ?? undefined, plan!);
      written = this.writeFolder(plan!, task.recipe.seed, config, parent, timing);
    } else {
      const path = this.layerPathPlan(task);
      written = this.writeFolder(path, 0, withLayerCount(this.data.sources[path.configFrom]!.config, path.layers), parent, timing);
    }
    const mergeEnd = epochMs();
    return { folder: written.dir, root: dirname(written.dir), phases: { mergeStart, mergeEnd, writeMs: timing.writeMs } };
  }

  close(): void {
    this.set.close();
  }

  /** `owned`: the model holds tensors of its own (a path shares its sources'). */
  private built(model: RunnableModel | null, owned: boolean, write: () => TemporaryModel): BuiltCandidate {
    let onDisk: TemporaryModel | null = null;
    return {
      model,
      modelDir: () => (onDisk ??= write()).dir,
      dispose: () => {
        if (owned) model?.dispose();
        onDisk?.cleanup();
      },
    };
  }

  private tokenizerOf(path: string): TextTokenizer | null {
    if (!this.tokenizers.has(path)) {
      const m = this.data.sources[path]!;
      this.tokenizers.set(path, m.tokenizerDir && existsSync(join(m.tokenizerDir, 'tokenizer.json')) ? loadTokenizer(m.tokenizerDir, m.config!) : null);
    }
    return this.tokenizers.get(path)!;
  }

  private sourceModel(path: string): RunnableModel {
    let m = this.loaded.get(path);
    if (!m) {
      const s = this.data.sources[path]!;
      const ckpt = s.memory ? null : openCheckpoint(path);
      try {
        const weights: WeightSource = ckpt ?? weightsFromMap(new Map(Object.entries(s.memory!)), path);
        m = familyOf(s.config, `${path}/config.json`) === 'llama'
          ? LlamaModel.load(parseLlamaConfig(s.config), weights, this.tokenizerOf(path))
          : ResidualMlp.load(parseResidualMlpConfig(s.config), weights);
      } finally {
        ckpt?.close(); // every tensor was read at upload
      }
      this.loaded.set(path, m);
    }
    return m;
  }

  private writeFolder(plan: MergePlan, seed: string | number, config: Record<string, unknown> | undefined, parent = this.data.candidateDir, timing?: { writeMs: number }): TemporaryModel {
    return temporaryModelFolder((dir) => {
      const tok = this.data.sources[plan.tokenizerFrom]?.tokenizerDir;
      writeMergedFolder(plan, this.set, dir, { seed, config, maxShardBytes: this.data.shardBytes, durable: false, ...(tok ? { tokenizerFrom: tok } : {}), ...(timing ? { timing } : {}) });
    }, parent, candidateFolderPrefix());
  }
}

/** Milliseconds since the epoch, comparable between threads (performance.now() is per thread). */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * The name prefix of this process's candidate folders: host and pid, so a later session can tell
 * the folders a dead process left behind (sweepCandidateFolders, src/candidate/slots.ts).
 */
export function candidateFolderPrefix(pid = process.pid): string {
  return `evomerge-candidate-${hostTag()}-${pid}-`;
}

/** A short tag of this host's name (candidate folders on a shared file system name their host). */
export function hostTag(): string {
  return createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
}

/** The residual MLP family (its input projection is the embeddings of a layer path). */
function isResidualMlp(m: SourceModel): boolean {
  const archs = m.config && Array.isArray(m.config.architectures) ? (m.config.architectures as unknown[]) : [];
  return archs.includes(MLP_ARCHITECTURE);
}
