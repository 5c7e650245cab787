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
import { METHOD_LIST, resolveScope } from '../methods/index.ts';
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

/** A setting dropped because the method does not read it (mergekit reads only what a method declares). */
export interface IgnoredSetting {
  where: string;
  name: string;
  /** `not-taken`: the method has no such parameter; `scope`: a global parameter set on one model. */
  why: 'not-taken' | 'scope';
}

let knownNames: Set<string> | null = null;

/** Every parameter name some registered method declares. */
function allParamNames(): Set<string> {
  return (knownNames ??= new Set(METHOD_LIST.flatMap((m) => m.params.map((p) => p.name))));
}

/** Levenshtein distance, for "did you mean". */
function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/** The closest known name within a third of the name's length (the method's own first). */
export function closestParamName(method: MergeMethod, name: string): string | null {
  const limit = Math.max(1, Math.floor(name.length / 3));
  let best: string | null = null;
  let bestD = Infinity;
  for (const pool of [method.params.map((p) => p.name), [...allParamNames()]]) {
    for (const cand of pool) {
      const d = editDistance(name, cand);
      if (d <= limit && d < bestD) {
        best = cand;
        bestD = d;
      }
    }
    if (best) return best;
  }
  return null;
}

/**
 * Static checks of one level's settings. mergekit reads only the parameters a method declares
 * (mergekit/plan.py `plan_tensor` asks for each declared name, global ones without a model), so
 * a name the method does not take, or a global one set on a model, has no effect there: evomerge
 * drops it too and records it in `ignored` (the caller prints one warning). A name that no
 * registered method declares is a typo and is refused with the closest name. Returns the
 * settings without the dropped names.
 */
export function checkSettingNames(method: MergeMethod, settings: ParamSettings | undefined, where: string, level: 'top' | 'slice' | 'model', ignored: IgnoredSetting[] = []): ParamSettings | undefined {
  if (!settings) return settings;
  let out: ParamSettings | undefined;
  for (const name of Object.keys(settings)) {
    const spec = method.params.find((p) => p.name === name);
    let why: IgnoredSetting['why'] | null = null;
    if (!spec) {
      if (!allParamNames().has(name)) {
        const known = method.params.map((p) => p.name).join(', ') || '(none)';
        const near = closestParamName(method, name);
        throw new RecipeError('E_PARAM_UNKNOWN', `${where}: no merge method has a parameter '${name}'${near ? ` (did you mean '${near}'?)` : ''}; the parameters of ${method.id} are: ${known} (see evomerge methods)`);
      }
      why = 'not-taken';
    } else if (level === 'model' && spec.scope === 'global') why = 'scope';
    if (why) {
      ignored.push({ where, name, why });
      out ??= { ...settings };
      delete out[name];
    }
  }
  return out ? (Object.keys(out).length ? out : undefined) : settings;
}

/** The one warning line for the settings a recipe's method does not read. */
export function ignoredSettingsWarning(method: MergeMethod, ignored: readonly IgnoredSetting[]): string | null {
  if (ignored.length === 0) return null;
  const parts: string[] = [];
  const byName = new Map<string, IgnoredSetting[]>();
  for (const s of ignored) byName.set(s.name, [...(byName.get(s.name) ?? []), s]);
  for (const [name, list] of byName) {
    const scope = list.some((s) => s.why === 'scope') ? ' (a global parameter, set per model)' : '';
    parts.push(`'${name}'${scope} in ${list.map((s) => s.where).join(', ')}`);
  }
  return `${method.id} does not read ${parts.join('; ')}: ignored, as mergekit ignores it (parameters of ${method.id}: ${method.params.map((p) => p.name).join(', ') || 'none'})`;
}
