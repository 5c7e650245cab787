import { getMethod, resolveScope } from '../../src/methods/index.ts';
import type { LoraFactorsInput } from '../../src/methods/index.ts';

export interface RunOptions {
  base?: number[] | null;
  models: number[][];
  shape?: number[];
  global?: Record<string, unknown>;
  perModel?: Array<Record<string, unknown>>;
  seed?: string | number;
  name?: string;
  lora?: Array<LoraFactorsInput | null>;
}

/** Run one method on small arrays, parameters resolved as a recipe would resolve them. */
export function run(id: string, o: RunOptions): Float32Array {
  const m = getMethod(id);
  const models = o.models.map((x) => Float32Array.from(x));
  const base = o.base ? Float32Array.from(o.base) : null;
  const n = (base ?? models[0]!).length;
  const g = resolveScope(m, 'global', o.global ?? {}, 'test');
  const pm = models.map((_, j) => resolveScope(m, 'per-model', o.perModel?.[j] ?? {}, 'test'));
  if (o.lora) while (pm.length < o.lora.length) pm.push(resolveScope(m, 'per-model', o.perModel?.[pm.length] ?? {}, 'test'));
  return m.merge({ name: o.name ?? 'model.layers.0.mlp.up_proj.weight', shape: o.shape ?? [n], base, models, lora: o.lora }, g, pm, { seed: o.seed ?? 1 });
}

export function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-6, msg = ''): void {
  if (actual.length !== expected.length) throw new Error(`${msg} length ${actual.length} != ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!(Math.abs(a - e) <= tol * Math.max(1, Math.abs(e)))) {
      throw new Error(`${msg} element ${i}: got ${a}, expected ${e} (all: [${Array.from(actual).join(', ')}])`);
    }
  }
}
