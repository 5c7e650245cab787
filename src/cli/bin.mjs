#!/usr/bin/env node
// The `evomerge` executable. Sources are TypeScript run through tsx's loader, so a fresh
// `npm ci` is all a user needs: no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./main.ts');
await main(process.argv);
