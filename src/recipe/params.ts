/**
 * Parameter settings in mergekit's grammar (mergekit/config.py `evaluate_setting` and
 * `ConfigReader.parameter`):
 * - a scalar applies everywhere;
 * - a gradient (a list of numbers) is interpolated linearly at t in [0, 1], the position of the
 *   layer within its slice (t = i / (len - 1)); a list of other scalars picks item int(t (len - 1));
 *   tensors outside the layers (embeddings, final norm, head) use t = 0, the first value;
 * - a list of `{filter, value}` takes the first entry whose filter is absent, `*`, or a substring
 *   of the tensor name; when none matches, the setting is skipped (the next level is consulted).
 * Precedence: the source's own parameters (per-model parameters only), then the slice's, then the
 * recipe's top level.
 */
import type { MergeMethod, ParamValue, ResolvedParams } from '../methods/index.ts';
import { resolveScope } from '../methods/index.ts';
import { RecipeError } from './errors.ts';
import type { ParamSetting, ParamSettings } from './schema.ts';

/** The value of one setting for a tensor at position t, or undefined when no conditional matches. */
export function evaluateSetting(setting: ParamSetting, tensorName: string, t: number): ParamValue | undefined {
  if (typeof setting === 'number' || typeof setting === 'boolean' || typeof setting === 'string') return setting;
  if (Array.isArray(setting)) {
    if (setting.length === 0) return undefined;
    if (setting.every((e) => typeof e === 'number')) {
      const g = setting as number[];
      const scaled = t * (g.length - 1);
      const i0 = Math.floor(scaled);
      const i1 = Math.min(g.length - 1, i0 + 1);
      const frac = scaled - i0;
      return (1 - frac) * g[i0]! + frac * g[i1]!;
    }
    if (setting.every((e) => typeof e !== 'object' || e === null)) {
      return (setting as ParamValue[])[Math.floor(t * (setting.length - 1))];
    }
    for (const cond of setting as Array<{ filter?: string | null; value: ParamSetting }>) {
      if (cond.filter == null || cond.filter === '*' || (tensorName && tensorName.includes(cond.filter))) {
        return evaluateSetting(cond.value, tensorName, t);
      }
    }
    return undefined;
  }
  return evaluateSetting([setting], tensorName, t);
}

export interface SettingLevels {
  /** Top-level `parameters`. */
  top?: ParamSettings;
  /** The slice's `parameters` (slices mode). */
  slice?: ParamSettings;
  /** Each model's own `parameters`, in model order. */
  models: ReadonlyArray<ParamSettings | undefined>;
}

function lookup(name: string, levels: Array<ParamSettings | undefined>, tensorName: string, t: number): ParamValue | undefined {
  for (const level of levels) {
    if (level && Object.hasOwn(level, name)) {
      const v = evaluateSetting(level[name]!, tensorName, t);
      if (v !== undefined) return v;
    }
  }
  return undefined;
}

/** Global and per-model parameters of one tensor, checked against the method (defaults filled). */
export function resolveTensorParams(method: MergeMethod, levels: SettingLevels, tensorName: string, t: number, modelNames: readonly string[]): { global: ResolvedParams; perModel: ResolvedParams[] } {
  const rawGlobal: Record<string, ParamValue> = {};
  for (const p of method.params) {
    if (p.scope !== 'global') continue;
    const v = lookup(p.name, [levels.slice, levels.top], tensorName, t);
    if (v !== undefined) rawGlobal[p.name] = v;
  }
  const global = resolveScope(method, 'global', rawGlobal, `tensor ${tensorName}`);
  const perModel = levels.models.map((own, j) => {
    const raw: Record<string, ParamValue> = {};
    for (const p of method.params) {
      if (p.scope !== 'per-model') continue;
      const v = lookup(p.name, [own, levels.slice, levels.top], tensorName, t);
      if (v !== undefined) raw[p.name] = v;
    }
    return resolveScope(method, 'per-model', raw, `tensor ${tensorName}, model ${modelNames[j] ?? j}`);
  });
  return { global, perModel };
}

/**
 * Static checks of every setting: names the method does not take, and a global parameter set on
 * one model (mergekit would silently ignore it; evomerge refuses).
 */
export function checkSettingNames(method: MergeMethod, settings: ParamSettings | undefined, where: string, level: 'top' | 'slice' | 'model'): void {
  if (!settings) return;
  for (const name of Object.keys(settings)) {
    const spec = method.params.find((p) => p.name === name);
    if (!spec) {
      const known = method.params.map((p) => p.name).join(', ') || '(none)';
      throw new RecipeError('E_PARAM_UNKNOWN', `${where}: ${method.id} has no parameter '${name}'; its parameters are: ${known} (see evomerge methods)`);
    }
    if (level === 'model' && spec.scope === 'global') {
      throw new RecipeError('E_PARAM_SCOPE', `${where}: '${name}' is a global parameter of ${method.id} and cannot be set per model; set it under the top-level (or slice) parameters`);
    }
  }
}
