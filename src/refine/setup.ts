/**
 * The rules a gradient stage's set-up must meet, written once: ./preflight.ts applies
 * them before a run writes anything, and the item builders and coefficientGradient (./gradient.ts)
 * apply them again as guards for callers of the library. No TensorFlow.js here.
 */
import { InputError, NotSupportedError } from '../errors.ts';
import type { Manifest } from '../eval/manifest.ts';

/** Methods whose merged tensor is, masks fixed, a smooth function of the weights and lambda (./coefficients.ts). */
export const REFINABLE_METHODS = ['task_arithmetic', 'linear', 'ties', 'dare_ties', 'dare_linear'] as const;
/** Parameters that get a gradient; any other evolving gene (density, ...) gets 0: its masks are fixed. */
export const DIFFERENTIABLE_PARAMS: ReadonlySet<string> = new Set(['weight', 'lambda']);
/** Evaluator kinds with a differentiable loss: cross-entropy or entropy of a classifier head, or of a causal LM's next token. */
export const REFINABLE_KINDS = ['classification', 'choice', 'perplexity'] as const;

/** One method (not a method list) that ./coefficients.ts can differentiate. */
export function checkRefinableMethod(method: string | readonly string[]): void {
  if (Array.isArray(method)) {
    throw new InputError('E_REFINE_SPACE', `refine: ps.method is a list (${method.join(', ')}); gradient refinement needs one method, one of ${REFINABLE_METHODS.join(', ')}, or remove refine`);
  }
  if (!(REFINABLE_METHODS as readonly string[]).includes(method as string)) {
    throw new InputError('E_REFINE_METHOD', `refine: method '${method as string}' is not refinable by gradient; use one of ${REFINABLE_METHODS.join(', ')}, or remove refine`);
  }
}

/** At least one evolving gene the gradient moves; otherwise every step would return its start. */
export function checkRefinableGenes(evolved: readonly string[]): void {
  if (!evolved.some((p) => DIFFERENTIABLE_PARAMS.has(p))) {
    throw new InputError('E_REFINE_GENES', `refine: the space evolves ${evolved.join(', ') || 'nothing'}, but the gradient stage moves only ${[...DIFFERENTIABLE_PARAMS].join(' and ')} genes (masks stay fixed), so its steps would change nothing; evolve weight or lambda under ps.evolve, or remove refine`);
  }
}

/** Why an evaluator gives no differentiable loss, or null when it does. */
function kindProblem(m: Manifest): string | null {
  if (m.kind === 'generate') return 'scores generated text by exact match, a step function of the weights with no gradient';
  if (m.kind === 'command') return m.gradient ? null : 'runs a program that returns metrics, not a loss the gradient can flow through; if the program can write the gradient of its loss with respect to the merged tensors, set gradient: true in its manifest (README, "Command evaluators")';
  return (REFINABLE_KINDS as readonly string[]).includes(m.kind) ? null : `is of kind ${m.kind}`;
}

/** An evaluator the gradient stage can take its loss from: a differentiable kind, on a split other than test. */
export function checkRefinableEvaluator(m: Manifest, id: string = m.id): void {
  const problem = kindProblem(m);
  if (problem) {
    throw new NotSupportedError('E_REFINE_EVALUATOR', `refine: evaluator '${id}' (${m.file}) is ${m.kind} and ${problem}; the gradient stage takes its loss from ${REFINABLE_KINDS.join(', ')} evaluators, or from command evaluators with gradient: true: list only those under evaluators, or remove refine`);
  }
  if (m.split === 'test') throw new InputError('E_REFINE_SPLIT', `refine: evaluator '${id}' (${m.file}) reads the test split; refine on the validation split`);
}

/**
 * A stage's evaluators are either all commands that return gradients (./command.ts) or all
 * built-in (./gradient.ts): the two losses are computed in different places, so a mix is refused;
 * so is `batch`, which samples a built-in evaluator's items (a command's program takes its own).
 */
export function checkCommandRefine(manifests: ReadonlyArray<{ id: string; m: Manifest }>, batch: number | undefined): boolean {
  const commands = manifests.filter(({ m }) => m.kind === 'command');
  if (commands.length === 0) return false;
  const builtIn = manifests.find(({ m }) => m.kind !== 'command');
  if (builtIn) {
    throw new NotSupportedError('E_REFINE_EVALUATOR', `refine: evaluator '${commands[0]!.id}' is a command and '${builtIn.id}' (${builtIn.m.file}) is ${builtIn.m.kind}; the gradient stage takes its loss from built-in evaluators or from command evaluators, not both: list one kind under evaluators, or remove refine`);
  }
  if (batch !== undefined) {
    throw new InputError('E_REFINE_BATCH', `refine: batch (${batch}) samples the items of built-in evaluators, but evaluator '${commands[0]!.id}' is a command whose program computes its gradient over its own split (its manifest's limit); remove refine.batch, or set limit in ${commands[0]!.m.file}`);
  }
  return true;
}
