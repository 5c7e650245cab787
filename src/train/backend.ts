/**
 * The backend training runs on: the zoos' builders and knowledge fusion (src/fuse/) select it
 * before creating any variable, and record its name (in zoo.json and the zoos' cache keys).
 */
import { useBackend } from '../models/backend.ts';
import { ensureGradients } from './gradients.ts';

export async function useTrainingBackend(): Promise<string> {
  // wasm is the fast CPU backend and gives the same bytes on every machine with the same build;
  // fall back to whatever is available (recorded in zoo.json and the cache key) when it is not.
  let name: string;
  try {
    name = (await useBackend('wasm')).name;
  } catch {
    name = (await useBackend('auto')).name;
  }
  await ensureGradients();
  return name;
}
