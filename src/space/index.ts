export * from './schema.ts';
export * from './ps.ts';
export * from './dfs.ts';
export * from './baselines.ts';
export * from './zoo.ts';
export * from './filters.ts';
