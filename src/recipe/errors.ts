/** Errors of recipes and mergekit configurations. */
import { InputError, NotSupportedError } from '../errors.ts';

/** A recipe or configuration that does not validate; the message names the file and field. */
export class RecipeError extends InputError {
  constructor(code: string, message: string) {
    super(code, message);
  }
}

/** A valid mergekit feature that evomerge does not implement yet (never silently ignored). */
export class MergekitNotSupportedError extends NotSupportedError {
  constructor(feature: string, hint = '') {
    super('E_MERGEKIT_NOT_SUPPORTED', `mergekit feature not supported yet: ${feature}${hint ? `; ${hint}` : ''}`);
  }
}
