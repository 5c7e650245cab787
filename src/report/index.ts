/** Export of candidates (recipe, mergekit YAML, merged folder, model card) and the run report (chart.js PNGs, HTML). */
export * from './errors.ts';
export * from './select.ts';
export * from './dfs.ts';
export * from './card.ts';
export * from './merge-folder.ts';
export * from './export.ts';
export * from './scores.ts';
export * from './data.ts';
export * from './charts.ts';
export * from './render.ts';
export * from './report.ts';
export * from './text.ts';
