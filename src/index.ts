/** evomerge's public API. Everything a library user needs is re-exported from here. */
export * from './errors.ts';
export * from './tensor/dtype.ts';
export * from './tensor/rng.ts';
export * from './checkpoint/index.ts';
export * from './zoo/index.ts';
export * from './store/index.ts';
export * from './optim/index.ts';
export * from './models/index.ts';
export * from './eval/index.ts';
export * from './methods/index.ts';
export * from './recipe/index.ts';
export * from './merge/index.ts';
export * from './report/index.ts';
export * from './queue/index.ts';
export * from './refine/index.ts';
export * from './fuse/index.ts';
