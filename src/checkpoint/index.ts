export * from './atomic.ts';
export * from './safetensors.ts';
export * from './folder.ts';
export * from './lora.ts';
export * from './inspect.ts';
