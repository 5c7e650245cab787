/**
 * Errors of evomerge. Every error the user can cause is an `EvomergeError` with a stable
 * `code` (for scripts and tests) and a message that names what was wrong, where, and what
 * to do. `exitCode` is what the CLI exits with: 2 for bad input, 1 for other failures.
 */
export class EvomergeError extends Error {
  readonly code: string;
  readonly exitCode: 1 | 2;
  constructor(code: string, message: string, options: { exitCode?: 1 | 2; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = options.exitCode ?? 2;
  }
}

/** Bad input from the user: a file, a flag, a config value. Exit code 2. */
export class InputError extends EvomergeError {}

/** A checkpoint file (safetensors, index, adapter, config) is malformed or inconsistent. */
export class CheckpointFormatError extends InputError {
  readonly file: string;
  constructor(code: string, file: string, message: string, options: { cause?: unknown } = {}) {
    super(code, `${file}: ${message}`, options);
    this.file = file;
  }
}

/** Two tensors that must agree in shape do not. */
export class ShapeMismatchError extends InputError {
  constructor(message: string) {
    super('E_SHAPE_MISMATCH', message);
  }
}

/** A tensor a step needs is not in a checkpoint. */
export class MissingTensorError extends InputError {
  constructor(message: string) {
    super('E_MISSING_TENSOR', message);
  }
}

/**
 * A search set-up that no candidate could escape (an evaluator that cannot work on the sources,
 * a memory plan that cannot fit, a gradient stage that cannot run), refused before the run
 * writes anything (src/search/preflight.ts, src/refine/preflight.ts).
 */
export class SetupError extends InputError {}

/** A feature that exists in a source format but that evomerge does not handle yet. */
export class NotSupportedError extends InputError {
  constructor(code: string, message: string) {
    super(code, message);
  }
}

/** A failure that is not the user's input: an I/O error, a worker crash, a bug. Exit code 1. */
export class RuntimeFailure extends EvomergeError {
  constructor(code: string, message: string, options: { cause?: unknown } = {}) {
    super(code, message, { exitCode: 1, cause: options.cause });
  }
}

export function isEvomergeError(err: unknown): err is EvomergeError {
  return err instanceof EvomergeError;
}
