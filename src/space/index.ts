export * from './schema.ts';
export * from './ps.ts';
export * from './dfs.ts';
