/**
 * The method registry: one explicit list; a duplicate id throws when the registry is built.
 */
import { arceeFusion } from './arcee-fusion.ts';
import { MethodParamError, UnknownMethodError } from './errors.ts';
import { fusechatMethods } from './fusechat.ts';
import { gtaMethods } from './gta.ts';
import { karcher } from './karcher.ts';
import { linear } from './linear.ts';
import { loraMethods } from './lora.ts';
import { modelStock } from './model-stock.ts';
import { nearswap } from './nearswap.ts';
import { passthrough } from './passthrough.ts';
import { multislerp, nuslerp, slerp } from './slerp.ts';
import type { MergeMethod, ParamSpec, ParamValue, ResolvedParams } from './types.ts';

/** Build a registry from a list, refusing duplicate ids. */
export function buildRegistry(methods: readonly MergeMethod[]): ReadonlyMap<string, MergeMethod> {
  const map = new Map<string, MergeMethod>();
  for (const m of methods) {
    if (map.has(m.id)) throw new Error(`merge method registry: duplicate id '${m.id}'`);
    const names = new Set<string>();
    for (const p of m.params) {
      if (names.has(p.name)) throw new Error(`merge method ${m.id}: duplicate parameter '${p.name}'`);
      names.add(p.name);
    }
    map.set(m.id, m);
  }
  return map;
}

/**
 * Every method, in the order `evomerge methods` lists them. The families built from settings keep
 * their own lists: gtaMethods (task_arithmetic ... della_linear), fusechatMethods (sce, varm),
 * loraMethods (lora_linear, lorahub).
 */
export const METHOD_LIST: readonly MergeMethod[] = [
  linear,
  slerp,
  nuslerp,
  multislerp,
  karcher,
  modelStock,
  nearswap,
  arceeFusion,
  passthrough,
  ...gtaMethods,
  ...fusechatMethods,
  ...loraMethods,
];

export const METHODS: ReadonlyMap<string, MergeMethod> = buildRegistry(METHOD_LIST);

export function getMethod(id: string): MergeMethod {
  const m = METHODS.get(id);
  if (!m) throw new UnknownMethodError(id, [...METHODS.keys()]);
  return m;
}

export function methodParam(method: MergeMethod, name: string): ParamSpec | undefined {
  return method.params.find((p) => p.name === name);
}

/** Check one value against its spec; returns it normalised (numbers from numeric strings refused). */
export function checkParamValue(method: MergeMethod, spec: ParamSpec, value: unknown, where: string): ParamValue | null {
  if (value === null && spec.default === null) return null;
  switch (spec.type) {
    case 'number': {
      if (typeof value !== 'number' || Number.isNaN(value)) {
        throw new MethodParamError('E_PARAM_TYPE', `${where}: parameter '${spec.name}' of ${method.id} must be a number, got ${JSON.stringify(value)}`);
      }
      const [lo, hi] = spec.range ?? [-Infinity, Infinity];
      if (value < lo || value > hi) {
        throw new MethodParamError('E_PARAM_RANGE', `${where}: parameter '${spec.name}' of ${method.id} is ${value}, outside [${lo}, ${hi}]`);
      }
      return value;
    }
    case 'boolean':
      if (typeof value !== 'boolean') {
        throw new MethodParamError('E_PARAM_TYPE', `${where}: parameter '${spec.name}' of ${method.id} must be true or false, got ${JSON.stringify(value)}`);
      }
      return value;
    case 'enum':
      if (typeof value !== 'string' || !spec.values!.includes(value)) {
        throw new MethodParamError('E_PARAM_VALUE', `${where}: parameter '${spec.name}' of ${method.id} must be one of ${spec.values!.join(', ')}, got ${JSON.stringify(value)}`);
      }
      return value;
  }
}

/**
 * Fill and check one scope's parameters for one tensor: `raw` holds what the recipe set (already
 * evaluated to plain values); unknown names, missing required ones and bad values throw.
 */
export function resolveScope(method: MergeMethod, scope: 'global' | 'per-model', raw: Readonly<Record<string, unknown>>, where: string): ResolvedParams {
  const out: Record<string, ParamValue | null> = {};
  for (const spec of method.params) {
    if (spec.scope !== scope) continue;
    const v = raw[spec.name];
    if (v === undefined) {
      if (spec.default === undefined) {
        throw new MethodParamError('E_PARAM_MISSING', `${where}: ${method.id} needs parameter '${spec.name}' (${spec.doc})`);
      }
      out[spec.name] = spec.default;
    } else out[spec.name] = checkParamValue(method, spec, v, where);
  }
  return out;
}

/** A JSON description of every method (for `evomerge methods --json` and docs). */
export function describeMethods(): Array<Record<string, unknown>> {
  return METHOD_LIST.map((m) => ({
    id: m.id,
    title: m.title,
    reference: m.reference,
    base: m.requiresBase,
    models: { min: m.minModels, max: Number.isFinite(m.maxModels) ? m.maxModels : null },
    mergekit: m.mergekitId,
    random: m.random,
    lora: m.lora ?? false,
    params: m.params.map((p) => ({
      name: p.name,
      scope: p.scope,
      type: p.type,
      ...(p.range ? { range: p.range.map((x) => (Number.isFinite(x) ? x : null)) } : {}),
      ...(p.values ? { values: p.values } : {}),
      ...(searchRange(p) ? { search: searchRange(p) } : {}),
      default: p.default === undefined ? 'required' : p.default,
      mergekit: p.mergekit ?? true,
      doc: p.doc,
    })),
    notes: m.notes ?? [],
  }));
}

/**
 * The bounds a search evolves a numeric parameter in when the space names it without bounds
 * (`evolve: [weight]`): its declared search range, else its valid range when that is finite, else
 * [0, 1] for a number without a range; null where neither is finite (bounds must be given, as in
 * `evolve: { scale: [0.5, 2] }`) and for non-numeric parameters. The genome (src/space/ps.ts) and
 * `evomerge methods` both read it here.
 */
export function searchRange(spec: ParamSpec): readonly [number, number] | null {
  if (spec.type !== 'number') return null;
  const r = spec.search ?? spec.range ?? [0, 1];
  return Number.isFinite(r[0]) && Number.isFinite(r[1]) ? r : null;
}

function formatRange(r: readonly [number, number] | undefined): string {
  if (!r) return '';
  const f = (x: number) => (x === Infinity ? 'inf' : x === -Infinity ? '-inf' : String(x));
  return ` in [${f(r[0])}, ${f(r[1])}]`;
}

/** Human-readable listing for `evomerge methods`. */
export function formatMethods(): string {
  const lines: string[] = [];
  for (const m of METHOD_LIST) {
    const base = m.requiresBase === 'required' ? 'needs a base' : m.requiresBase === 'optional' ? 'base optional' : 'no base';
    const count = m.maxModels === m.minModels ? `${m.minModels}` : Number.isFinite(m.maxModels) ? `${m.minModels}-${m.maxModels}` : `${m.minModels}+`;
    const tags = [base, `${count} model(s)`, m.mergekitId ? `mergekit: ${m.mergekitId}` : 'evomerge only', ...(m.random ? ['seeded random'] : []), ...(m.lora ? ['LoRA adapters'] : [])];
    lines.push(`${m.id} - ${m.title} (${tags.join('; ')})`);
    lines.push(`  ${m.reference}`);
    for (const p of m.params) {
      const def = p.default === undefined ? 'required' : `default ${JSON.stringify(p.default)}`;
      const values = p.values ? ` one of ${p.values.join('|')}` : '';
      const search = p.type !== 'number' ? '' : (s => (s ? `, searched in [${s[0]}, ${s[1]}]` : ', searched only in bounds the space gives'))(searchRange(p));
      lines.push(`  ${p.name} (${p.scope}, ${p.type}${formatRange(p.range)}${search}${values}; ${def}${p.mergekit === false ? '; evomerge only' : ''}): ${p.doc}`);
    }
    for (const note of m.notes ?? []) lines.push(`  note: ${note}`);
    lines.push('');
  }
  lines.push('Searched in: the bounds a search space\'s `evolve: [name]` gives a parameter; `evolve: { name: [lo, hi] }` sets others inside its valid range.');
  lines.push('Magnitude ties: among equal magnitudes the element with the lower flat index ranks higher.');
  lines.push('Random masks: streams seeded by (seed, tensor name, model index); any tensor can be recomputed alone.');
  return lines.join('\n');
}
