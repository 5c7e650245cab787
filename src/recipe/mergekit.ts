/**
 * mergekit YAML in and out (the schema of mergekit/config.py `MergeConfiguration`).
 *
 * Import takes a mergekit config as is: `merge_method`, `base_model`, `models` or `slices`,
 * `parameters`, `dtype`, `out_dtype`, `tokenizer_source`. Unknown keys are refused, naming them;
 * valid mergekit features evomerge lacks (`modules`, `tokenizer`, `chat_template`,
 * `tokenizer_source: union`, `model+lora` references, `residual_weight`) are refused as "not supported
 * yet". Export writes a config mergekit accepts, refusing methods or options mergekit lacks.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { z } from 'zod';
import { getMethod } from '../methods/index.ts';
import { MergekitNotSupportedError, RecipeError } from './errors.ts';
import { checkSettingNames } from './params.ts';
import { RecipeSchema, type Recipe, type ParamSettings } from './schema.ts';

const MERGEKIT_KEYS = ['merge_method', 'base_model', 'models', 'slices', 'modules', 'parameters', 'dtype', 'out_dtype', 'tokenizer_source', 'tokenizer', 'chat_template'] as const;
const UNSUPPORTED_KEYS: Record<string, string> = {
  modules: 'multi-module configs (`modules`)',
  tokenizer: 'tokenizer merging (`tokenizer`)',
  chat_template: '`chat_template`',
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

/** A mergekit configuration (parsed YAML object) as a recipe. */
export function recipeFromMergekit(config: unknown, where = 'mergekit config'): Recipe {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new RecipeError('E_RECIPE_INVALID', `${where}: a mergekit config is a mapping with merge_method and models or slices`);
  }
  const c = config as Record<string, unknown>;
  const unknown = Object.keys(c).filter((k) => !(MERGEKIT_KEYS as readonly string[]).includes(k));
  if (unknown.length) {
    throw new RecipeError('E_RECIPE_UNKNOWN_KEY', `${where}: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')}; mergekit configs take ${MERGEKIT_KEYS.join(', ')}`);
  }
  for (const [k, what] of Object.entries(UNSUPPORTED_KEYS)) if (c[k] !== undefined && c[k] !== null) throw new MergekitNotSupportedError(`${where}: ${what}`);
  if (c.tokenizer_source === 'union') throw new MergekitNotSupportedError(`${where}: tokenizer_source: union`, 'use base or a model path');
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
  const tokenizerSource = c.tokenizer_source === 'base' ? undefined : c.tokenizer_source;
  const candidate = {
    version: 1,
    method: c.merge_method,
    base: c.base_model ?? undefined,
    sources: models,
    slices,
    parameters: c.parameters ?? undefined,
    dtype: dtypeOf(c.dtype, `${where}: dtype`),
    out_dtype: dtypeOf(c.out_dtype, `${where}: out_dtype`),
    tokenizer_source: tokenizerSource ?? undefined,
  };
  return parseRecipe(candidate, where);
}

/** Validate a recipe object: schema, method, parameter names and scopes. */
export function parseRecipe(value: unknown, where = 'recipe'): Recipe {
  const parsed = RecipeSchema.safeParse(value);
  if (!parsed.success) throw new RecipeError('E_RECIPE_INVALID', `${where}: ${zodMessage(parsed.error)}`);
  const r = parsed.data;
  const method = getMethod(r.method);
  checkSettingNames(method, r.parameters, `${where}: parameters`, 'top');
  r.sources?.forEach((s, i) => checkSettingNames(method, s.parameters, `${where}: sources[${i}] (${s.model}).parameters`, 'model'));
  r.slices?.forEach((s, i) => {
    checkSettingNames(method, s.parameters, `${where}: slices[${i}].parameters`, 'slice');
    s.sources.forEach((src, j) => {
      checkSettingNames(method, src.parameters, `${where}: slices[${i}].sources[${j}] (${src.model}).parameters`, 'model');
      if (src.layer_range[1] <= src.layer_range[0]) throw new RecipeError('E_RECIPE_LAYER_RANGE', `${where}: slices[${i}].sources[${j}].layer_range [${src.layer_range.join(', ')}] is empty; write [start, end) with end > start`);
    });
  });
  return r;
}

/** Read a recipe file: `.json` (an evomerge recipe) or `.yaml`/`.yml` (a mergekit config or a recipe). */
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

export function loadRecipeFile(path: string): Recipe {
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
  const text = bytes.toString('utf8');
  let value: unknown;
  try {
    value = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    // the yaml package adds a code frame on further lines: the first line says what and where
    throw new RecipeError('E_RECIPE_PARSE', `${path}: not valid ${extname(path).toLowerCase() === '.json' ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]!.replace(/:$/, '')}`);
  }
  if (value && typeof value === 'object' && 'merge_method' in value) return recipeFromMergekit(value, path);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new RecipeError('E_RECIPE_NOT_CONFIG', `${path} holds ${value === null ? 'nothing' : Array.isArray(value) ? 'a list' : `a ${typeof value}`}, not a merge config; ${EXPECTED}`);
  return parseRecipe(value, path);
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
  return out;
}

/** mergekit YAML text of a recipe. The seed has no mergekit field; it is kept as a comment. */
export function recipeToMergekitYaml(recipe: Recipe): string {
  const body = stringifyYaml(recipeToMergekit(recipe));
  const method = getMethod(recipe.method);
  const note = method.random ? `# evomerge seed: ${recipe.seed} (mergekit draws its own random masks)\n` : '';
  return `${note}${body}`;
}
