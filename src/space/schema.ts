/**
 * The search-space file (`search-spaces/*.yaml`): one zod schema, the type derived from it.
 * Paths in a space (zoo, models, evaluator manifests) are resolved against the current folder
 * when relative, like any command-line path, so the shipped spaces work from the project root;
 * evaluator manifests taken from a zoo resolve inside the zoo folder.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { InputError } from '../errors.ts';

const Bounds = z.tuple([z.number(), z.number()]).refine(([lo, hi]) => lo <= hi, { message: 'bounds must be [low, high] with low <= high' });

export const PsSpaceSchema = z.strictObject({
  /** The merge method (a registry id, see `evomerge methods`), or a list to choose among (one categorical gene). */
  method: z.union([z.string().min(1), z.array(z.string().min(1)).min(2)]),
  /** Layers per group: each group of consecutive layers gets its own parameters (mergekit-evolve's layer granularity). */
  layers_per_group: z.number().int().positive().default(1),
  /**
   * Tensor-name substrings with parameters of their own; every other tensor uses the catch-all.
   * The kinds `attention`, `mlp` and `norm` stand for the substring the sources use for them
   * (self_attn / mlp / norm in the Llama family, fc / norm in the residual MLP). Each filter must
   * match some tensor of the base.
   */
  filters: z.array(z.string().min(1)).default([]),
  /**
   * Genes at this many evenly spaced anchors over the layer groups, each group's value
   * interpolated between them (mergekit's gradient lists): few genes for deep models.
   */
  layer_anchors: z.number().int().min(2).optional(),
  /** Parameters that evolve: a list of names (bounds: the method's search range), or name -> [low, high]. */
  evolve: z.union([z.array(z.string().min(1)).min(1), z.record(z.string(), Bounds)]),
  /** Parameters held fixed (global ones, and per-model ones applied to every model). */
  fixed: z.record(z.string(), z.union([z.number(), z.boolean(), z.string()])).default({}),
  /** Tensors taken from one model instead of merged: name substring -> model name. A zoo's own (per-task heads) are added. */
  keep: z.record(z.string(), z.string()).default({}),
});
export type PsSpace = z.infer<typeof PsSpaceSchema>;

export const DfsSpaceSchema = z.strictObject({
  /** r: how many times the sequence of all source layers is offered. */
  repetitions: z.number().int().positive().default(2),
  max_path_length: z.number().int().positive().optional(),
  scale_range: Bounds.default([0, 2]),
  /** The source whose own layers are the starting path (an index into the stage's sources). */
  init_source: z.number().int().nonnegative().default(0),
  /** The sources whose embeddings and head the path uses. */
  embeddings_from: z.number().int().nonnegative().default(0),
  head_from: z.number().int().nonnegative().optional(),
});
export type DfsSpace = z.infer<typeof DfsSpaceSchema>;

export const EvaluatorRefSchema = z.strictObject({
  /** A manifest file, or the name of a task of the zoo (its validation manifest is used, or the split's). */
  manifest: z.string().min(1).optional(),
  task: z.string().min(1).optional(),
  /** With `task`: the zoo's manifest for this split of the task (zoo.json lists them; default validation). */
  split: z.string().regex(/^[A-Za-z0-9_-]+$/, 'a split name: letters, digits, dash and underscore').optional(),
  weight: z.number().default(1),
}).refine((e) => (e.manifest ? 1 : 0) + (e.task ? 1 : 0) === 1, { message: 'give exactly one of manifest or task' })
  .refine((e) => e.split === undefined || e.task !== undefined, { message: 'split names a split of a zoo task; give it with task, not with manifest (a manifest names its own split)' });

/**
 * How the candidate a run exports is chosen (src/search/select.ts, noise.ts). At the end of each
 * stage its `top` candidates on the search's fitness are scored by `evaluators` (a second split:
 * data the search never saw) and the best there becomes the run's chosen candidate; without
 * `evaluators` the rule applies to the search's own scores of those candidates.
 */
export const SelectSchema = z.strictObject({
  evaluators: z.array(EvaluatorRefSchema).min(1).optional(),
  top: z.number().int().positive().default(10),
  /** max: the highest score; lcb: the highest score - z x its standard error; shrink: James-Stein shrinkage of each evaluator's scores toward the pool's mean. */
  rule: z.enum(['max', 'lcb', 'shrink']).default('max'),
  z: z.number().nonnegative().default(1),
});
export type SelectSpace = z.infer<typeof SelectSchema>;

export const OptimizerRefSchema = z.strictObject({
  id: z.string().min(1).default('cmaes'),
  options: z.record(z.string(), z.unknown()).default({}),
});

export const SearchSpaceSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'use letters, digits, dot, dash and underscore').optional(),
  description: z.string().optional(),
  /** A zoo folder (with zoo.json): its base and models are the sources and its tasks the evaluators. */
  zoo: z.string().min(1).optional(),
  base: z.string().min(1).optional(),
  models: z.array(z.strictObject({ name: z.string().min(1), path: z.string().min(1) })).optional(),
  mode: z.enum(['ps', 'dfs', 'hybrid']).default('ps'),
  ps: PsSpaceSchema.optional(),
  dfs: DfsSpaceSchema.optional(),
  /** Evaluators (default: every task of the zoo, weight 1). Fitness is the weighted sum of their fitness values. */
  evaluators: z.array(EvaluatorRefSchema).optional(),
  /** Several objectives (one per evaluator) for NSGA-II instead of a weighted sum. */
  objective: z.enum(['weighted-sum', 'multi']).default('weighted-sum'),
  /**
   * Where the search starts. `baselines` (the default): the first generation includes the fixed
   * recipes of `evomerge baselines` that the PS space can express, so a search never starts below
   * the best known recipe; `center`: the method defaults (DFS: the init_source's own path);
   * `random`: a seeded uniform point of the genome box as CMA-ES's mean.
   */
  init: z.enum(['baselines', 'center', 'random']).default('baselines'),
  optimizer: OptimizerRefSchema.default({ id: 'cmaes', options: {} }),
  /**
   * A gradient stage after a PS stage (mode ps): the best candidate's weight and lambda genes
   * refined by Adam on the loss of the validation items (src/refine/), masks held fixed; every
   * step is a candidate of stage 1, scored by the evaluators like any other, its parent the step
   * before. Methods: task_arithmetic, linear, ties, dare_ties, dare_linear.
   */
  refine: z.strictObject({
    steps: z.number().int().positive().default(10),
    lr: z.number().positive().default(0.02),
    /** supervised: cross-entropy on the items' labels or gold text; entropy: AdaMerging's prediction entropy (no labels used). */
    loss: z.enum(['supervised', 'entropy']).default('supervised'),
    /** Items per evaluator per step (a seeded sample); default all. */
    batch: z.number().int().positive().optional(),
  }).optional(),
  /**
   * Multi-fidelity evaluation (src/candidate/fidelity.ts): each candidate is scored on `rungs`
   * (fractions of each evaluator's items, a nested seeded subset) and stops at the first rung
   * where fitness + confidence x standard error stays below the best full-fidelity fitness told
   * before it was proposed. Only full-fidelity scores become the best; `budget.evaluations` counts
   * full-set equivalents. Evaluators whose metric is not a mean over items (command, generate,
   * perplexity, a per-class accuracy) always score every item.
   */
  fidelity: z.strictObject({
    rungs: z.array(z.number()).min(1).default([0.1, 0.3, 1]).refine((r) => r[r.length - 1] === 1 && r.every((x, i) => x > 0 && x <= 1 && (i === 0 || x > r[i - 1]!)), {
      message: 'rungs must be increasing fractions of the items in (0, 1] ending with 1, for example [0.1, 0.3, 1]',
    }),
    /** z of the upper confidence bound (2: about 97.7% one-sided under the normal approximation). */
    confidence: z.number().nonnegative().default(2),
  }).optional(),
  /** The final candidate's choice: a second split for the top candidates, and the rule (see SelectSchema). */
  select: SelectSchema.optional(),
  /**
   * The noise check at the start of each stage (src/search/noise.ts): `gain` is the smallest
   * fitness gain the search should tell apart; an evaluator whose expected maximum noise over the
   * stage's planned candidates (weight x se x sqrt(2 ln N)) reaches it is named in a warning.
   */
  noise: z.strictObject({ gain: z.number().positive().default(0.01) }).default({ gain: 0.01 }),
  /** A hybrid run's second stage may use another optimizer (default: the same). */
  dfs_optimizer: OptimizerRefSchema.optional(),
  budget: z.strictObject({
    /** Candidates per stage (with `fidelity`: full-set equivalents, the sum of the candidates' fidelities). */
    evaluations: z.number().int().positive().optional(),
    minutes: z.number().positive().optional(),
  }).default({ evaluations: 100 }),
  seed: z.number().int().nonnegative().default(0),
  workers: z.number().int().positive().default(2),
  /**
   * Command evaluators only: one evaluation slot per GPU id (as CUDA_VISIBLE_DEVICES takes
   * them: 0, 1, or GPU-/MIG- UUIDs), each program given its slot's as CUDA_VISIBLE_DEVICES and
   * `{gpu}` (src/candidate/slots.ts); --gpus overrides it. Absent: `workers` slots without a GPU.
   */
  gpus: z.array(z.union([z.number().int().nonnegative(), z.string().regex(/^[A-Za-z0-9:._-]+$/)])).min(1).transform((a) => a.map(String)).optional(),
  timeout_seconds: z.number().positive().default(300),
  backend: z.enum(['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']).default('auto'),
}).superRefine((s, ctx) => {
  if (!s.zoo && !(s.base || s.models)) ctx.addIssue({ code: 'custom', message: 'give a zoo, or a base and models', path: ['zoo'] });
  if (!s.zoo && !s.evaluators) ctx.addIssue({ code: 'custom', message: 'without a zoo, list the evaluators', path: ['evaluators'] });
  if ((s.mode === 'ps' || s.mode === 'hybrid') && !s.ps) ctx.addIssue({ code: 'custom', message: `mode '${s.mode}' needs a ps section`, path: ['ps'] });
  if (s.refine && s.mode !== 'ps') ctx.addIssue({ code: 'custom', message: `refine follows a ps stage; mode '${s.mode}' has none that ends the run`, path: ['refine'] });
  if (s.select && s.objective === 'multi') ctx.addIssue({ code: 'custom', message: 'select chooses one candidate by a single score; objective multi exports its Pareto front instead', path: ['select'] });
  if (s.fidelity && s.objective === 'multi') ctx.addIssue({ code: 'custom', message: 'fidelity races candidates against the best weighted-sum fitness; objective multi has no single best to race against', path: ['fidelity'] });
  if ((s.mode === 'dfs' || s.mode === 'hybrid') && !s.dfs) ctx.addIssue({ code: 'custom', message: `mode '${s.mode}' needs a dfs section`, path: ['dfs'] });
});
export type SearchSpace = z.infer<typeof SearchSpaceSchema>;

export class SearchSpaceError extends InputError {
  constructor(file: string, message: string) {
    super('E_SPACE', `${file}: ${message}`);
  }
}

/** Parse and validate a search space from YAML text (errors name the file and the field). */
export function parseSearchSpace(text: string, file: string): SearchSpace {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new SearchSpaceError(file, `not valid YAML (${(err as Error).message.split('\n')[0]})`);
  }
  const r = SearchSpaceSchema.safeParse(raw ?? {});
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const where = issue.path.length ? issue.path.join('.') : '(top level)';
    const extra = r.error.issues.length > 1 ? ` (and ${r.error.issues.length - 1} more problems)` : '';
    throw new SearchSpaceError(file, `field '${where}': ${issue.message}${extra}`);
  }
  return r.data;
}

export function loadSearchSpace(path: string): SearchSpace {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new InputError('E_NOT_FOUND', `${path}: no such search-space file; the shipped ones are in search-spaces/`);
  }
  return parseSearchSpace(text, resolve(path));
}
