// Preloaded (`node --import`) into the evomerge CLI that `evomerge bench faults` kills: its kill
// points (kill-points.ts). Sources are TypeScript, so tsx's loader is registered first, as in
// src/cli/bin.mjs.
import { register } from 'tsx/esm/api';

register();
await import('./kill-points.ts');
