/**
 * A small run database written by hand for the report tests: five candidates in a known order
 * (one failed), two evaluators, objectives for a multi-objective run, and parents.
 */
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { RunStore, type RunRow } from '../../src/store/index.ts';

export const FITNESS = [1, null, 3, 2, 5] as const;
export const OBJECTIVES = [[0.6, 0.4], null, [2, 1], [0.5, 1.5], [2.5, 2.5]] as const;

function recipe(weight: number) {
  const src = (model: string, w: number, range: [number, number]) => ({ model, layer_range: range, parameters: { weight: [{ filter: 'mlp', value: w }, { value: w / 2 }], density: 0.5 } });
  return {
    version: 1, method: 'ties', base: '/m/base', seed: 0, parameters: { lambda: 1 },
    slices: [
      { sources: [{ model: '/m/base', layer_range: [0, 1] }, src('/m/a', weight, [0, 1]), src('/m/b', 1 - weight, [0, 1])], base_model: '/m/base' },
      { sources: [{ model: '/m/base', layer_range: [1, 2] }, src('/m/a', weight + 0.25, [1, 2]), src('/m/b', 0.75 - weight, [1, 2])], base_model: '/m/base' },
    ],
  };
}

/** The fixed recipes the `warmStart` run lists as its warm start, by candidate index (index 1 failed). */
export const WARM_START = [{ label: 'task_arithmetic lambda=0.3', index: 0 }, { label: 'linear (uniform)', index: 1 }, { label: 'ties density=0.5', index: 2 }] as const;

export function syntheticRun(dir: string, options: { multi?: boolean; dfs?: boolean; warmStart?: boolean } = {}): { store: RunStore; run: RunRow; ids: number[] } {
  const store = RunStore.open(join(mkdtempSync(join(dir, 'run-')), 'run.sqlite'));
  const run = store.createRun({
    name: 'synthetic', codeVersion: 'test', seed: 0,
    space: {
      space: { mode: 'ps', objective: options.multi ? 'multi' : 'weighted-sum' }, spacePath: null, base: '/m/base',
      models: [{ name: 'alpha', path: '/m/a' }, { name: 'beta', path: '/m/b' }],
      evaluators: [{ id: 'ev1', manifest: '/nowhere/ev1.yaml', weight: 1 }, { id: 'ev2', manifest: '/nowhere/ev2.yaml', weight: 1 }],
    },
  });
  const ids: number[] = [];
  FITNESS.forEach((fitness, i) => {
    const [c] = store.addCandidates(run.id, [{
      stage: 0, generation: i < 2 ? 0 : 1, proposalId: `p${i}`, operator: i < 2 ? 'init' : 'sample', genome: [i], recipe: recipe(i / 10), recipeHash: `h${i}`,
      // candidates 2.. descend from the first two; candidate 4 from 2 and 3
      parents: i === 4 ? [ids[2]!, ids[3]!] : i >= 2 ? [ids[0]!, ids[1]!] : [],
    }]);
    ids.push(c!.id);
    const objectives = OBJECTIVES[i];
    store.recordResult(c!.id, {
      fitness, evalMs: 100 * (i + 1), error: fitness === null ? 'timed out' : null,
      objectives: options.multi && objectives ? [...objectives] : null,
      metrics: fitness === null ? [] : [
        { evaluator: 'ev1', metric: 'accuracy', value: fitness / 10 }, { evaluator: 'ev1', metric: 'fitness', value: fitness / 10 },
        { evaluator: 'ev2', metric: 'loss', value: 1 / fitness }, { evaluator: 'ev2', metric: 'fitness', value: -1 / fitness },
      ],
    });
  });
  // the event the engine writes at a PS stage's start (src/search/engine.ts recordWarmStart)
  if (options.warmStart) store.event(run.id, 'warm-start', 'stage 0 starts from fixed recipes', { stage: 0, recipes: WARM_START.map((w) => ({ label: w.label, recipeHash: `h${w.index}` })) });
  if (options.dfs) {
    // a hybrid's second stage: a layer path through the PS best and beta
    const [c] = store.addCandidates(run.id, [{
      stage: 1, generation: 0, proposalId: 'd0', operator: 'init', genome: [0], recipeHash: 'd0',
      recipe: { kind: 'dfs', sources: [{ name: 'ps-best', path: `ps-best:candidate-${ids[4]}` }, { name: 'beta', path: '/m/b' }], steps: [{ source: 0, layer: 0, scale: 1 }, { source: 1, layer: 1, scale: 0.8 }, { source: 0, layer: 1, scale: 1.2 }], embeddings_from: 0, head_from: 0 },
    }]);
    store.recordResult(c!.id, { fitness: 4, objectives: options.multi ? [1.8, 2.2] : null, evalMs: 50, metrics: [{ evaluator: 'ev1', metric: 'accuracy', value: 0.4 }] });
    ids.push(c!.id);
  }
  return { store, run, ids };
}
