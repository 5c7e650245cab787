/** Merge methods: the registry, the per-tensor functions and their types. */
export * from './types.ts';
export * from './errors.ts';
export * from './registry.ts';
export { makeGtaMethod, gtaMethods } from './gta.ts';
export type { GtaConfig, Sparsification } from './gta.ts';
export { slerpVectors } from './slerp.ts';
