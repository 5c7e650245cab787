/** Errors of export and report: each names the run, candidate or file and the way out. */
import { InputError, NotSupportedError, RuntimeFailure } from '../errors.ts';

/** A bad request: an unknown candidate, a format name, a non-empty output folder. */
export class ExportError extends InputError {
  constructor(code: string, message: string) {
    super(code, message);
  }
}

/** A candidate that cannot be written in the asked format yet (a DFS path with scales as a checkpoint). */
export class ExportNotSupportedError extends NotSupportedError {
  constructor(code: string, message: string) {
    super(code, message);
  }
}

/** The report could not be drawn or written (canvas, chart.js, chromium). */
export class ReportFailure extends RuntimeFailure {
  constructor(code: string, message: string, options: { cause?: unknown } = {}) {
    super(code, message, options);
  }
}
