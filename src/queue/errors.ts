/** Errors of the distributed queue (BullMQ on Redis). */
import { InputError, RuntimeFailure } from '../errors.ts';

/** A --queue value that is not a Redis URL we can use. */
export class QueueUrlError extends InputError {
  constructor(url: string, why: string) {
    super('E_QUEUE_URL', `--queue '${url}': ${why}; expected redis://[user:password@]host[:port][/db][?prefix=name] (or rediss:// for TLS)`);
  }
}

/** Redis did not answer: nothing was started or written. */
export class QueueUnreachableError extends RuntimeFailure {
  constructor(display: string, cause: unknown, ms: number) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super('E_QUEUE_UNREACHABLE', `cannot reach Redis at ${display} within ${ms} ms (${why}); start it (for example 'redis-server --bind 127.0.0.1') or fix the --queue URL. Nothing was started and the run database is unchanged`, { cause });
  }
}

/** A worker's copy of a source differs from what the run recorded: evaluating it would mix models. */
export class SourceMismatchError extends RuntimeFailure {
  constructor(message: string) {
    super('E_QUEUE_SOURCE_MISMATCH', message);
  }
}
