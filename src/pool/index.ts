export * from './pool.ts';
export { candidatePool, localRunner } from './candidates.ts';
