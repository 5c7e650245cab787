export * from './pool.ts';
export { candidatePool, localRunner } from './candidates.ts';
export { pipelinedRunner, type PipelinedRunner } from './pipeline.ts';
