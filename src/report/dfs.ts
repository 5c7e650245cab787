/**
 * A data-flow (DFS) candidate as layer stacking. The candidate is a path of layers taken from
 * the sources, where step k multiplies the hidden state entering its layer by a scale W (Akiba
 * et al. 2024, "Evolutionary Optimization of Model Merging Recipes", section 3.2); embeddings
 * and head come from chosen sources.
 *
 * Layer stacking is mergekit's passthrough with slices (mergekit/merge_methods/passthrough.py and
 * plan.py): consecutive layers of one source become one slice. Two things do not carry over:
 * - the scales: they multiply the whole residual stream entering a layer, and every layer
 *   normalises what it reads (RMSNorm or LayerNorm with an epsilon), so a scale cannot be moved
 *   into any weight without changing the function (norm(s h) = s h / sqrt(s^2 ms(h) + eps) is
 *   not norm(h) unless eps = 0, and the residual s h itself stays scaled). A checkpoint is
 *   therefore written only when every scale is exactly 1; mergekit YAML states them in a comment.
 * - the ends: the planner (like mergekit) takes the embeddings from the first slice's source
 *   and the other non-layer tensors (final norm, head; for the residual MLP also the input
 *   projection, which it does not name as an embedding) from the last slice's. The checkpoint
 *   is refused when that differs from the candidate's embeddings_from / head_from.
 */
import { z } from 'zod';
import type { Recipe } from '../recipe/index.ts';
import { parseRecipe } from '../recipe/index.ts';

export const DfsRecipeSchema = z.object({
  kind: z.literal('dfs'),
  sources: z.array(z.object({ name: z.string(), path: z.string() })).min(1),
  steps: z.array(z.object({ source: z.number().int().nonnegative(), layer: z.number().int().nonnegative(), scale: z.number() })),
  embeddings_from: z.number().int().nonnegative(),
  head_from: z.number().int().nonnegative(),
});
export type DfsRecipe = z.infer<typeof DfsRecipeSchema>;

export function isDfsRecipe(value: unknown): value is DfsRecipe {
  return DfsRecipeSchema.safeParse(value).success;
}

/** `ps-best:candidate-12` -> 12 (the PS stage's best, source 0 of a hybrid run's DFS stage). */
export function psBestCandidateId(path: string): number | null {
  const m = /^ps-best:candidate-(\d+)$/.exec(path);
  return m ? Number(m[1]) : null;
}

/** The steps whose scale is not exactly 1 (the first step's is 1 by construction). */
export function scaledSteps(dfs: DfsRecipe): Array<{ step: number; scale: number }> {
  return dfs.steps.map((s, step) => ({ step, scale: s.scale })).filter((s) => s.scale !== 1);
}

/**
 * The passthrough recipe stacking the path's layers: one slice per run of consecutive layers of
 * one source. `pathOf` maps a source path of the DFS recipe to a checkpoint path (the hybrid's
 * `ps-best:` source to the folder it was exported to).
 */
export function dfsAsPassthrough(dfs: DfsRecipe, pathOf: (path: string) => string = (p) => p): Recipe {
  const slices: Array<{ sources: Array<{ model: string; layer_range: [number, number] }> }> = [];
  let open: { source: number; start: number; end: number } | null = null;
  const flush = () => {
    if (open) slices.push({ sources: [{ model: pathOf(dfs.sources[open.source]!.path), layer_range: [open.start, open.end] }] });
  };
  for (const s of dfs.steps) {
    if (open && open.source === s.source && open.end === s.layer) open.end++;
    else {
      flush();
      open = { source: s.source, start: s.layer, end: s.layer + 1 };
    }
  }
  flush();
  return parseRecipe({ version: 1, method: 'passthrough', slices }, 'data-flow path as passthrough');
}

/**
 * Whether the planner would take each end of the stacked model from the source the path names:
 * embeddings from the first slice's source, everything else from the last slice's.
 * `inputIsEmbedding` is true for families whose embedding tensor the planner does not recognise
 * by name (the residual MLP's input projection), which then comes from the last slice.
 */
export function endsMismatch(dfs: DfsRecipe, inputIsPost: boolean): string | null {
  if (dfs.steps.length === 0) return 'the path has no layers';
  const first = dfs.steps[0]!.source;
  const last = dfs.steps[dfs.steps.length - 1]!.source;
  const name = (i: number) => dfs.sources[i]?.name ?? `source ${i}`;
  const embeddingsFrom = inputIsPost ? last : first;
  if (embeddingsFrom !== dfs.embeddings_from) {
    return `the candidate takes its embeddings from ${name(dfs.embeddings_from)}, but layer stacking takes them from the ${inputIsPost ? 'last' : 'first'} slice's model (${name(embeddingsFrom)})`;
  }
  if (last !== dfs.head_from) return `the candidate takes its head from ${name(dfs.head_from)}, but layer stacking takes it from the last slice's model (${name(last)})`;
  return null;
}
