/**
 * What the CLI's searches (search, resume, demo) run with: candidates on the local pool, or on
 * queue workers with --queue, and the gradient stage for a space with `refine`. src/search/
 * receives these from its caller (src/search/runtime.ts).
 */
import { localRunner } from '../pool/index.ts';
import { queueRuntime } from '../queue/index.ts';
import { gradientStage } from '../refine/index.ts';
import type { SearchRuntime } from '../search/runtime.ts';

export const SEARCH_RUNTIME: SearchRuntime = { local: localRunner, queue: queueRuntime, gradient: gradientStage };
