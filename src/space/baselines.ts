/**
 * The fixed recipes: each merge method at its customary settings. They are the bar an evolved
 * merge must clear (the zoo's baseline table, src/zoo/baselines.ts) and, with the space's
 * `init: baselines`, the first candidates of a PS stage, as genomes of the stage's codec.
 */
import { MultiMethodCodec, type PsCodec } from './ps.ts';

/** One fixed recipe: a method with its global and per-model settings. */
export interface BaselineRecipe {
  label: string;
  method: string;
  global: Record<string, unknown>;
  perModel: Record<string, unknown>;
}

/**
 * The customary settings: uniform linear averaging (Wortsman et al. 2022, model soups), task
 * arithmetic at lambda 0.3, 0.5 and 1 (Ilharco et al. 2023), TIES and DARE-TIES at density 0.5
 * (Yadav et al. 2023; Yu et al. 2024), SCE and VaRM at their defaults (FuseChat, Wan et al. 2024).
 * Weights are 1 per specialist, as in mergekit's example configurations.
 */
export const BASELINE_RECIPES: readonly BaselineRecipe[] = [
  { label: 'linear (uniform)', method: 'linear', global: {}, perModel: { weight: 1 } },
  { label: 'task_arithmetic lambda=0.3', method: 'task_arithmetic', global: { lambda: 0.3 }, perModel: { weight: 1 } },
  { label: 'task_arithmetic lambda=0.5', method: 'task_arithmetic', global: { lambda: 0.5 }, perModel: { weight: 1 } },
  { label: 'task_arithmetic lambda=1', method: 'task_arithmetic', global: { lambda: 1 }, perModel: { weight: 1 } },
  { label: 'ties density=0.5', method: 'ties', global: {}, perModel: { weight: 1, density: 0.5 } },
  { label: 'dare_ties density=0.5', method: 'dare_ties', global: {}, perModel: { weight: 1, density: 0.5 } },
  { label: 'sce', method: 'sce', global: {}, perModel: {} },
  { label: 'varm', method: 'varm', global: {}, perModel: {} },
];

/** The fixed recipes a PS codec can express, as genomes (a recipe of another method is left out). */
export function baselineGenomes(codec: PsCodec | MultiMethodCodec): Array<{ label: string; genome: number[] }> {
  const out: Array<{ label: string; genome: number[] }> = [];
  for (const b of BASELINE_RECIPES) {
    const settings = { global: b.global, perModel: b.perModel };
    const genome = codec instanceof MultiMethodCodec ? codec.encode(b.method, settings) : b.method === codec.layout.method.id ? codec.encode(settings) : null;
    if (Array.isArray(genome)) out.push({ label: b.label, genome });
  }
  return out;
}
