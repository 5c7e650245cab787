/**
 * The stages of a search space as problems for the stage loop: a PS stage (a genome of merge
 * parameters per layer group, model and tensor filter, decoded by the space's codec) and a DFS
 * stage (a layer path, Akiba et al. 2024, section 3.2), each with its start (the space's `init`:
 * the method defaults, the fixed recipes, or a seeded point) and its task for the runner.
 */
import { createHash } from 'node:crypto';
import { InputError } from '../errors.ts';
import { getMethod } from '../methods/index.ts';
import { canonicalJson, recipeHash } from '../recipe/index.ts';
import { baselineGenomes, DfsCodec, MultiMethodCodec, PsCodec, resolveFilters, type SearchSpace } from '../space/index.ts';
import { loadSourceModel, type CandidateTask, type SourceModels } from '../candidate/index.ts';
import type { StageProblem } from './loop.ts';
import { architectureSource, resolveSpace, type ResolvedSpace } from './resolve.ts';
import { Rng, deriveSeed } from '../tensor/rng.ts';

export interface StagePlan {
  stage: number;
  kind: 'ps' | 'dfs';
  problem: StageProblem<CandidateTask>;
  sources: SourceModels;
  /** The genome of the method defaults (PS) or the init_source's path (DFS): the set-up's dry run plans it. */
  initialGenome: number[];
  /** Labels of the fixed recipes evaluated first (the space's init: baselines). */
  warmStart: string[];
  codec?: PsCodec | MultiMethodCodec;
}

export function hashOf(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

export function withX0(optimizer: { id: string; options: Record<string, unknown> }, x0: number[], initial: number[][] = []): { id: string; options: unknown } {
  // CMA-ES starts at the genome of the method defaults (PS) or of one source's own path (DFS)
  let options = optimizer.options;
  if (optimizer.id.includes('cma') && options.x0 === undefined) options = { ...options, x0 };
  // every optimizer evaluates the warm-start points first (its `initial` option)
  if (initial.length > 0 && options.initial === undefined) options = { ...options, initial };
  return { id: optimizer.id, options };
}

/** The start of a stage (the space's `init`): CMA-ES's mean, and the points evaluated first. */
export function startOf(space: SearchSpace, stage: number, dimension: number, center: number[], baselines: () => Array<{ label: string; genome: number[] }>): { x0: number[]; initial: Array<{ label: string; genome: number[] }> } {
  const init = space.init ?? 'baselines';
  if (init === 'random') {
    const rng = Rng.seeded(deriveSeed(space.seed, 'init', stage));
    return { x0: Array.from({ length: dimension }, () => rng.next()), initial: [] };
  }
  if (init === 'center') return { x0: center, initial: [] };
  // the mean itself is not a candidate of CMA-ES, so a recipe at the centre is injected too
  const seen = new Set<string>();
  const initial = baselines().filter((b) => !seen.has(JSON.stringify(b.genome)) && seen.add(JSON.stringify(b.genome)));
  return { x0: center, initial };
}

/** The task's multi-fidelity part (space `fidelity`): absent without it, so such tasks are as before. */
export function fidelityOf(space: SearchSpace, threshold: number | null | undefined): { fidelity?: CandidateTask['fidelity'] } {
  if (!space.fidelity) return {};
  return { fidelity: { rungs: space.fidelity.rungs, confidence: space.fidelity.confidence, threshold: threshold ?? null } };
}

export function psStage(r: ResolvedSpace, sources: SourceModels, stage: number): StagePlan {
  const ps = r.space.ps!;
  const layersFrom = architectureSource(r);
  const layout = {
    base: r.base, models: r.models.map((m) => m.path), modelNames: r.models.map((m) => m.name),
    layers: sources[layersFrom]!.layers.count, layersPerGroup: ps.layers_per_group, filters: resolveFilters(ps.filters, sources[layersFrom]!, layersFrom),
    ...(ps.layer_anchors !== undefined ? { layerAnchors: ps.layer_anchors } : {}),
    evolve: ps.evolve, fixed: ps.fixed, seed: r.space.seed,
    keep: Object.entries(r.keep ?? {}).map(([filter, model]) => ({ filter, owner: r.models.findIndex((m) => m.name === model) })),
  };
  const codec = Array.isArray(ps.method)
    ? new MultiMethodCodec({ ...layout, methods: ps.method.map(getMethod) })
    : new PsCodec({ ...layout, method: getMethod(ps.method) });
  const start = startOf(r.space, stage, codec.dimension, codec.initialGenome(), () => baselineGenomes(codec));
  return {
    stage, kind: 'ps', sources, initialGenome: codec.initialGenome(), warmStart: start.initial.map((b) => b.label), codec,
    problem: {
      stage, dimension: codec.dimension, optimizer: withX0(r.space.optimizer, start.x0, start.initial.map((b) => b.genome)),
      ...(r.space.fidelity ? { fidelity: true } : {}),
      prepare: (genome, candidate) => {
        const recipe = codec.decode(genome);
        return { recipe, recipeHash: recipeHash(recipe), task: { kind: 'ps', recipe, candidateId: candidate.id, ...fidelityOf(r.space, candidate.threshold) } };
      },
    },
  };
}

/** The genome length of a space's parameter-space stage (reads the sources' headers only). */
export function psDimension(space: SearchSpace, spacePath: string | null): number {
  const r = resolveSpace(space, spacePath);
  return psStage(r, sourceCatalogues(r), 0).problem.dimension;
}

/** The catalogues (headers and configs, no tensors) of a resolved space's base and models. */
export function sourceCatalogues(r: ResolvedSpace): SourceModels {
  const sources: SourceModels = {};
  for (const p of [r.base, ...r.models.map((m) => m.path)]) if (p) sources[p] = loadSourceModel(p);
  return sources;
}

export function dfsStage(r: ResolvedSpace, sources: SourceModels, names: Array<{ name: string; path: string }>, stage: number, optimizer: { id: string; options: Record<string, unknown> }): StagePlan {
  const dfs = r.space.dfs!;
  const codec = new DfsCodec({
    sources: names.map((n) => ({ name: n.name, layers: sources[n.path]!.layers.count })),
    repetitions: dfs.repetitions, maxPathLength: dfs.max_path_length, scaleRange: dfs.scale_range, initSource: dfs.init_source,
  });
  const embeddings = dfs.embeddings_from;
  const head = dfs.head_from ?? embeddings;
  for (const [what, i] of [['embeddings_from', embeddings], ['head_from', head], ['init_source', dfs.init_source]] as const) {
    if (i >= names.length) throw new InputError('E_SPACE', `dfs.${what} is ${i}, but the stage has ${names.length} sources`);
  }
  // a layer path has no fixed recipes to start from: `baselines` is the init_source's own path
  const start = startOf(r.space, stage, codec.dimension, codec.initialGenome(), () => []);
  return {
    stage, kind: 'dfs', sources, initialGenome: codec.initialGenome(), warmStart: [],
    problem: {
      stage, dimension: codec.dimension, optimizer: withX0(optimizer, start.x0),
      ...(r.space.fidelity ? { fidelity: true } : {}),
      prepare: (genome, candidate) => {
        const steps = codec.decode(genome);
        const recipe = { kind: 'dfs', sources: names, steps, embeddings_from: embeddings, head_from: head };
        return { recipe, recipeHash: hashOf(recipe), task: { kind: 'dfs', sources: names.map((n) => n.path), steps, embeddings, head, candidateId: candidate.id, ...fidelityOf(r.space, candidate.threshold) } };
      },
    },
  };
}
