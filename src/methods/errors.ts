/** Errors of merge methods and their parameters. */
import { InputError } from '../errors.ts';

/** A method id that is not in the registry. */
export class UnknownMethodError extends InputError {
  constructor(id: string, known: readonly string[]) {
    super('E_UNKNOWN_METHOD', `unknown merge method '${id}'; known methods: ${known.join(', ')} (see evomerge methods)`);
  }
}

/** A parameter that a method does not take, a wrong type, or a value out of range. */
export class MethodParamError extends InputError {
  constructor(code: string, message: string) {
    super(code, message);
  }
}

/** Inputs a method cannot compute on (wrong model count, a missing base, a degenerate density). */
export class MethodInputError extends InputError {
  constructor(code: string, message: string) {
    super(code, message);
  }
}
