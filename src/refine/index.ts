/**
 * Gradient refinement of a PS candidate's continuous merge coefficients (weights, lambda) after
 * the evolutionary stage, by descent through the merged model on the validation split, as
 * AdaMerging (Yang et al., "AdaMerging: Adaptive Model Merging for Multi-Task Learning", ICLR 2024,
 * sec. 3.2) learns task-arithmetic coefficients per layer; its unsupervised loss is the Shannon
 * entropy of the prediction averaged over inputs (eq. 2: H(y) = -sum_c p_c log p_c), ours the mean
 * over inputs. Masks are held fixed at the candidate's recipe (TIES trim and sign election,
 * DARE drop masks and rescale factors), so the merged tensor is a smooth function of the weights.
 *
 * Chain rule in two halves: TensorFlow.js autodiff (tf.grads) gives dL/dW for every merged tensor
 * W the loss reads (a head no evaluator scores is not read, and its dL/dW is 0), or a command
 * evaluator's program writes dL/dW as a gradient file (./command.ts); the derivative dW/dvalue
 * of each coefficient is closed-form (see ./coefficients.ts), summed over the tensors whose plan
 * resolves that gene, in one place for both (./chain.ts). Which gene drives which tensor's parameter
 * is read off the planner itself (perturb one gene, re-plan, see what changed), so filters, keeps
 * and layer groups follow planMerge exactly, with no second copy of its rules.
 */
export { initRefine, adamStep, type RefineState } from './adam.ts';
export { REFINABLE_METHODS, REFINABLE_KINDS, DIFFERENTIABLE_PARAMS, checkRefinableMethod, checkRefinableGenes, checkRefinableEvaluator, checkCommandRefine } from './setup.ts';
export { coefficientGradient, classificationItemsFromManifests, causalLmItemsFromManifests, refineItemsFromSpecs, checkRefineItems, refineTensorNames, type RefineItems, type ClassificationItems, type CausalLmItems, type RefineSources, type CoefficientGradientInput } from './gradient.ts';
export { checkRefine } from './preflight.ts';
export { commandCoefficientGradient, openCommandGradientEvaluators, readGradientFile, type CommandGradientEvaluator, type CommandGradientInput } from './command.ts';
export { gradientStage, openGradientStage, type GradientStageState, type GradientStageOptions } from './stage.ts';
