/**
 * mergekit YAML in and out (the schema of mergekit/config.py `MergeConfiguration`).
 *
 * Import takes a mergekit config as is: `merge_method`, `base_model`, `models` or `slices`,
 * `parameters`, `dtype`, `out_dtype`, `tokenizer_source`, `tokenizer`, `chat_template`. Unknown
 * keys are refused, naming them; parameters the method does not read are dropped with one warning
 * (params.ts `checkSettingNames`); valid mergekit features evomerge lacks (`modules`, `model+lora`
 * references, `residual_weight`) are refused as "not supported yet". Export writes a config
 * mergekit accepts, refusing methods or options mergekit lacks. Several documents with `name`
 * (mergekit-multi) are read by src/report/multi-merge.ts, one recipe per document.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { parseAllDocuments, stringify as stringifyYaml } from 'yaml';
import { z } from 'zod';
import { getMethod } from '../methods/index.ts';
import { MergekitNotSupportedError, RecipeError } from './errors.ts';
import { checkSettingNames, ignoredSettingsWarning, type IgnoredSetting } from './params.ts';
import { RecipeSchema, type Recipe, type ParamSettings } from './schema.ts';

const MERGEKIT_KEYS = ['merge_method', 'base_model', 'models', 'slices', 'modules', 'parameters', 'dtype', 'out_dtype', 'tokenizer_source', 'tokenizer', 'chat_template'] as const;
const UNSUPPORTED_KEYS: Record<string, string> = {
  modules: 'multi-module configs (`modules`)',
};

const DTYPE_ALIASES: Record<string, 'float32' | 'float16' | 'bfloat16'> = {
  float32: 'float32', fp32: 'float32', float: 'float32',
  float16: 'float16', fp16: 'float16', half: 'float16',
  bfloat16: 'bfloat16', bf16: 'bfloat16',
};

function zodMessage(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ');
}

function dtypeOf(value: unknown, where: string): 'float32' | 'float16' | 'bfloat16' | undefined {
  if (value === undefined || value === null) return undefined;
  const d = typeof value === 'string' ? DTYPE_ALIASES[value.toLowerCase()] : undefined;
  if (!d) throw new RecipeError('E_RECIPE_DTYPE', `${where}: dtype ${JSON.stringify(value)} is not one of float32, float16, bfloat16`);
  return d;
}

function checkModelRef(ref: unknown, where: string): void {
  if (typeof ref === 'string' && ref.includes('+')) {
    throw new MergekitNotSupportedError(`${where}: model reference '${ref}' applies a LoRA to a model (model+lora)`, 'merge the adapter into the model first, or use a LoRA method (lora_linear, lorahub) with the adapter as a source');
  }
}

/** Every model reference of a tokenizer block's token sources. */
function tokenSourceModels(tokenizer: unknown): string[] {
  const tokens = tokenizer && typeof tokenizer === 'object' ? (tokenizer as { tokens?: unknown }).tokens : undefined;
  if (!tokens || typeof tokens !== 'object') return [];
  const out: string[] = [];
  for (const t of Object.values(tokens as Record<string, unknown>)) {
    const src = t && typeof t === 'object' ? (t as { source?: unknown }).source : undefined;
    if (typeof src === 'string') out.push(src);
    else if (src && typeof src === 'object' && typeof (src as { model?: unknown }).model === 'string') out.push((src as { model: string }).model);
  }
  return out;
}

/**
 * A mergekit configuration (parsed YAML object) as a recipe. `warnings` receives what is accepted
 * but ignored (parameters the method does not read), one line each.
 */
export function recipeFromMergekit(config: unknown, where = 'mergekit config', warnings?: string[]): Recipe {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new RecipeError('E_RECIPE_INVALID', `${where}: a mergekit config is a mapping with merge_method and models or slices`);
  }
  const c = config as Record<string, unknown>;
  const unknown = Object.keys(c).filter((k) => !(MERGEKIT_KEYS as readonly string[]).includes(k));
  if (unknown.length) {
    throw new RecipeError('E_RECIPE_UNKNOWN_KEY', `${where}: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')}; mergekit configs take ${MERGEKIT_KEYS.join(', ')}`);
  }
  for (const [k, what] of Object.entries(UNSUPPORTED_KEYS)) if (c[k] !== undefined && c[k] !== null) throw new MergekitNotSupportedError(`${where}: ${what}`);
  checkModelRef(c.base_model, `${where}: base_model`);
  const models = c.models as Array<Record<string, unknown>> | undefined;
  if (Array.isArray(models)) models.forEach((m, i) => checkModelRef(m?.model, `${where}: models[${i}]`));
  const slices = c.slices as Array<Record<string, unknown>> | undefined;
  if (Array.isArray(slices)) {
    slices.forEach((s, i) => {
      if (s && s.residual_weight !== undefined && s.residual_weight !== null) throw new MergekitNotSupportedError(`${where}: slices[${i}].residual_weight`);
      const srcs = s?.sources as Array<Record<string, unknown>> | undefined;
      if (Array.isArray(srcs)) srcs.forEach((src, j) => checkModelRef(src?.model, `${where}: slices[${i}].sources[${j}]`));
    });
  }
  checkModelRef(c.tokenizer_source, `${where}: tokenizer_source`);
  if (c.tokenizer && typeof c.tokenizer === 'object') checkModelRef((c.tokenizer as { source?: unknown }).source, `${where}: tokenizer.source`);
  for (const m of tokenSourceModels(c.tokenizer)) checkModelRef(m, `${where}: tokenizer.tokens`);
  const candidate = {
    version: 1,
    method: c.merge_method,
    base: c.base_model ?? undefined,
    sources: models,
    slices,
    parameters: c.parameters ?? undefined,
    dtype: dtypeOf(c.dtype, `${where}: dtype`),
    out_dtype: dtypeOf(c.out_dtype, `${where}: out_dtype`),
    tokenizer_source: c.tokenizer_source ?? undefined,
    tokenizer: c.tokenizer ?? undefined,
    chat_template: c.chat_template ?? undefined,
  };
  return parseRecipe(candidate, where, warnings);
}

/**
 * Validate a recipe object: schema, method, parameter names and scopes. Settings the method does
 * not read are removed from the returned recipe, and one line naming them goes to `warnings`.
 */
export function parseRecipe(value: unknown, where = 'recipe', warnings?: string[]): Recipe {
  const parsed = RecipeSchema.safeParse(value);
  if (!parsed.success) throw new RecipeError('E_RECIPE_INVALID', `${where}: ${zodMessage(parsed.error)}`);
  const r = parsed.data;
  const method = getMethod(r.method);
  const ignored: IgnoredSetting[] = [];
  const clean = <T extends { parameters?: ParamSettings }>(o: T, label: string, level: 'top' | 'slice' | 'model'): void => {
    const kept = checkSettingNames(method, o.parameters, `${where}: ${label}`, level, ignored);
    if (kept === o.parameters) return;
    if (kept) o.parameters = kept;
    else delete o.parameters;
  };
  clean(r, 'parameters', 'top');
  r.sources?.forEach((s, i) => clean(s, `sources[${i}] (${s.model})`, 'model'));
  r.slices?.forEach((s, i) => {
    clean(s, `slices[${i}]`, 'slice');
    s.sources.forEach((src, j) => {
      clean(src, `slices[${i}].sources[${j}] (${src.model})`, 'model');
      if (src.layer_range[1] <= src.layer_range[0]) throw new RecipeError('E_RECIPE_LAYER_RANGE', `${where}: slices[${i}].sources[${j}].layer_range [${src.layer_range.join(', ')}] is empty; write [start, end) with end > start`);
    });
  });
  const line = ignoredSettingsWarning(method, ignored.map((x) => ({ ...x, where: x.where.slice(where.length + 2) })));
  if (line) warnings?.push(`${where}: ${line}`);
  return r;
}

const EXPECTED = 'merge expects a mergekit YAML config (.yaml/.yml) or an evomerge recipe (.json, e.g. recipe.json from evomerge export), which names the models to merge';

/**
 * What a file given as a config is when it cannot be one: a safetensors checkpoint (an 8-byte
 * little-endian header length, then a JSON header starting with `{`: the safetensors format,
 * huggingface/safetensors README), another binary file (a NUL byte or invalid UTF-8 in its first
 * 64 KiB), or null for text.
 */
function binaryKind(bytes: Buffer): string | null {
  if (bytes.length >= 9 && bytes[8] === 0x7b && bytes.readBigUInt64LE(0) > 1n && bytes.readBigUInt64LE(0) < BigInt(bytes.length)) return 'a safetensors checkpoint';
  const head = bytes.subarray(0, 65536);
  if (head.includes(0)) return 'a binary file';
  try {
    // a multi-byte character cut at 64 KiB is not an error
    new TextDecoder('utf-8', { fatal: true }).decode(head.length === bytes.length ? head : head.subarray(0, head.length - 4));
  } catch {
    return 'a binary file (not UTF-8 text)';
  }
  return null;
}

/** One document of a merge config file: a recipe, named when it is a stage others may refer to. */
export interface MergeStage {
  /** mergekit-multi's `name` (null: the unnamed, final merge). */
  name: string | null;
  recipe: Recipe;
}

function readConfigFile(path: string): string {
  let bytes: Buffer;
  try {
    if (statSync(path).isDirectory()) {
      const hint = existsSync(join(path, 'config.json')) || existsSync(join(path, 'adapter_config.json')) ? ' (a model checkpoint: list it under the config\'s models)' : '';
      throw new RecipeError('E_RECIPE_NOT_CONFIG', `${path} is a folder${hint}; ${EXPECTED}`);
    }
    bytes = readFileSync(path);
  } catch (err) {
    if (err instanceof RecipeError) throw err;
    throw new RecipeError('E_RECIPE_READ', `${path}: cannot read the recipe (${(err as Error).message})`);
  }
  const kind = binaryKind(bytes);
  if (kind) throw new RecipeError('E_RECIPE_NOT_CONFIG', `${path} is ${kind}, not a merge config${kind.includes('safetensors') ? ' (a model: list it under the config\'s models)' : ''}; ${EXPECTED}`);
  return bytes.toString('utf8');
}

function parseError(path: string, what: string, err: unknown): RecipeError {
  // the yaml package adds a code frame on further lines: the first line says what and where
  return new RecipeError('E_RECIPE_PARSE', `${path}: not valid ${what}: ${(err as Error).message.split('\n')[0]!.replace(/:$/, '')}`);
}

/** One parsed document as a recipe (mergekit config or evomerge recipe). */
function recipeOfDocument(value: unknown, where: string, warnings?: string[]): Recipe {
  if (value && typeof value === 'object' && 'merge_method' in value) return recipeFromMergekit(value, where, warnings);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new RecipeError('E_RECIPE_NOT_CONFIG', `${where} holds ${value === null ? 'nothing' : Array.isArray(value) ? 'a list' : `a ${typeof value}`}, not a merge config; ${EXPECTED}`);
  return parseRecipe(value, where, warnings);
}

/**
 * Read a merge config file: `.json` (an evomerge recipe) or `.yaml`/`.yml` holding one mergekit
 * config or recipe, or several documents separated by `---` (mergekit-multi, its
 * docs/multimerge.md and mergekit/scripts/multimerge.py): each with a `name` but at most one
 * (the final merge), names unique. Model references to a stage's name are left as written; the
 * caller resolves them to that stage's output folder (src/report/multi-merge.ts).
 */
export function loadMergeStages(path: string, warnings?: string[]): MergeStage[] {
  const text = readConfigFile(path);
  if (extname(path).toLowerCase() === '.json') {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw parseError(path, 'JSON', err);
    }
    return [{ name: null, recipe: recipeOfDocument(value, path, warnings) }];
  }
  const docs = parseAllDocuments(text);
  const values: unknown[] = [];
  for (const doc of Array.isArray(docs) ? docs : []) {
    if (doc.errors.length) throw parseError(path, 'YAML', doc.errors[0]);
    values.push(doc.toJS());
  }
  const present = values.filter((v) => v !== null && v !== undefined);
  if (present.length <= 1 && !(present[0] && typeof present[0] === 'object' && 'name' in present[0])) {
    return [{ name: null, recipe: recipeOfDocument(present[0] ?? null, path, warnings) }];
  }
  const stages: MergeStage[] = [];
  present.forEach((value, i) => {
    const where = `${path} (document ${i + 1})`;
    let name: string | null = null;
    let doc = value;
    if (value && typeof value === 'object' && !Array.isArray(value) && 'name' in value) {
      const { name: n, ...rest } = value as Record<string, unknown>;
      if (typeof n !== 'string' || n.length === 0 || n.includes('/') || n === '.' || n === '..') {
        throw new RecipeError('E_RECIPE_STAGE', `${where}: name ${JSON.stringify(n)} must be a non-empty folder name (no '/'): each named merge is written to a folder of that name`);
      }
      name = n;
      doc = rest;
    }
    if (stages.some((s) => s.name === name)) {
      throw new RecipeError('E_RECIPE_STAGE', name === null ? `${where}: a second merge without a name; only the final merge may be unnamed (mergekit-multi)` : `${where}: a second merge named '${name}'; names must be unique`);
    }
    stages.push({ name, recipe: recipeOfDocument(doc, name ? `${where} '${name}'` : where, warnings) });
  });
  return stages;
}

/** Read a file holding one recipe (a mergekit config or an evomerge recipe); several documents are refused. */
export function loadRecipeFile(path: string, warnings?: string[]): Recipe {
  const stages = loadMergeStages(path, warnings);
  if (stages.length > 1 || stages[0]!.name !== null) {
    throw new RecipeError('E_RECIPE_MULTI', `${path} holds ${stages.length} named merges (a mergekit-multi config); run it with evomerge merge, which merges each stage in order`);
  }
  return stages[0]!.recipe;
}

function cleanSettings(method: ReturnType<typeof getMethod>, settings: ParamSettings | undefined, where: string): ParamSettings | undefined {
  if (!settings) return undefined;
  const out: ParamSettings = {};
  for (const [k, v] of Object.entries(settings)) {
    const spec = method.params.find((p) => p.name === k);
    if (spec?.mergekit === false) {
      if (v !== spec.default) throw new RecipeError('E_EXPORT_MERGEKIT', `${where}: parameter '${k}' = ${JSON.stringify(v)} is evomerge-only; mergekit cannot express it (set it to ${JSON.stringify(spec.default)} to export)`);
      continue;
    }
    out[k] = v;
  }
  return Object.keys(out).length ? out : undefined;
}

/** The mergekit configuration object of a recipe (refuses what mergekit cannot express). */
export function recipeToMergekit(recipe: Recipe): Record<string, unknown> {
  const method = getMethod(recipe.method);
  if (!method.mergekitId) throw new RecipeError('E_EXPORT_MERGEKIT', `method ${method.id} does not exist in mergekit; export the recipe as JSON instead`);
  const out: Record<string, unknown> = { merge_method: method.mergekitId };
  if (recipe.base) out.base_model = recipe.base;
  if (recipe.sources) {
    out.models = recipe.sources.map((s, i) => {
      const p = cleanSettings(method, s.parameters, `sources[${i}]`);
      return p ? { model: s.model, parameters: p } : { model: s.model };
    });
  }
  if (recipe.slices) {
    out.slices = recipe.slices.map((s, i) => {
      const slice: Record<string, unknown> = {
        sources: s.sources.map((src, j) => {
          const p = cleanSettings(method, src.parameters, `slices[${i}].sources[${j}]`);
          return { model: src.model, layer_range: src.layer_range, ...(p ? { parameters: p } : {}) };
        }),
      };
      if (s.base_model) slice.base_model = s.base_model;
      const p = cleanSettings(method, s.parameters, `slices[${i}]`);
      if (p) slice.parameters = p;
      return slice;
    });
  }
  const p = cleanSettings(method, recipe.parameters, 'parameters');
  if (p) out.parameters = p;
  if (recipe.dtype) out.dtype = recipe.dtype;
  if (recipe.out_dtype) out.out_dtype = recipe.out_dtype;
  if (recipe.tokenizer_source) out.tokenizer_source = recipe.tokenizer_source;
  if (recipe.tokenizer) out.tokenizer = recipe.tokenizer;
  if (recipe.chat_template) out.chat_template = recipe.chat_template;
  return out;
}

/** mergekit YAML text of a recipe. The seed has no mergekit field; it is kept as a comment. */
export function recipeToMergekitYaml(recipe: Recipe): string {
  const body = stringifyYaml(recipeToMergekit(recipe));
  const method = getMethod(recipe.method);
  const note = method.random ? `# evomerge seed: ${recipe.seed} (mergekit draws its own random masks)\n` : '';
  return `${note}${body}`;
}
