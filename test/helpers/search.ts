/**
 * startSearch and resumeSearch as the CLI runs them: with the local pool, the queue and the
 * gradient stage given (src/search/runtime.ts), so tests start searches as the CLI does.
 */
import * as engine from '../../src/search/engine.ts';
import { localRunner } from '../../src/pool/index.ts';
import { queueRuntime } from '../../src/queue/index.ts';
import { gradientStage } from '../../src/refine/index.ts';
import type { SearchRuntime } from '../../src/search/runtime.ts';

export const runtime: SearchRuntime = { local: localRunner, queue: queueRuntime, gradient: gradientStage };

type StartOptions = Omit<Parameters<typeof engine.startSearch>[1], 'runtime'>;
type ResumeOptions = Omit<Parameters<typeof engine.resumeSearch>[1], 'runtime'>;

export function startSearch(spacePath: string, options: StartOptions = {}): ReturnType<typeof engine.startSearch> {
  return engine.startSearch(spacePath, { runtime, ...options });
}

export function resumeSearch(runName: string, options: ResumeOptions = {}): ReturnType<typeof engine.resumeSearch> {
  return engine.resumeSearch(runName, { runtime, ...options });
}
