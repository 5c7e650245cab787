/** What a worker does with one candidate, wherever it runs (the pool's threads, a queue worker). */
export * from './types.ts';
export * from './sources.ts';
export * from './build.ts';
export * from './score.ts';
export * from './faults.ts';
export * from './fidelity.ts';
export * from './slots.ts';
export { createHandler } from './handler.ts';
