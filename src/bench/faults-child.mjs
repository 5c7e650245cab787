// The process `evomerge bench faults` kills: the evomerge CLI with optional kill points (see
// faults-child.ts). Sources are TypeScript, so tsx's loader is registered first, as in bin.mjs.
import { register } from 'tsx/esm/api';

register();
await import('./faults-child.ts');
