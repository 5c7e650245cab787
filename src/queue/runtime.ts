/** The queue as a search's runtime (src/search/runtime.ts, QueueRuntime): what the CLI gives a search run with --queue. */
import type { CandidateRunner } from '../candidate/index.ts';
import { openQueueStage, type QueueStageOptions } from './owner.ts';
import { checkReachable, parseQueueUrl } from './url.ts';

export const queueRuntime = {
  parse: parseQueueUrl,
  checkReachable,
  /** A stage's runner: each candidate a job on the run's queue. */
  async open(o: QueueStageOptions): Promise<CandidateRunner> {
    return (await openQueueStage(o)).runner;
  },
};
