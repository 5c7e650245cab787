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
  if (m.kind === 'command') return 'runs a program that returns metrics, not a loss the gradient can flow through';
  return (REFINABLE_KINDS as readonly string[]).includes(m.kind) ? null : `is of kind ${m.kind}`;
}

/** An evaluator the gradient stage can take its loss from: a differentiable kind, on a split other than test. */
export function checkRefinableEvaluator(m: Manifest, id: string = m.id): void {
  const problem = kindProblem(m);
  if (problem) {
    throw new NotSupportedError('E_REFINE_EVALUATOR', `refine: evaluator '${id}' (${m.file}) is ${m.kind} and ${problem}; the gradient stage takes its loss from ${REFINABLE_KINDS.join(', ')} evaluators: list only those under evaluators, or remove refine`);
  }
  if (m.split === 'test') throw new InputError('E_REFINE_SPLIT', `refine: evaluator '${id}' (${m.file}) reads the test split; refine on the validation split`);
}
