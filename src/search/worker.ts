/**
 * The search's worker handler (loaded by src/pool/worker.mjs in each pool thread): a candidate
 * (a PS recipe, or a DFS layer path) is planned against the sources' catalogues, then merged
 * tensor by tensor from the checkpoint files. A TensorFlow.js model is built only when some
 * evaluator needs one (its tensors go to the backend as they are merged); a `command` evaluator
 * gets the candidate streamed into a temporary Hugging Face folder (sharded, the sources' dtype,
 * tokenizer files copied), so a command-only search needs nothing of the architecture but tensor
 * names, shapes and layer structure, and never holds a whole model in memory.
 */
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { openCheckpoint } from '../checkpoint/index.ts';
import { createEvaluator, loadManifest, temporaryModelFolder, type EvalResult, type Evaluator, type TemporaryModel } from '../eval/index.ts';
import { InputError, MissingTensorError } from '../errors.ts';
import { computeTensor, planLayerPath, planMerge, withPlannedVocab, writeMergedFolder, type MergePlan, type SourceSet } from '../merge/index.ts';
import { MLP_ARCHITECTURE, composeLlamaPath, composeMlpPath, familyOf, LlamaModel, loadTokenizer, modelFromWeights, parseLlamaConfig, parseResidualMlpConfig, ResidualMlp, useBackend, weightsFromMap, type BackendChoice, type BackendInfo, type RunnableModel, type TextTokenizer, type WeightSource } from '../models/index.ts';
import type { Recipe } from '../recipe/index.ts';
import type { MetricValue } from '../store/index.ts';
import { decodeToFloat32 } from '../tensor/dtype.ts';
import type { CandidateScore } from './loop.ts';
import { sourceCatalog, sourceSet, type SourceModel, type SourceModels } from './sources.ts';
import type { DfsStep } from '../space/dfs.ts';
import { race, type FidelityTask } from './fidelity.ts';

export interface EvaluatorSpec {
  id: string;
  manifest: string;
  weight: number;
}

export interface WorkerData {
  sources: SourceModels;
  evaluators: EvaluatorSpec[];
  backend: BackendChoice;
  objective: 'weighted-sum' | 'multi';
  allowTestSplit: boolean;
  /** Largest shard of a candidate folder written for command evaluators (default: the writer's, 5 GB). */
  shardBytes?: number;
}

export type CandidateTask = (
  | { kind: 'ps'; recipe: Recipe }
  | { kind: 'dfs'; sources: string[]; steps: DfsStep[]; embeddings: number; head: number }
) & {
  /** The candidate's id in the run database (names it in injected faults). */
  candidateId?: number;
  /** Multi-fidelity evaluation (space `fidelity`): rungs, confidence and the score to beat; absent: every item. */
  fidelity?: FidelityTask;
};

export type InjectedFault = 'throw' | 'hang' | 'nan' | 'exit' | 'kill';

/**
 * A testing aid for `evomerge bench faults`, never set in normal use: EVOMERGE_FAULTS lists
 * `fault@candidateId` pairs (e.g. `throw@3,hang@5,nan@7,exit@9,kill@11`). After its merge, that
 * candidate's evaluation throws, hangs (until the pool's timeout terminates the thread), returns
 * NaN, ends its worker thread, or SIGKILLs the whole process. Read once per worker thread.
 */
export function parseInjectedFaults(text: string | undefined): Map<number, InjectedFault> {
  const out = new Map<number, InjectedFault>();
  for (const part of (text ?? '').split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^(throw|hang|nan|exit|kill)@(\d+)$/.exec(part);
    if (!m) throw new InputError('E_FAULTS_SPEC', `EVOMERGE_FAULTS: '${part}' is not fault@candidateId with fault one of throw, hang, nan, exit, kill`);
    out.set(Number(m[2]), m[1] as InjectedFault);
  }
  return out;
}

async function injectFault(fault: InjectedFault, id: number): Promise<CandidateScore> {
  if (fault === 'throw') throw new Error(`injected fault: the evaluator of candidate ${id} threw`);
  if (fault === 'nan') return { fitness: NaN, metrics: [{ evaluator: 'injected', metric: 'fitness', value: NaN }] };
  if (fault === 'exit') process.exit(70); // in a worker thread this ends the thread only
  if (fault === 'kill') process.kill(process.pid, 'SIGKILL');
  return new Promise<never>(() => {}); // hang: only the pool's timeout ends it
}

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

export async function createHandler(data: WorkerData) {
  const faults = parseInjectedFaults(process.env.EVOMERGE_FAULTS);
  const evaluators: Array<{ spec: EvaluatorSpec; ev: Evaluator }> = data.evaluators.map((spec) => ({ spec, ev: createEvaluator(loadManifest(spec.manifest), { purpose: 'search', allowTestSplit: data.allowTestSplit }) }));
  // the backend (TensorFlow.js) is loaded only when some evaluator runs the model itself
  const needsModel = evaluators.some((e) => e.ev.needsModel);
  const backend: BackendInfo | null = needsModel ? await useBackend(data.backend) : null;
  // this thread's reader: source tensors read per tensor from the files into pooled arrays
  const set = sourceSet(data.sources);
  const tokenizers = new Map<string, TextTokenizer | null>();
  const tokenizerOf = (path: string): TextTokenizer | null => {
    if (!tokenizers.has(path)) {
      const m = data.sources[path]!;
      tokenizers.set(path, m.tokenizerDir && existsSync(join(m.tokenizerDir, 'tokenizer.json')) ? loadTokenizer(m.tokenizerDir, m.config!) : null);
    }
    return tokenizers.get(path)!;
  };
  // DFS sources are uploaded once per thread; paths share their tensors
  const loaded = new Map<string, RunnableModel>();
  const sourceModel = (path: string): RunnableModel => {
    let m = loaded.get(path);
    if (!m) {
      const s = data.sources[path]!;
      const ckpt = s.memory ? null : openCheckpoint(path);
      try {
        const weights: WeightSource = ckpt ?? weightsFromMap(new Map(Object.entries(s.memory!)), path);
        m = familyOf(s.config, `${path}/config.json`) === 'llama'
          ? LlamaModel.load(parseLlamaConfig(s.config), weights, tokenizerOf(path))
          : ResidualMlp.load(parseResidualMlpConfig(s.config), weights);
      } finally {
        ckpt?.close(); // every tensor was read at upload
      }
      loaded.set(path, m);
    }
    return m;
  };
  const writeFolder = (plan: MergePlan, seed: string | number, config: Record<string, unknown> | undefined): TemporaryModel => temporaryModelFolder((dir) => {
    const tok = data.sources[plan.tokenizerFrom]?.tokenizerDir;
    writeMergedFolder(plan, set, dir, { seed, config, maxShardBytes: data.shardBytes, durable: false, ...(tok ? { tokenizerFrom: tok } : {}) });
  });

  return async (task: CandidateTask): Promise<CandidateScore> => {
    let model: RunnableModel | null = null;
    let owned = true;
    let onDisk: TemporaryModel | null = null;
    let modelDir: () => string;
    const fault = task.candidateId === undefined ? undefined : faults.get(task.candidateId);
    if (task.kind === 'ps') {
      const plan = planCandidate(task.recipe, data.sources);
      if (fault) return injectFault(fault, task.candidateId!);
      const from = data.sources[plan.configFrom]!;
      if (needsModel) {
        model = modelFromWeights(withPlannedVocab(from.config!, plan), mergedWeights(plan, set, task.recipe.seed, 'merged candidate'), { tokenizer: tokenizerOf(plan.tokenizerFrom), file: `${plan.configFrom}/config.json` });
      }
      // command evaluators read the candidate from a folder: streamed there once, on first request
      const config = withPlannedVocab(task.recipe.slices ? withLayerCount(from.config, plan.layers) : from.config ?? undefined, plan);
      modelDir = () => (onDisk ??= writeFolder(plan, task.recipe.seed, config)).dir;
    } else {
      if (fault) return injectFault(fault, task.candidateId!);
      if (needsModel) {
        const models = task.sources.map(sourceModel);
        model = models[0] instanceof LlamaModel
          ? composeLlamaPath(models as LlamaModel[], task.steps, { embeddings: task.embeddings, head: task.head })
          : composeMlpPath(models as ResidualMlp[], task.steps, { embeddings: task.embeddings, head: task.head });
        owned = false; // the path shares its sources' tensors
      }
      modelDir = () => {
        if (!onDisk) {
          const sources = task.sources.map((key) => {
            const m = data.sources[key]!;
            return { key, catalog: sourceCatalog(m), inputIsEmbedding: isResidualMlp(m) };
          });
          const plan = planLayerPath(sources, task.steps, task.embeddings, task.head);
          onDisk = writeFolder(plan, 0, withLayerCount(data.sources[plan.configFrom]!.config, plan.layers));
        }
        return onDisk.dir;
      };
    }
    try {
      const metrics: MetricValue[] = [];
      const objectives: number[] = [];
      let fitness = 0;
      let itemEvals = 0;
      let fidelity: number | undefined;
      const ctx = { backend, modelDir };
      let results: EvalResult[];
      if (task.fidelity) {
        const raced = await race(evaluators.map(({ spec, ev }) => ({ id: spec.id, weight: spec.weight, ev })), task.fidelity, {
          whole: (e) => e.ev.evaluate(model, ctx),
          items: (e, indices) => e.ev.scoreItems!(model, ctx, indices),
        });
        results = raced.results;
        fidelity = raced.fidelity;
        itemEvals = raced.itemEvals;
      } else {
        results = [];
        for (const { ev } of evaluators) {
          const r = await ev.evaluate(model, ctx);
          results.push(r);
          itemEvals += r.samples;
        }
      }
      results.forEach((r, i) => {
        const spec = evaluators[i]!.spec;
        for (const [metric, value] of Object.entries(r.metrics)) metrics.push({ evaluator: spec.id, metric, value });
        metrics.push({ evaluator: spec.id, metric: 'fitness', value: r.fitness });
        objectives.push(r.fitness);
        fitness += spec.weight * r.fitness;
      });
      return { fitness, metrics, backend: backend?.name ?? 'none', ...(data.objective === 'multi' ? { objectives } : {}), itemEvals, ...(fidelity !== undefined ? { fidelity } : {}) };
    } finally {
      if (owned) (model as RunnableModel | null)?.dispose();
      (onDisk as TemporaryModel | null)?.cleanup();
    }
  };
}

/** The residual MLP family (its input projection is the embeddings of a layer path). */
function isResidualMlp(m: SourceModel): boolean {
  const archs = m.config && Array.isArray(m.config.architectures) ? (m.config.architectures as unknown[]) : [];
  return archs.includes(MLP_ARCHITECTURE);
}
