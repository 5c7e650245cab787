/**
 * Zoos: families of checkpoints of one architecture (a base and its fine-tunes) that
 * evomerge builds itself, since no hub is reachable. Each zoo is one builder in this list.
 */
import { resolve } from 'node:path';
import { InputError } from '../errors.ts';
import { buildTinyZoo } from './tiny.ts';

export * from './tiny.ts';

export interface ZooBuilder {
  name: string;
  description: string;
  build(dir: string, options: { seed: number }): { base: string; models: string[]; [k: string]: unknown };
}

export const ZOOS: readonly ZooBuilder[] = [
  {
    name: 'tiny',
    description: 'random tiny Llama (4 layers, hidden 32): a base, two perturbed fine-tunes and a LoRA adapter; for tests and inspection, not for search',
    build: (dir, { seed }) => buildTinyZoo(dir, seed),
  },
];

export function zooBuilder(name: string): ZooBuilder {
  const z = ZOOS.find((x) => x.name === name);
  if (!z) throw new InputError('E_UNKNOWN_ZOO', `no zoo named '${name}'; available: ${ZOOS.map((x) => x.name).join(', ')}`);
  return z;
}

export function defaultZooDir(name: string): string {
  return resolve('runs', 'zoo', name);
}
