/** Evaluators from manifests, with the rule that keeps the search away from the test split. */
import { InputError } from '../errors.ts';
import { ClassificationEvaluator } from './classification.ts';
import { CommandEvaluator, type CommandOptions } from './command.ts';
import { loadManifest, type Manifest } from './manifest.ts';
import { ChoiceEvaluator, GenerateEvaluator, PerplexityEvaluator } from './text.ts';
import type { Evaluator } from './types.ts';

export class TestSplitRefusedError extends InputError {
  constructor(m: Manifest) {
    super('E_TEST_SPLIT', `${m.file}: evaluator ${m.id} scores the 'test' split, which a search must not be tuned on; use a validation split, or pass --allow-test-split if you really mean it`);
  }
}

export interface EvaluatorOptions {
  /** `search` refuses a test split unless `allowTestSplit`; `eval` (a one-off score) allows it. */
  purpose: 'search' | 'eval';
  allowTestSplit?: boolean;
  /** Where a command evaluator runs: its slot's GPU and log (src/candidate/slots.ts). */
  command?: CommandOptions;
}

export function createEvaluator(m: Manifest, options: EvaluatorOptions): Evaluator {
  if (options.purpose === 'search' && m.split === 'test' && !options.allowTestSplit) throw new TestSplitRefusedError(m);
  switch (m.kind) {
    case 'classification':
      return new ClassificationEvaluator(m);
    case 'choice':
      return new ChoiceEvaluator(m);
    case 'generate':
      return new GenerateEvaluator(m);
    case 'perplexity':
      return new PerplexityEvaluator(m);
    case 'command':
      return new CommandEvaluator(m, options.command);
  }
}

export function loadEvaluator(path: string, options: EvaluatorOptions): Evaluator {
  return createEvaluator(loadManifest(path), options);
}
