/**
 * Pools that evaluate a search's candidates: threads running the one candidate handler
 * (src/candidate/handler.ts), for the search's local runner and for each stage a queue worker
 * serves (src/queue/consumer.ts).
 */
import type { CandidateRunner, CandidateScore, EvaluationPlan, TaskOutcome, WorkerData } from '../candidate/types.ts';
import { candidatePool } from './candidate-pool.ts';
import { pipelinedRunner } from './pipeline.ts';

export { candidatePool } from './candidate-pool.ts';

/**
 * A search's local runner: the candidates of a stage evaluated in this process. With an
 * evaluation plan (a stage whose evaluators are all commands), merges on the pool's threads are
 * pipelined with scoring on this process's evaluation slots (./pipeline.ts); without, each
 * thread merges and scores its candidate.
 */
export function localRunner(o: { data: WorkerData; workers: number; timeoutMs: number; evaluation?: EvaluationPlan }): CandidateRunner {
  if (o.evaluation) return pipelinedRunner({ ...o, evaluation: o.evaluation });
  const pool = candidatePool(o);
  return {
    threads: pool.threads,
    // a task without `build` is scored in the thread: its value is a score
    run: (task) => pool.run(task) as Promise<TaskOutcome<CandidateScore>>,
    utilisation: () => pool.utilisation(),
    close: () => pool.close(),
  };
}
