/**
 * The optimizer registry: one explicit list, looked up by id (search-space YAML `optimizer:`)
 * or by a stored state's `kind` (resume). Everything else is derived from the list: the ids, the
 * schema of a space's `optimizer:` block, and the optimizers the contract suite covers
 * (test/optim.contract.test.ts). A duplicate id is a programming error, caught at load.
 */
import { z } from 'zod';
import { cmaes, sepCmaes } from './cmaes.ts';
import { ga } from './ga.ts';
import { nsga2 } from './nsga2.ts';
import { randomSearch } from './random.ts';
import { type BaseState, type Optimizer, OptimizerStateError, UnknownOptimizerError } from './types.ts';

// Each optimizer is typed with its own options and state; the registry hands them out behind
// the common interface, which is all the search loop needs.
const list = [cmaes, sepCmaes, ga, nsga2, randomSearch] as unknown as Optimizer[];

const byId = new Map<string, Optimizer>();
for (const o of list) {
  if (byId.has(o.id)) throw new Error(`duplicate optimizer id '${o.id}' in src/optim/registry.ts`);
  byId.set(o.id, o);
}

export const optimizerIds: readonly string[] = list.map((o) => o.id);

export function listOptimizers(): readonly Optimizer[] {
  return list;
}

export function getOptimizer(id: string): Optimizer {
  const o = byId.get(id);
  if (!o) throw new UnknownOptimizerError(id, optimizerIds);
  return o;
}

/** The optimizer that continues a stored state (`sep-cmaes` states have kind `cmaes`). */
export function optimizerForState(state: BaseState): Optimizer {
  const o = byId.get(state?.kind);
  if (!o) throw new OptimizerStateError(String(state?.kind), `no optimizer for a state of kind '${state?.kind}'; known: ${optimizerIds.join(', ')}`);
  return o;
}

/** One branch of the `optimizer:` block: this id, and its options with their defaults filled in. */
function specOf(o: Optimizer) {
  return z.object({ id: z.literal(o.id), options: o.optionsSchema.default(o.optionsSchema.parse(o.defaultOptions)) });
}
type Spec = ReturnType<typeof specOf>;

/**
 * The `optimizer:` block of a search space, `{ id, options }`, validated per id with that
 * optimizer's own options schema (defaults filled in), one branch per registered optimizer.
 */
export const optimizerSpecSchema = z.discriminatedUnion('id', list.map(specOf) as [Spec, ...Spec[]]);
export type OptimizerSpec = z.output<typeof optimizerSpecSchema>;
