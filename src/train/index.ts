/** Training on TensorFlow.js: the backend and gradients it needs, differentiable ops, the residual-MLP and Llama trainers. */
export { useTrainingBackend } from './backend.ts';
export { ensureGradients } from './gradients.ts';
export * from './ops.ts';
export * from './mlp.ts';
export * from './llama.ts';
