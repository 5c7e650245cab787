/**
 * The parameter-space genome: one gene per (layer group, model, tensor filter, evolvable
 * parameter), mergekit-evolve's [groups, models, filters + 1, params] layout, but derived from
 * the method registry, so every numeric parameter of every method can evolve (not a fixed list).
 * Global parameters get one gene per (group, filter) in the slot `model = global`.
 *
 * A genome lives in [0,1]^n; gene g stands for lo + g (hi - lo) of its parameter's bounds.
 * Decoding yields a recipe with one slice per layer group (as mergekit-evolve writes its
 * configs), each parameter a list of {filter, value} conditionals ending with the catch-all.
 */
import { searchRange, type MergeMethod, type ParamSpec } from '../methods/index.ts';
import { RecipeSchema, type Recipe } from '../recipe/index.ts';
import { evaluateSetting } from '../recipe/params.ts';
import { InputError } from '../errors.ts';

export interface PsLayout {
  method: MergeMethod;
  /** The base checkpoint (used when the method takes a base). */
  base: string | null;
  /** The models that get per-model parameters, in recipe order. */
  models: readonly string[];
  /** Model names for gene labels (defaults to the paths). */
  modelNames?: readonly string[];
  layers: number;
  layersPerGroup: number;
  filters: readonly string[];
  /** Evolving parameters: names (bounds from the method's search range) or name -> bounds. */
  evolve: readonly string[] | Readonly<Record<string, readonly [number, number]>>;
  fixed: Readonly<Record<string, number | boolean | string>>;
  /** Seed of the recipe's random masks. */
  seed: number;
  /**
   * Tensors kept from one model instead of merged (a zoo's per-task heads): every tensor whose
   * name contains `filter` is taken from models[owner].
   */
  keep?: ReadonlyArray<{ filter: string; owner: number }>;
  /**
   * Genes at this many evenly spaced anchors over the layer groups instead of one set per group:
   * each group's value is interpolated linearly between its neighbouring anchors, as mergekit
   * reads a gradient list (mergekit/config.py `evaluate_setting`: t = i / (n - 1) over the groups,
   * value at t (K - 1) between anchors). A 32-layer model then needs K genes per (model, filter,
   * parameter) instead of 32, which keeps TIES/DARE weight and density genes of deep models
   * searchable within a few hundred evaluations.
   */
  layerAnchors?: number;
}

/**
 * Methods that can keep a tensor from one model through parameters alone, and the settings that
 * do it: the owner's task vector at weight 1 and full density, the others' at weight 0, no outlier
 * removal, lambda 1. Linear: sum(w x) / sum(w) = x_owner exactly; TIES and DARE: one non-zero
 * (weighted) delta elects its own sign and is divided by its own weight, so base + delta_owner;
 * task arithmetic: base + (x_owner - base), equal to x_owner up to one float32 rounding.
 * Breadcrumbs is left out: mergekit prunes the whole task vector when int(gamma N) = 0.
 */
const KEEPABLE = new Set(['linear', 'task_arithmetic', 'ties', 'dare_ties', 'dare_linear', 'della', 'della_linear']);
const KEEP_VALUE: Readonly<Record<string, (owner: boolean) => number>> = {
  weight: (owner) => (owner ? 1 : 0),
  density: () => 1,
  epsilon: () => 0,
  lambda: () => 1,
};

interface Gene {
  /** Layer group, or anchor index when the layout has layerAnchors. */
  group: number;
  /** Model index, or -1 for a global parameter. */
  model: number;
  /** Filter index, or filters.length for the catch-all. */
  filter: number;
  param: string;
  lo: number;
  hi: number;
}

const round = (v: number) => Math.round(v * 1e6) / 1e6;

export class PsCodec {
  readonly layout: PsLayout;
  readonly groups: Array<[number, number]>;
  /** Number of anchors the genes sit at (layerAnchors), or null: one set of genes per group. */
  readonly anchors: number | null;
  readonly dimension: number;
  private readonly geneList: Gene[];

  constructor(layout: PsLayout) {
    const { method, layers, layersPerGroup, filters, models } = layout;
    this.layout = layout;
    if (!(layers >= 1)) throw new InputError('E_SPACE_PS', `the base has ${layers} layers; a parameter search needs models with layers (see evomerge inspect)`);
    if (method.requiresBase === 'required' && !layout.base) throw new InputError('E_SPACE_PS', `method '${method.id}' needs a base model`);
    if (models.length < method.minModels || models.length > method.maxModels) {
      throw new InputError('E_SPACE_PS', `method '${method.id}' takes ${method.minModels} to ${method.maxModels} models besides the base, the space gives ${models.length}`);
    }
    const entries: Array<[string, readonly [number, number] | null]> = Array.isArray(layout.evolve)
      ? (layout.evolve as string[]).map((n) => [n, null])
      : Object.entries(layout.evolve as Record<string, readonly [number, number]>);
    const evolving: Array<{ spec: ParamSpec; lo: number; hi: number }> = [];
    for (const [name, bounds] of entries) {
      const spec = method.params.find((p) => p.name === name);
      if (!spec) throw new InputError('E_SPACE_PS', `method '${method.id}' has no parameter '${name}'; it has ${method.params.map((p) => p.name).join(', ') || 'none'}`);
      if (spec.type !== 'number') throw new InputError('E_SPACE_PS', `parameter '${name}' of ${method.id} is ${spec.type}, only numeric parameters evolve; set it under fixed`);
      if (Object.hasOwn(layout.fixed, name)) throw new InputError('E_SPACE_PS', `parameter '${name}' is both evolved and fixed`);
      const given = bounds ?? searchRange(spec);
      if (!given) throw new InputError('E_SPACE_PS', `parameter '${name}' of ${method.id} has no finite search range (valid range [${spec.range?.join(', ')}]); give its bounds: evolve: { ${name}: [lo, hi] }`);
      const [lo, hi] = given;
      const [rlo, rhi] = spec.range ?? [-Infinity, Infinity];
      if (lo < rlo || hi > rhi || !(lo <= hi)) throw new InputError('E_SPACE_PS', `bounds [${lo}, ${hi}] of '${name}' must lie inside its valid range [${rlo}, ${rhi}]`);
      evolving.push({ spec, lo, hi });
    }
    for (const name of Object.keys(layout.fixed)) {
      if (!method.params.some((p) => p.name === name)) throw new InputError('E_SPACE_PS', `fixed parameter '${name}' is not a parameter of ${method.id}`);
    }
    this.groups = [];
    for (let start = 0; start < layers; start += layersPerGroup) this.groups.push([start, Math.min(layers, start + layersPerGroup)]);
    const anchors = layout.layerAnchors;
    if (anchors !== undefined && (!Number.isInteger(anchors) || anchors < 2 || anchors > this.groups.length)) {
      throw new InputError('E_SPACE_PS', `layer_anchors is ${anchors}, but it must be an integer from 2 to the number of layer groups (${this.groups.length} here: ${layers} layers, ${layersPerGroup} per group); leave it out for one set of genes per group`);
    }
    this.anchors = anchors ?? null;
    this.geneList = [];
    Array.from({ length: this.anchors ?? this.groups.length }).forEach((_, group) => {
      for (let model = -1; model < models.length; model++) {
        for (let filter = 0; filter <= filters.length; filter++) {
          for (const { spec, lo, hi } of evolving) {
            if ((model === -1) !== (spec.scope === 'global')) continue;
            this.geneList.push({ group, model, filter, param: spec.name, lo, hi });
          }
        }
      }
    });
    if (this.geneList.length === 0) throw new InputError('E_SPACE_PS', 'nothing evolves: list at least one numeric parameter under evolve');
    for (const k of layout.keep ?? []) {
      if (!KEEPABLE.has(method.id)) {
        throw new InputError('E_SPACE_KEEP', `tensors matching '${k.filter}' must be kept from one model (for example a zoo's per-task heads), which method '${method.id}' cannot express; use one of ${[...KEEPABLE].join(', ')}`);
      }
      if (!Number.isInteger(k.owner) || k.owner < 0 || k.owner >= models.length) throw new InputError('E_SPACE_KEEP', `kept tensors '${k.filter}' name model ${k.owner}, but the space has ${models.length} models`);
    }
    this.dimension = this.geneList.length;
  }

  /** A readable name per gene, e.g. `layers 0-1 / math / self_attn / weight`. */
  geneNames(): string[] {
    const names = this.layout.modelNames ?? this.layout.models;
    const G = this.groups.length;
    return this.geneList.map((g) => {
      const where = this.anchors === null
        ? `layers ${this.groups[g.group]![0]}-${this.groups[g.group]![1] - 1}`
        : `anchor ${g.group + 1}/${this.anchors} (layer group ${round((g.group * (G - 1)) / (this.anchors - 1))} of 0-${G - 1})`;
      return `${where} / ${g.model < 0 ? 'global' : names[g.model]} / ${g.filter < this.layout.filters.length ? this.layout.filters[g.filter] : '*'} / ${g.param}`;
    });
  }

  /** Each gene's parameter value. */
  values(genome: readonly number[]): number[] {
    if (genome.length !== this.dimension) throw new InputError('E_GENOME', `a PS genome of this space has ${this.dimension} genes, got ${genome.length}`);
    return this.geneList.map((g, i) => round(g.lo + Math.min(1, Math.max(0, genome[i]!)) * (g.hi - g.lo)));
  }

  /** The genome of each parameter's default (clamped into its bounds), or the box centre when it has none. */
  initialGenome(): number[] {
    return this.geneList.map((g) => {
      const spec = this.layout.method.params.find((p) => p.name === g.param)!;
      const d = typeof spec.default === 'number' ? spec.default : (g.lo + g.hi) / 2;
      return g.hi === g.lo ? 0.5 : Math.min(1, Math.max(0, (d - g.lo) / (g.hi - g.lo)));
    });
  }

  /**
   * The genome of a fixed recipe (a method's global and per-model settings applied to every
   * model, layer group and filter), for a warm start from the customary recipes of `evomerge
   * baselines`; or why this space cannot express it. A setting of a parameter that does not evolve
   * must equal the space's value (fixed, else the method's default), with one exception: a lambda
   * that differs folds into the weights when the weights evolve and the method does not normalise,
   * since then the merge is base + lambda * sum_k w_k tau_k (mergekit
   * generalized_task_arithmetic.py; Ilharco et al. 2023, section 2), so (lambda, w) and
   * (lambda', w lambda / lambda') give the same tensors. A value outside its gene's bounds is not
   * expressible (clamping would be another recipe).
   */
  encode(settings: { global: Readonly<Record<string, unknown>>; perModel: Readonly<Record<string, unknown>> }): number[] | string {
    const { method, fixed } = this.layout;
    const global: Record<string, unknown> = { ...settings.global };
    const perModel: Record<string, unknown> = { ...settings.perModel };
    const evolves = (name: string) => this.geneList.some((g) => g.param === name);
    const spaceValue = (name: string) => (Object.hasOwn(fixed, name) ? fixed[name] : method.params.find((p) => p.name === name)?.default);
    for (const [name, wanted] of [...Object.entries(global), ...Object.entries(perModel)]) {
      const spec = method.params.find((p) => p.name === name);
      if (!spec) return `${method.id} has no parameter '${name}'`;
      if (evolves(name)) continue;
      const have = spaceValue(name);
      if (wanted === have) continue;
      const folds = name === 'lambda' && evolves('weight') && spaceValue('normalize') === false && typeof wanted === 'number' && typeof have === 'number' && have !== 0 && typeof perModel.weight === 'number';
      if (!folds) return `${name} = ${String(wanted)}, but the space has ${name} = ${String(have)}`;
      perModel.weight = (perModel.weight as number) * (wanted as number) / have;
    }
    const genome: number[] = [];
    for (const g of this.geneList) {
      const spec = method.params.find((p) => p.name === g.param)!;
      const v = (g.model < 0 ? global : perModel)[g.param] ?? spec.default;
      if (typeof v !== 'number') return `no value for ${g.param}`;
      if (v < g.lo - 1e-9 || v > g.hi + 1e-9) return `${g.param} = ${v} lies outside its bounds [${g.lo}, ${g.hi}]`;
      genome.push(g.hi === g.lo ? 0.5 : Math.min(1, Math.max(0, (v - g.lo) / (g.hi - g.lo))));
    }
    return genome;
  }

  /**
   * A layer group's settings from the anchors' (layerAnchors): each slot interpolated at the
   * group's position t = group / (groups - 1) over the anchors' values, with mergekit's gradient
   * rule (evaluateSetting on a number list), rounded like a gene value.
   */
  private interpolated(anchors: ReadonlyArray<Map<number, Map<string, number[]>>>, group: number): Map<number, Map<string, number[]>> {
    const G = this.groups.length;
    const t = G === 1 ? 0 : group / (G - 1);
    const out = new Map<number, Map<string, number[]>>();
    for (const [model, byParam] of anchors[0]!) {
      const params = new Map<string, number[]>();
      for (const [param, slots] of byParam) {
        params.set(param, slots.map((_, k) => round(evaluateSetting(anchors.map((a) => a.get(model)!.get(param)![k]!), '', t) as number)));
      }
      out.set(model, params);
    }
    return out;
  }

  decode(genome: readonly number[]): Recipe {
    const { method, base, models, filters, fixed, seed } = this.layout;
    const values = this.values(genome);
    // setting[group][model+1][param] = values per filter slot
    const perGene = Array.from({ length: this.anchors ?? this.groups.length }, () => new Map<number, Map<string, number[]>>());
    this.geneList.forEach((g, i) => {
      const byModel = perGene[g.group]!;
      let byParam = byModel.get(g.model);
      if (!byParam) byModel.set(g.model, (byParam = new Map()));
      let slots = byParam.get(g.param);
      if (!slots) byParam.set(g.param, (slots = new Array(filters.length + 1).fill(0)));
      slots[g.filter] = values[i]!;
    });
    const settings = this.anchors === null ? perGene : this.groups.map((_, group) => this.interpolated(perGene, group));
    const setting = (slots: number[]) => (filters.length === 0 ? slots[0]! : [...filters.map((f, k) => ({ filter: f, value: slots[k]! })), { value: slots[filters.length]! }]);
    const fixedGlobal: Record<string, number | boolean | string> = {};
    const fixedPerModel: Record<string, number | boolean | string> = {};
    for (const [name, v] of Object.entries(fixed)) {
      (method.params.find((p) => p.name === name)!.scope === 'global' ? fixedGlobal : fixedPerModel)[name] = v;
    }
    const useBase = base !== null && method.requiresBase !== 'none';
    const slices = this.groups.map(([start, end], group) => {
      const params = (model: number) => {
        const out: Record<string, unknown> = model >= 0 ? { ...fixedPerModel } : {};
        for (const [param, slots] of settings[group]!.get(model) ?? []) out[param] = setting(slots);
        return Object.keys(out).length > 0 ? out : undefined;
      };
      const global = params(-1);
      // kept tensors: leading {filter, value} entries, which win over the genes (first match)
      const keep = this.layout.keep ?? [];
      const pin = (target: Record<string, unknown> | undefined, model: number, scope: 'global' | 'per-model') => {
        if (keep.length === 0) return target;
        const out: Record<string, unknown> = { ...target };
        for (const spec of method.params) {
          const value = KEEP_VALUE[spec.name];
          if (spec.scope !== scope || !value) continue;
          const existing = out[spec.name];
          const tail = existing === undefined ? [] : Array.isArray(existing) && typeof existing[0] === 'object' ? existing : [{ value: existing }];
          out[spec.name] = [...keep.map((k) => ({ filter: k.filter, value: value(k.owner === model) })), ...tail];
        }
        return Object.keys(out).length > 0 ? out : undefined;
      };
      const sliceParams = pin(global, -1, 'global');
      return {
        sources: [
          ...(useBase ? [{ model: base!, layer_range: [start, end] as [number, number] }] : []),
          ...models.map((m, k) => {
            const own = pin(params(k), k, 'per-model');
            return { model: m, layer_range: [start, end] as [number, number], ...(own ? { parameters: own } : {}) };
          }),
        ],
        ...(useBase ? { base_model: base! } : {}),
        ...(sliceParams ? { parameters: sliceParams } : {}),
      };
    });
    return RecipeSchema.parse({
      method: method.id,
      ...(useBase ? { base } : {}),
      slices,
      ...(Object.keys(fixedGlobal).length > 0 ? { parameters: fixedGlobal } : {}),
      seed,
    });
  }
}

/**
 * A choice among several methods: one categorical gene (method k when g falls in the k-th of K
 * equal parts of [0,1]) followed by each method's own PS genes. Evolving and fixed parameters
 * apply to the methods that have them; a parameter no method has is an error.
 */
export class MultiMethodCodec {
  readonly codecs: PsCodec[];
  readonly dimension: number;

  constructor(layout: Omit<PsLayout, 'method'> & { methods: readonly MergeMethod[] }) {
    const { methods, ...rest } = layout;
    const named = Array.isArray(rest.evolve) ? (rest.evolve as string[]) : Object.keys(rest.evolve);
    for (const name of [...named, ...Object.keys(rest.fixed)]) {
      if (!methods.some((m) => m.params.some((p) => p.name === name))) {
        throw new InputError('E_SPACE_PS', `parameter '${name}' belongs to none of the methods ${methods.map((m) => m.id).join(', ')}`);
      }
    }
    this.codecs = methods.map((method) => {
      const has = (n: string) => method.params.some((p) => p.name === n);
      const evolve = Array.isArray(rest.evolve)
        ? (rest.evolve as string[]).filter(has)
        : Object.fromEntries(Object.entries(rest.evolve as Record<string, readonly [number, number]>).filter(([n]) => has(n)));
      const fixed = Object.fromEntries(Object.entries(rest.fixed).filter(([n]) => has(n)));
      return new PsCodec({ ...rest, method, evolve, fixed });
    });
    this.dimension = 1 + this.codecs.reduce((a, c) => a + c.dimension, 0);
  }

  private split(genome: readonly number[]): { k: number; genes: number[] } {
    if (genome.length !== this.dimension) throw new InputError('E_GENOME', `a PS genome of this space has ${this.dimension} genes, got ${genome.length}`);
    const k = Math.min(this.codecs.length - 1, Math.max(0, Math.floor(genome[0]! * this.codecs.length)));
    let offset = 1;
    for (let i = 0; i < k; i++) offset += this.codecs[i]!.dimension;
    return { k, genes: genome.slice(offset, offset + this.codecs[k]!.dimension) };
  }

  geneNames(): string[] {
    return [`method (${this.codecs.map((c) => c.layout.method.id).join(' | ')})`, ...this.codecs.flatMap((c) => c.geneNames().map((n) => `${c.layout.method.id}: ${n}`))];
  }

  /** A fixed recipe of one of the methods (see PsCodec.encode): the method gene at the middle of its part, the other methods at their defaults. */
  encode(methodId: string, settings: { global: Readonly<Record<string, unknown>>; perModel: Readonly<Record<string, unknown>> }): number[] | string {
    const k = this.codecs.findIndex((c) => c.layout.method.id === methodId);
    if (k < 0) return `the space's methods are ${this.codecs.map((c) => c.layout.method.id).join(', ')}`;
    const own = this.codecs[k]!.encode(settings);
    if (typeof own === 'string') return own;
    return [(k + 0.5) / this.codecs.length, ...this.codecs.flatMap((c, i) => (i === k ? own : c.initialGenome()))];
  }

  /** Starts on the first method, at each method's defaults. */
  initialGenome(): number[] {
    return [0.5 / this.codecs.length, ...this.codecs.flatMap((c) => c.initialGenome())];
  }

  decode(genome: readonly number[]): Recipe {
    const { k, genes } = this.split(genome);
    return this.codecs[k]!.decode(genes);
  }
}
