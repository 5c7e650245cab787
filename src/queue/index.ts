export { parseQueueUrl, checkReachable, type QueueUrl } from './url.ts';
export { QueueUrlError, QueueUnreachableError, SourceMismatchError } from './errors.ts';
export { openQueueStage, stageContext, type QueueStage, type QueueStageOptions } from './owner.ts';
export { runQueueWorker, verifySources, type QueueWorkerOptions, type QueueWorkerSummary } from './consumer.ts';
export { queueNameFor, jobIdFor, contextKey, type StageContext, type QueueJobData, type JobResult } from './protocol.ts';
export { queueRuntime } from './runtime.ts';
