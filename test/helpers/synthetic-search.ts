/**
 * A synthetic search problem for loop tests: fitness is minus the squared distance of the
 * genome to 0.3 (a sphere in the box), evaluated after a random delay so results arrive out of
 * order; genomes with gene 0 above 0.95 fail, as a crashed evaluator would.
 */
import { createHash } from 'node:crypto';
import type { CandidateScore, StageProblem, TaskRunner } from '../../src/search/loop.ts';
import type { TaskOutcome } from '../../src/pool/index.ts';

export type SyntheticTask = { genome: number[] };

export function syntheticProblem(optimizer: { id: string; options: unknown }, dimension = 4): StageProblem<SyntheticTask> {
  return {
    stage: 0,
    dimension,
    optimizer,
    prepare(genome) {
      const recipe = { genome: genome.map((g) => Math.round(g * 1e6) / 1e6) };
      return { recipe, recipeHash: createHash('sha256').update(JSON.stringify(recipe)).digest('hex'), task: { genome: [...genome] } };
    },
  };
}

export function syntheticRunner(threads: number, maxDelayMs: number, seed = 1): TaskRunner<SyntheticTask> {
  let x = seed;
  const rand = () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648);
  return {
    threads,
    run(task: SyntheticTask): Promise<TaskOutcome<CandidateScore>> {
      const delay = rand() * maxDelayMs;
      return new Promise((resolve) => setTimeout(() => {
        if (task.genome[0]! > 0.95) {
          resolve({ ok: false, kind: 'error', error: 'synthetic evaluator crash', ms: delay, worker: null });
          return;
        }
        const f = -task.genome.reduce((s, g) => s + (g - 0.3) ** 2, 0);
        resolve({ ok: true, value: { fitness: f, metrics: [{ evaluator: 'sphere', metric: 'f', value: f }] }, ms: delay, worker: 1 });
      }, delay));
    },
  };
}
