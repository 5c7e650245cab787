/** Recipes: schema, mergekit parameter grammar, hashing, mergekit YAML import and export. */
export * from './schema.ts';
export * from './errors.ts';
export * from './params.ts';
export * from './hash.ts';
export * from './mergekit.ts';
