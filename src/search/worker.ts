/**
 * The search's worker handler (loaded by src/pool/worker.mjs in each pool thread): a
 * candidate (a PS recipe, or a DFS layer path) becomes a model in memory on this thread's
 * backend, the evaluators score it, and the metrics and fitness go back to the owner.
 */
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { createEvaluator, loadManifest, type Evaluator } from '../eval/index.ts';
import { writeTemporaryModel, type TemporaryModel } from '../eval/materialize.ts';
import { InputError } from '../errors.ts';
import { getMethod } from '../methods/index.ts';
import { computeTensor, planMerge } from '../merge/index.ts';
import { composeLlamaPath, composeMlpPath, familyOf, LlamaModel, loadTokenizer, modelFromWeights, parseLlamaConfig, parseResidualMlpConfig, ResidualMlp, useBackend, weightsFromMap, type BackendChoice, type RunnableModel, type TextTokenizer } from '../models/index.ts';
import type { Recipe } from '../recipe/index.ts';
import type { MetricValue } from '../store/index.ts';
import type { CandidateScore } from './loop.ts';
import { sharedCatalog, sharedReader, type SharedModel, type SharedSources } from './sources.ts';
import type { DfsStep } from '../space/dfs.ts';

export interface EvaluatorSpec {
  id: string;
  manifest: string;
  weight: number;
}

export interface WorkerData {
  sources: SharedSources;
  evaluators: EvaluatorSpec[];
  backend: BackendChoice;
  objective: 'weighted-sum' | 'multi';
  allowTestSplit: boolean;
}

export type CandidateTask = (
  | { kind: 'ps'; recipe: Recipe }
  | { kind: 'dfs'; sources: string[]; steps: DfsStep[]; embeddings: number; head: number }
) & { /** The candidate's id in the run database (names it in injected faults). */ candidateId?: number };

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

/** Merge a recipe in memory over shared sources: tensor name -> float32 data. */
export function mergeShared(recipe: Recipe, sources: SharedSources): { tensors: Map<string, Float32Array>; configFrom: string } {
  const plan = planMerge(recipe, (m) => {
    const s = sources[m];
    if (!s) throw new Error(`the recipe names model ${m}, which is not among the loaded sources`);
    return sharedCatalog(s);
  });
  const reader = sharedReader(sources);
  const method = getMethod(plan.method.id);
  const tensors = new Map<string, Float32Array>();
  for (const task of plan.tasks) {
    tensors.set(task.name, task.kind === 'copy' ? reader.read(task.models[0]!.model, task.models[0]!.tensor) : computeTensor(task, method, reader, recipe.seed));
  }
  return { tensors, configFrom: plan.configFrom };
}

/**
 * A recipe merged into a new shared source (a hybrid run's PS best, as a DFS source): the
 * owner and remote workers build it the same way, so their DFS candidates see the same model.
 */
export function mergedSharedModel(key: string, recipe: Recipe, sources: SharedSources): SharedModel {
  const { tensors, configFrom } = mergeShared(recipe, sources);
  const from = sources[configFrom]!;
  return {
    path: key, format: 'merged', config: from.config, layers: from.layers, tokenizerDir: from.tokenizerDir,
    tensors: Object.fromEntries([...tensors].map(([n, t]) => {
      const shared = new Float32Array(new SharedArrayBuffer(t.byteLength));
      shared.set(t);
      return [n, { dtype: from.tensors[n]?.dtype ?? 'F32', shape: from.tensors[n]!.shape, data: shared }];
    })),
  };
}

export async function createHandler(data: WorkerData) {
  const faults = parseInjectedFaults(process.env.EVOMERGE_FAULTS);
  const backend = await useBackend(data.backend);
  const evaluators: Array<{ spec: EvaluatorSpec; ev: Evaluator }> = data.evaluators.map((spec) => ({ spec, ev: createEvaluator(loadManifest(spec.manifest), { purpose: 'search', allowTestSplit: data.allowTestSplit }) }));
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
      const weights = weightsFromMap(new Map(Object.entries(s.tensors).map(([n, t]) => [n, t.data])), path);
      m = familyOf(s.config, `${path}/config.json`) === 'llama'
        ? LlamaModel.load(parseLlamaConfig(s.config), weights, tokenizerOf(path))
        : ResidualMlp.load(parseResidualMlpConfig(s.config), weights);
      loaded.set(path, m);
    }
    return m;
  };

  return async (task: CandidateTask): Promise<CandidateScore> => {
    let model: RunnableModel;
    let owned = true;
    let onDisk: TemporaryModel | null = null;
    let modelDir: (() => string) | undefined;
    if (task.kind === 'ps') {
      const { tensors, configFrom } = mergeShared(task.recipe, data.sources);
      const from = data.sources[configFrom]!;
      const fault = task.candidateId === undefined ? undefined : faults.get(task.candidateId);
      if (fault) return injectFault(fault, task.candidateId!);
      model = modelFromWeights(from.config!, weightsFromMap(tensors, 'merged candidate'), { tokenizer: tokenizerOf(configFrom), file: `${configFrom}/config.json` });
      // command evaluators read the candidate from a folder: write it once, on first request
      modelDir = () => {
        onDisk ??= writeTemporaryModel({
          config: from.config!, tokenizerFrom: from.tokenizerDir ?? undefined,
          tensors: [...tensors].map(([name, t]) => ({ name, shape: from.tensors[name]?.shape ?? [t.length], data: t })),
        });
        return onDisk.dir;
      };
    } else {
      const fault = task.candidateId === undefined ? undefined : faults.get(task.candidateId);
      if (fault) return injectFault(fault, task.candidateId!);
      const models = task.sources.map(sourceModel);
      model = models[0] instanceof LlamaModel
        ? composeLlamaPath(models as LlamaModel[], task.steps, { embeddings: task.embeddings, head: task.head })
        : composeMlpPath(models as ResidualMlp[], task.steps, { embeddings: task.embeddings, head: task.head });
      owned = false; // the path shares its sources' tensors
    }
    try {
      const metrics: MetricValue[] = [];
      const objectives: number[] = [];
      let fitness = 0;
      for (const { spec, ev } of evaluators) {
        if (!ev.needsModel && !modelDir) {
          throw new InputError('E_DFS_COMMAND', `evaluator '${spec.id}' runs an external program on a model folder, but a data-flow candidate (a layer path) cannot be written as a checkpoint yet; use model evaluators for DFS stages`);
        }
        const r = await ev.evaluate(model, { backend, modelDir });
        for (const [metric, value] of Object.entries(r.metrics)) metrics.push({ evaluator: spec.id, metric, value });
        metrics.push({ evaluator: spec.id, metric: 'fitness', value: r.fitness });
        objectives.push(r.fitness);
        fitness += spec.weight * r.fitness;
      }
      return { fitness, metrics, backend: backend.name, ...(data.objective === 'multi' ? { objectives } : {}) };
    } finally {
      if (owned) model.dispose();
      (onDisk as TemporaryModel | null)?.cleanup();
    }
  };
}
