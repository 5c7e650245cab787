export { BACKEND_CHOICES, BackendUnavailableError, UnknownBackendError, currentBackend, parseBackendChoice, useBackend, type BackendChoice, type BackendInfo, type BackendName } from './backend.ts';
export * from './weights.ts';
export * from './tokenizer.ts';
export * from './llama.ts';
export * from './mlp.ts';
export * from './load.ts';
