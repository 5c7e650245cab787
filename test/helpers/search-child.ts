/** A search process to kill: runs (or resumes) the synthetic search in the database given. */
import { RunStore } from '../../src/store/index.ts';
import { runStage } from '../../src/search/loop.ts';
import { syntheticProblem, syntheticRunner } from './synthetic-search.ts';

const [dbPath, optimizerId, budget, delay] = process.argv.slice(2);
const store = RunStore.open(dbPath!);
const run = store.run('kill-test') ?? store.createRun({ name: 'kill-test', space: {}, codeVersion: 'test', seed: 11 });
process.stdout.write('ready\n');
const problem = syntheticProblem({ id: optimizerId!, options: optimizerId === 'ga' ? { popsize: 6, mode: 'steady-state' } : {} });
await runStage(store, run, problem, syntheticRunner(3, Number(delay), process.pid), { budget: { evaluations: Number(budget) } });
store.close();
process.stdout.write('finished\n');
