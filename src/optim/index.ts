/** Optimizers: pure ask/tell over JSON state (see ./types.ts for the contract). */
export * from './types.ts';
export { cmaes, sepCmaes, cmaesOptionsSchema, cmaesParams, defaultPopsize } from './cmaes.ts';
export type { CmaesOptions, CmaesState, CmaesParams } from './cmaes.ts';
export { tpaDamping } from './tpa.ts';
export type { BipopState } from './restarts.ts';
export { boundsSchema, boxTransform, boxTransformInverse, resolveBounds } from './bounds.ts';
export type { Box } from './bounds.ts';
export { ga, gaOptionsSchema } from './ga.ts';
export type { GaOptions, GaState, GaMember } from './ga.ts';
export { nsga2, nsga2OptionsSchema, nonDominatedSort, crowdingDistance, dominates } from './nsga2.ts';
export type { Nsga2Options, Nsga2State, Nsga2Member } from './nsga2.ts';
export { randomSearch, randomOptionsSchema } from './random.ts';
export type { RandomOptions, RandomState } from './random.ts';
export { sbxPair, sbxBetaQ, polynomialMutation } from './variation.ts';
export type { GeneType } from './variation.ts';
export { symmetricEigen } from './linalg.ts';
export { getOptimizer, listOptimizers, optimizerForState, optimizerIds, optimizerSpecSchema } from './registry.ts';
export type { OptimizerSpec } from './registry.ts';
