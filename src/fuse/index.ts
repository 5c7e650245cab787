/** Knowledge fusion (FuseLLM, FuseChat stage 1): token alignment, vocabulary mapping, distributions, fusion, storage. */
export * from './align.ts';
export * from './vocab.ts';
export * from './distributions.ts';
export * from './fusion.ts';
export * from './store.ts';
