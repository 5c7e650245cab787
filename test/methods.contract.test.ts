/**
 * One contract suite, run over every registered merge method (METHOD_LIST, so a new method is
 * covered the day it is registered). The contract is src/methods/types.ts:
 *
 *   inputs    the arrays of TensorInput (base, models, LoRA factors) are read, never written
 *   out       given `out`, merge writes the result into it (every element, nothing beside it) and
 *             returns it, with the bits of a call that allocates its own
 *   seed      the same seed gives the same bits, also after other tensors were merged in between;
 *             a different seed changes the bits of a `random` method and no others'
 *   defaults  every parameter's default lies inside its range (and the validator accepts it), a
 *             search range lies inside the range, an enum's default is one of its values
 *   mergekit  a minimal recipe (mid-range numbers, other parameters at their defaults) exports to
 *             mergekit YAML and reads back to the same recipe (canonical JSON and recipe hash)
 *
 * Inputs are laid out from each method's declaration: a [4, 6] matrix and a 1-D bias of 6, base
 * when the method takes one (both with and without when it is optional), 2 and 3 models within
 * its model count, LoRA factors for LoRA methods. A method that cannot take part in a check is
 * listed in EXCEPTIONS with the reason; the exception is itself tested (a "not applicable" entry
 * checks its reason holds; a "defect" entry checks the defect is still there, so a fix shows).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { checkParamValue, METHOD_LIST, resolveScope, type LoraFactorsInput, type MergeMethod, type ParamSpec, type ResolvedParams, type TensorInput } from '../src/methods/index.ts';
import { canonicalJson, parseRecipe, recipeFromMergekit, recipeHash, recipeToMergekit, recipeToMergekitYaml, type Recipe } from '../src/recipe/index.ts';
import { Rng } from '../src/tensor/rng.ts';

const CHECKS = ['inputs', 'out', 'seed', 'defaults', 'mergekit'] as const;
type Check = (typeof CHECKS)[number];

interface Exception {
  readonly id: string;
  readonly check: Check;
  /** `not-applicable`: the check cannot apply; `defect`: the method breaks the contract (kept for the lead to decide). */
  readonly kind: 'not-applicable' | 'defect';
  readonly reason: string;
}

const EXCEPTIONS: readonly Exception[] = [
  { id: 'varm', check: 'mergekit', kind: 'not-applicable', reason: 'mergekit has no VaRM (mergekitId null): export refuses it with E_EXPORT_MERGEKIT' },
  { id: 'lora_linear', check: 'mergekit', kind: 'not-applicable', reason: 'mergekit has no LoRA composition (mergekitId null): export refuses it with E_EXPORT_MERGEKIT' },
  { id: 'lorahub', check: 'mergekit', kind: 'not-applicable', reason: 'mergekit has no LoRA composition (mergekitId null): export refuses it with E_EXPORT_MERGEKIT' },
];

// ---------------------------------------------------------------------------------------------
// Parameters: mid-range numbers, other parameters at their defaults

/** A numeric parameter's mid value: the middle of its search range, else its default, else of a finite range. */
function midNumber(spec: ParamSpec): number {
  if (spec.search) return (spec.search[0] + spec.search[1]) / 2;
  if (typeof spec.default === 'number') return spec.default;
  const r = spec.range ?? [-Infinity, Infinity];
  return Number.isFinite(r[0]) && Number.isFinite(r[1]) ? (r[0] + r[1]) / 2 : 0.5;
}

/** Raw settings of one scope: numbers mid-range (per-model ones spread a little over the models), the rest omitted (defaults). */
function midSettings(m: MergeMethod, scope: 'global' | 'per-model', j: number, count: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const spec of m.params) {
    if (spec.scope !== scope || spec.type !== 'number' || spec.default === null) continue;
    let v = midNumber(spec);
    if (scope === 'per-model' && spec.search && count > 1) {
      // distinct per model: symmetric models make degenerate merges (equal weights, equal masks)
      v += (j - (count - 1) / 2) * 0.1 * (spec.search[1] - spec.search[0]);
      const [lo, hi] = spec.range ?? [-Infinity, Infinity];
      v = Math.min(hi, Math.max(lo, v));
    }
    out[spec.name] = v;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Inputs laid out from the declaration

interface Layout {
  label: string;
  input: TensorInput;
  global: ResolvedParams;
  perModel: ResolvedParams[];
}

function normals(rng: Rng, n: number, scale: number, around?: Float32Array): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => (around ? around[i]! : 0) + scale * rng.normal());
}

function loraFactors(rng: Rng, shape: readonly number[]): LoraFactorsInput | null {
  if (shape.length < 2) return null; // adapters leave biases alone
  const [o, inF] = shape as [number, number];
  const rank = 2;
  return { a: normals(rng, rank * inF, 1), b: normals(rng, o * rank, 1), rank, scale: 0.5, outFeatures: o, inFeatures: inF };
}

const TENSORS: ReadonlyArray<{ name: string; shape: number[] }> = [
  { name: 'model.layers.1.mlp.up_proj.weight', shape: [4, 6] },
  { name: 'model.layers.1.mlp.up_proj.bias', shape: [6] },
];

/** Every input layout the method's declaration allows, with resolved mid-range parameters. */
function layouts(m: MergeMethod, dataSeed = 7): Layout[] {
  const out: Layout[] = [];
  const clamp = (k: number) => Math.min(m.maxModels, Math.max(m.minModels, k));
  const counts = [...new Set([clamp(2), clamp(3)])];
  const bases = m.requiresBase === 'required' ? [true] : m.requiresBase === 'optional' ? [true, false] : [false];
  for (const t of TENSORS) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    for (const k of counts) {
      for (const withBase of bases) {
        const rng = Rng.seeded(`${dataSeed}/${m.id}/${t.name}/${k}/${withBase}`);
        const base = normals(rng, n, 0.5);
        const models = m.lora ? [] : Array.from({ length: k }, () => normals(rng, n, 0.3, base));
        const lora = m.lora ? Array.from({ length: k }, () => loraFactors(rng, t.shape)) : undefined;
        const count = m.lora ? k : models.length;
        const global = resolveScope(m, 'global', midSettings(m, 'global', 0, count), 'contract');
        const perModel = Array.from({ length: count }, (_, j) => resolveScope(m, 'per-model', midSettings(m, 'per-model', j, count), 'contract'));
        out.push({
          label: `${t.shape.join('x')}, ${m.lora ? `${k} adapters` : `${k} models`}${withBase ? ', base' : ''}`,
          input: { name: t.name, shape: t.shape, base: withBase ? base : null, models, ...(lora ? { lora } : {}) },
          global,
          perModel,
        });
      }
    }
  }
  return out;
}

/** A deep copy of the input's arrays (the method may not be trusted with the originals). */
function copyInput(input: TensorInput): TensorInput {
  return {
    ...input,
    base: input.base ? input.base.slice() : null,
    models: input.models.map((x) => x.slice()),
    ...(input.lora ? { lora: input.lora.map((f) => (f ? { ...f, a: f.a.slice(), b: f.b.slice(), ...(f.delta ? { delta: f.delta.slice() } : {}) } : null)) } : {}),
  };
}

function bits(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

function sameBits(a: Float32Array, b: Float32Array, msg: string): void {
  assert.equal(a.length, b.length, `${msg}: length`);
  assert.deepEqual(bits(a), bits(b), msg);
}

function merge(m: MergeMethod, l: Layout, seed: string | number, out?: Float32Array): Float32Array {
  return m.merge(copyInput(l.input), l.global, l.perModel, { seed }, out);
}

// ---------------------------------------------------------------------------------------------
// The checks

function checkInputs(m: MergeMethod): void {
  for (const l of layouts(m)) {
    const input = copyInput(l.input);
    const before = copyInput(input);
    m.merge(input, l.global, l.perModel, { seed: 3 });
    if (before.base) sameBits(input.base!, before.base, `${m.id} (${l.label}) wrote its base`);
    input.models.forEach((x, j) => sameBits(x, before.models[j]!, `${m.id} (${l.label}) wrote model ${j}`));
    input.lora?.forEach((f, j) => {
      if (!f) return;
      const g = before.lora![j]!;
      sameBits(f.a, g.a, `${m.id} (${l.label}) wrote adapter ${j}'s A`);
      sameBits(f.b, g.b, `${m.id} (${l.label}) wrote adapter ${j}'s B`);
    });
  }
}

function checkOut(m: MergeMethod): void {
  for (const l of layouts(m)) {
    const n = l.input.shape.reduce((a, b) => a * b, 1);
    const own = merge(m, l, 3);
    assert.equal(own.length, n, `${m.id} (${l.label}): result length`);
    // a view into a larger buffer, pre-filled with NaN: every element written, none beside it
    const buffer = new Float32Array(n + 4).fill(Number.NaN);
    const out = buffer.subarray(2, 2 + n);
    const got = merge(m, l, 3, out);
    assert.equal(got, out, `${m.id} (${l.label}) returned another array than the given out`);
    sameBits(out, own, `${m.id} (${l.label}): the bits written into out`);
    for (const i of [0, 1, n + 2, n + 3]) assert.ok(Number.isNaN(buffer[i]!), `${m.id} (${l.label}) wrote outside out at ${i - 2}`);
  }
}

function checkSeed(m: MergeMethod): void {
  const ls = layouts(m);
  const others = layouts(m, 8);
  for (const l of ls) {
    const a = merge(m, l, 5);
    for (const o of others) merge(m, o, 6); // module-level scratch must not carry over
    sameBits(merge(m, l, 5), a, `${m.id} (${l.label}): same seed, other bits`);
    if (!m.random) sameBits(merge(m, l, 'another seed'), a, `${m.id} (${l.label}) is declared not random but its bits depend on the seed`);
  }
  if (m.random) {
    // on the largest layout at mid-range parameters the masks are sure to differ
    const l = ls.reduce((x, y) => (y.input.shape.length > x.input.shape.length || (y.input.shape.length === x.input.shape.length && (y.input.models.length > x.input.models.length)) ? y : x));
    const a = merge(m, l, 5);
    const b = merge(m, l, 'another seed');
    assert.notDeepEqual(bits(b), bits(a), `${m.id} (${l.label}) is declared random but two seeds gave the same bits`);
  }
}

function checkDefaults(m: MergeMethod): void {
  assert.ok(m.minModels <= m.maxModels, `${m.id}: minModels ${m.minModels} > maxModels ${m.maxModels}`);
  for (const p of m.params) {
    const where = `${m.id}.${p.name}`;
    switch (p.type) {
      case 'number': {
        assert.ok(p.range, `${where}: a number declares its range`);
        const [lo, hi] = p.range!;
        assert.ok(lo <= hi, `${where}: range [${lo}, ${hi}]`);
        if (p.search) assert.ok(lo <= p.search[0] && p.search[0] <= p.search[1] && p.search[1] <= hi, `${where}: search [${p.search.join(', ')}] outside range [${lo}, ${hi}]`);
        if (typeof p.default === 'number') assert.ok(lo <= p.default && p.default <= hi, `${where}: default ${p.default} outside [${lo}, ${hi}]`);
        else assert.ok(p.default === undefined || p.default === null, `${where}: default ${JSON.stringify(p.default)} is not a number`);
        break;
      }
      case 'boolean':
        assert.ok(p.default === undefined || typeof p.default === 'boolean', `${where}: default ${JSON.stringify(p.default)} is not a boolean`);
        break;
      case 'enum':
        assert.ok(p.values && p.values.length > 0, `${where}: an enum declares its values`);
        assert.ok(p.default === undefined || p.values!.includes(p.default as string), `${where}: default ${JSON.stringify(p.default)} not among ${p.values!.join(', ')}`);
        break;
    }
    // the validator agrees (defaults are never refused)
    if (p.default !== undefined) assert.equal(checkParamValue(m, p, p.default, 'contract'), p.default, where);
  }
}

/** The minimal recipe of a method: mid-range numbers, evomerge-only and unset parameters left out. */
function minimalRecipe(m: MergeMethod): Recipe {
  const k = Math.min(m.maxModels, Math.max(m.minModels, 2));
  const exportable = (r: Record<string, number>) => Object.fromEntries(Object.entries(r).filter(([name]) => m.params.find((p) => p.name === name)!.mergekit !== false));
  const perModel = (j: number) => exportable(midSettings(m, 'per-model', j, k));
  const global = exportable(midSettings(m, 'global', 0, k));
  return parseRecipe({
    method: m.id,
    ...(m.requiresBase !== 'none' ? { base: './base' } : {}),
    sources: Array.from({ length: k }, (_, j) => (Object.keys(perModel(j)).length ? { model: `./model-${j}`, parameters: perModel(j) } : { model: `./model-${j}` })),
    ...(Object.keys(global).length ? { parameters: global } : {}),
  });
}

function checkMergekit(m: MergeMethod): void {
  const recipe = minimalRecipe(m);
  const yaml = recipeToMergekitYaml(recipe);
  const back = recipeFromMergekit(parseYaml(yaml), `${m.id} exported`);
  assert.equal(canonicalJson(back), canonicalJson(recipe), `${m.id}: the recipe read back from\n${yaml}`);
  assert.equal(recipeHash(back), recipeHash(recipe));
  // an evomerge-only parameter off its default cannot be expressed, so export refuses it
  for (const p of m.params.filter((x) => x.mergekit === false && x.scope === 'global')) {
    const other = p.type === 'enum' ? p.values!.find((v) => v !== p.default) : p.type === 'boolean' ? !p.default : undefined;
    if (other === undefined) continue;
    const r = parseRecipe({ ...recipe, parameters: { ...recipe.parameters, [p.name]: other } });
    assert.throws(() => recipeToMergekit(r), { code: 'E_EXPORT_MERGEKIT' }, `${m.id}.${p.name} = ${JSON.stringify(other)}`);
  }
}

const RUN: Record<Check, (m: MergeMethod) => void> = { inputs: checkInputs, out: checkOut, seed: checkSeed, defaults: checkDefaults, mergekit: checkMergekit };

/** What a not-applicable exception claims, checked. */
const VERIFY_NOT_APPLICABLE: Partial<Record<Check, (m: MergeMethod) => void>> = {
  mergekit(m) {
    assert.equal(m.mergekitId, null, `${m.id} has a mergekit id; take it out of the exceptions`);
    assert.throws(() => recipeToMergekit(minimalRecipe(m)), { code: 'E_EXPORT_MERGEKIT' });
  },
};

// ---------------------------------------------------------------------------------------------

test('every exception names a registered method and a check, once, with a reason', () => {
  const ids = new Set(METHOD_LIST.map((m) => m.id));
  const seen = new Set<string>();
  for (const e of EXCEPTIONS) {
    assert.ok(ids.has(e.id), `exception for unregistered method ${e.id}`);
    assert.ok((CHECKS as readonly string[]).includes(e.check), `exception ${e.id}: unknown check ${e.check}`);
    assert.ok(e.reason.length > 10, `exception ${e.id}/${e.check} gives no reason`);
    assert.ok(!seen.has(`${e.id}/${e.check}`), `exception ${e.id}/${e.check} listed twice`);
    assert.ok(e.kind === 'defect' || VERIFY_NOT_APPLICABLE[e.check], `exception ${e.id}/${e.check}: nothing checks that the check cannot apply`);
    seen.add(`${e.id}/${e.check}`);
  }
});

test('every registered method is laid out for the suite or excepted, and the suite covers the whole registry', () => {
  assert.ok(METHOD_LIST.length >= 21);
  for (const m of METHOD_LIST) {
    const excepted = new Set(EXCEPTIONS.filter((e) => e.id === m.id).map((e) => e.check));
    if (CHECKS.every((c) => excepted.has(c))) continue;
    // a method the generic layout cannot feed must be excepted from every check that runs it
    let ls: Layout[] = [];
    assert.doesNotThrow(() => {
      ls = layouts(m);
    }, `${m.id}: no input layout can be built from its declaration; add it to EXCEPTIONS with the reason`);
    assert.ok(ls.length > 0, `${m.id}: no input layout`);
  }
});

for (const m of METHOD_LIST) {
  for (const check of CHECKS) {
    const e = EXCEPTIONS.find((x) => x.id === m.id && x.check === check);
    if (!e) {
      test(`${m.id} keeps the ${check} contract`, () => RUN[check](m));
    } else if (e.kind === 'not-applicable') {
      test(`${m.id} is excepted from the ${check} check: ${e.reason}`, () => VERIFY_NOT_APPLICABLE[check]!(m));
    } else {
      test(`${m.id} still breaks the ${check} contract (known defect: ${e.reason})`, () => {
        assert.throws(() => RUN[check](m), Error, `${m.id} now keeps the ${check} contract; remove the defect from EXCEPTIONS`);
      });
    }
  }
}
