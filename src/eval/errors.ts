/** Failures of a command evaluator's program (it could not start, failed, timed out, broke the protocol). */
import { RuntimeFailure } from '../errors.ts';

export class CommandFailedError extends RuntimeFailure {
  constructor(code: string, message: string) {
    super(code, message);
  }
}
