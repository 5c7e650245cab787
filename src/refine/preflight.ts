/**
 * The gradient stage's preflight: what the search checks, before a run with `refine` writes
 * anything, through the stage (src/search/runtime.ts GradientStage.check).
 */
import type { EvaluatorSpec, SourceModels } from '../candidate/index.ts';
import { SetupError } from '../errors.ts';
import { loadManifest } from '../eval/manifest.ts';
import type { MergePlan } from '../merge/index.ts';
import { familyOf, parseLlamaConfig } from '../models/index.ts';
import type { SearchSpace } from '../space/index.ts';
import { checkRefineItems, refineItemsFromSpecs, refineTensorNames } from './gradient.ts';
import { checkCommandRefine, checkRefinableEvaluator, checkRefinableGenes, checkRefinableMethod } from './setup.ts';

/**
 * Refuse a gradient stage (space `refine`) that cannot work, before the run database exists, by
 * the rules the stage itself applies (./setup.ts and ./gradient.ts): one
 * refinable method with weight or lambda genes; evaluators of a differentiable kind (or all
 * commands with gradient: true, without batch), not on the test split; their items built as the stage builds them (labels, tokenizer, tokens in the
 * vocabulary); and float tensors, in the first candidate's plan, for everything the loss reads.
 */
export function checkRefine(r: { space: SearchSpace; evaluators: readonly EvaluatorSpec[] }, sources: SourceModels, plan: MergePlan): void {
  const refine = r.space.refine;
  if (!refine) return;
  // the space schema refuses this too; a stored space of an older version is checked here
  if (r.space.mode !== 'ps' || !r.space.ps) throw new SetupError('E_REFINE_MODE', `refine follows a ps stage that ends the run, but the space's mode is '${r.space.mode}'; use mode ps, or remove refine`);
  const ps = r.space.ps;
  checkRefinableMethod(ps.method);
  checkRefinableGenes(Array.isArray(ps.evolve) ? ps.evolve : Object.keys(ps.evolve));
  const manifests = r.evaluators.map((e) => ({ id: e.id, m: loadManifest(e.manifest) }));
  for (const { id, m } of manifests) checkRefinableEvaluator(m, id);
  // command evaluators with gradient: true compute the loss themselves; their gradient file is
  // checked against the candidate's tensors at each step (./command.ts)
  if (checkCommandRefine(manifests, refine.batch)) {
    if (!plan.tasks.some((t) => t.kind === 'merge')) throw new SetupError('E_REFINE_COPY', `refine: the merge of ${plan.configFrom} has no float tensor, so no gradient can pass through it; remove refine`);
    return;
  }
  const items = refineItemsFromSpecs(r.evaluators, sources, plan.configFrom);
  const config = sources[plan.configFrom]?.config ?? null;
  const file = `${plan.configFrom}/config.json`;
  const mlp = familyOf(config, file) === 'residual-mlp';
  checkRefineItems(items, refine.loss, mlp ? null : parseLlamaConfig(config, file).vocabSize);
  const tasks = new Map(plan.tasks.map((t) => [t.name, t]));
  for (const name of refineTensorNames(config, file, items)) {
    const t = tasks.get(name);
    if (!t) throw new SetupError('E_REFINE_TENSOR', `refine: the loss reads tensor ${name}, which the merge of ${plan.configFrom} does not produce; check config.json against the checkpoint's tensors (evomerge inspect)`);
    if (t.kind !== 'merge') throw new SetupError('E_REFINE_COPY', `refine: tensor ${name} is ${t.dtype}, not a float tensor, so the gradient cannot pass through it; remove refine`);
  }
}
