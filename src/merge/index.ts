/** Turning recipes into tensors: planning, per-tensor execution (in memory or from disk), streaming to disk. */
export * from './plan.ts';
export * from './execute.ts';
export * from './reader.ts';
export * from './write.ts';
export * from './vocab.ts';
export * from './parallel.ts';
