/**
 * The chain rule from dLoss/dW of the merged tensors to dLoss/dgene, written once for both ways a
 * gradient stage gets dLoss/dW: TensorFlow.js autodiff through a built-in evaluator's loss
 * (./gradient.ts) and a command evaluator's gradient file (./command.ts). No TensorFlow.js here.
 *
 *   dL/dgene = sum over the tensors W whose plan that gene's value sets of (dL/dW . dW/dvalue) (hi - lo)
 *
 * dW/dvalue is closed-form (./coefficients.ts); which gene drives which tensor's parameter is
 * read off the planner itself (perturb one gene, re-plan, see what changed), so filters, keeps
 * and layer groups follow planMerge exactly; (hi - lo) is the gene's range (the genome is
 * normalised to [0, 1]).
 */
import type { MergePlan, TensorTask } from '../merge/index.ts';
import { planCandidate, sourceSet, type SourceModels } from '../candidate/index.ts';
import type { PsCodec } from '../space/ps.ts';
import { linearization, type Linearized } from './coefficients.ts';
import { DIFFERENTIABLE_PARAMS } from './setup.ts';

/** A gene that drives one parameter of one tensor's merge task. */
export interface Link { task: number; param: 'weight' | 'lambda'; model: number; gene: number; scale: number }

/** Which genes drive which task's parameter: read off the planner by perturbing one gene at a time. */
export function geneLinks(codec: PsCodec, genome: number[], plan: MergePlan, models: SourceModels): Link[] {
  const names = codec.geneNames();
  const links: Link[] = [];
  const lo = codec.values(genome.map(() => 0));
  const hi = codec.values(genome.map(() => 1));
  names.forEach((name, gene) => {
    const param = name.slice(name.lastIndexOf(' / ') + 3) as 'weight' | 'lambda';
    if (!DIFFERENTIABLE_PARAMS.has(param) || hi[gene] === lo[gene]) return;
    const g = genome.slice();
    g[gene] = genome[gene]! < 0.5 ? genome[gene]! + 0.37 : genome[gene]! - 0.37;
    const other = planCandidate(codec.decode(g), models);
    other.tasks.forEach((t, ti) => {
      const mine = plan.tasks[ti]!;
      if (t.kind !== 'merge') return;
      if (param === 'lambda') {
        if (t.global.lambda !== mine.global.lambda) links.push({ task: ti, param, model: -1, gene, scale: hi[gene]! - lo[gene]! });
      } else {
        t.perModel.forEach((p, k) => {
          if (p.weight !== mine.perModel[k]!.weight) links.push({ task: ti, param, model: k, gene, scale: hi[gene]! - lo[gene]! });
        });
      }
    });
  });
  return links;
}

/** The linearisation (./coefficients.ts) of each of the plan's tasks `tasks`, masks at the candidate's. */
export function linearizeTasks(plan: MergePlan, tasks: readonly number[], models: SourceModels, seed: string | number): Map<number, Linearized> {
  const set = sourceSet(models);
  const lin = new Map<number, Linearized>();
  try {
    for (const ti of tasks) lin.set(ti, linearization(plan.method, plan.tasks[ti] as TensorTask, (m, t) => set.read(m, t).slice(), seed));
  } finally {
    set.close();
  }
  return lin;
}

/** dL/dgene from dL/dW per task (`G`; a task absent from it has dL/dW = 0) and the tasks' linearisations. */
export function chainToGenes(links: readonly Link[], lin: ReadonlyMap<number, Linearized>, G: ReadonlyMap<number, Float32Array>, genes: number): number[] {
  const gradient = new Array<number>(genes).fill(0);
  for (const link of links) {
    const g = G.get(link.task);
    if (g) gradient[link.gene]! += lin.get(link.task)!.dot(g, link.param, link.model) * link.scale;
  }
  return gradient;
}
