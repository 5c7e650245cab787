export * from './types.ts';
export * from './manifest.ts';
export * from './data.ts';
export * from './classification.ts';
export * from './text.ts';
export * from './command.ts';
export * from './evaluator.ts';
export * from './run.ts';
