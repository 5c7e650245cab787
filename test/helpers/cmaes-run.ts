/**
 * A run database shaped like a CMA-ES search, written by hand: `generations` generations of
 * `lambda` candidates; generation 0 is made by `init` without parents, every later candidate by
 * `sample` with the `mu` fittest of the generation before as parents (as CMA-ES records them).
 * Fitness rises with the generation and varies within one in a known way, so the fittest parent
 * of every candidate is known: the first candidate of the generation before.
 */
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { RunStore, type RunRow } from '../../src/store/index.ts';

export interface CmaesRun {
  store: RunStore;
  run: RunRow;
  db: string;
  /** ids[g][k]: candidate k of generation g. */
  ids: number[][];
}

/** Candidate k of generation g scores g + 1 / (k + 2): the first of a generation is its fittest. */
export const cmaesFitness = (g: number, k: number) => g + 1 / (k + 2);

export function recipeOf(g: number, k: number) {
  const w = (x: number) => Math.round(x * 1e4) / 1e4;
  return {
    version: 1, method: 'task_arithmetic', base: '/m/base', seed: 0, parameters: { lambda: 1 },
    slices: [0, 1].map((layer) => ({
      sources: [
        { model: '/m/base', layer_range: [layer, layer + 1] },
        // mean over the two layer groups: alpha 0.25 + g/1000, beta 0.5
        { model: '/m/a', layer_range: [layer, layer + 1], parameters: { weight: w(0.2 + 0.1 * layer + g / 1000) } },
        { model: '/m/b', layer_range: [layer, layer + 1], parameters: { weight: [{ filter: 'mlp', value: 0.4 + 0.2 * layer }, { value: 0.5 }] } },
      ],
    })),
  };
}

export function cmaesRun(dir: string, options: { name?: string; generations?: number; lambda?: number; mu?: number } = {}): CmaesRun {
  const { name = 'cma', generations = 70, lambda = 8, mu = 5 } = options;
  const db = join(mkdtempSync(join(dir, 'cma-')), 'run.sqlite');
  const store = RunStore.open(db);
  const run = store.createRun({
    name, codeVersion: 'test', seed: 0,
    space: {
      space: { mode: 'ps', objective: 'weighted-sum' }, spacePath: null, base: '/m/base',
      models: [{ name: 'alpha', path: '/m/a' }, { name: 'beta', path: '/m/b' }],
      evaluators: [{ id: 'ev', manifest: '/nowhere/ev.yaml', weight: 1 }],
    },
  });
  const ids: number[][] = [];
  store.transaction(() => {
    for (let g = 0; g < generations; g++) {
      const parents = g === 0 ? [] : ids[g - 1]!.slice(0, mu);
      const rows = store.addCandidates(run.id, Array.from({ length: lambda }, (_, k) => ({
        stage: 0, generation: g, proposalId: `g${g}k${k}`, operator: g === 0 ? 'init' : 'sample', genome: [g, k],
        recipe: recipeOf(g, k), recipeHash: `h${g}-${k}`, parents,
      })));
      ids.push(rows.map((r) => r.id));
      rows.forEach((r, k) => store.recordResult(r.id, { fitness: cmaesFitness(g, k), evalMs: 10, metrics: [{ evaluator: 'ev', metric: 'fitness', value: cmaesFitness(g, k) }] }));
    }
  });
  return { store, run, db, ids };
}
