/**
 * Planning: a recipe plus the sources' tensor catalogues become a list of tensor tasks (output
 * name, shape, dtype, which source tensors, resolved parameters), before a byte of weights is read.
 * Every input error (missing tensors, shapes, layer ranges, parameters out of range) is raised
 * here, so a merge fails before any output exists.
 *
 * Follows mergekit/plan.py (`MergePlanner.plan_module`, mergekit 0.1.2 and later): a `models`
 * recipe is one slice over all layers with the base appended when it is not listed; layer tensors
 * get t = i / (len - 1) within their slice (t = 1 for a one-layer slice); tensors before the
 * layers (embeddings) are merged over the first slice's sources and tensors after them (final
 * norm, head) over the last slice's, both read at t = 0 (the module's config reader; mergekit
 * up to 0.1.1 read the tensors after the layers at t = 1). As there, the tensors after the
 * layers take the last slice's sources only up to the first slice's source count (plan_module
 * pairs the one list with the other). Embedding-like tensors (rows are tokens) are laid out in
 * the output vocabulary first (vocab.ts).
 */
import { MissingTensorError, ShapeMismatchError } from '../errors.ts';
import type { DType } from '../tensor/dtype.ts';
import { isFloatDType } from '../tensor/dtype.ts';
import { getMethod } from '../methods/index.ts';
import type { MergeMethod, ResolvedParams } from '../methods/index.ts';
import { DTYPE_TO_SAFETENSORS, RecipeError, resolveTensorParams } from '../recipe/index.ts';
import type { ParamSettings, Recipe } from '../recipe/index.ts';
import { buildVocab, chatTemplateFiles, commonRowsLayout, embeddingLayout, isEmbeddingTensor, isIdentityLayout, tokenizerDirOf, tokenizerSetting, type OutputVocab, type RowLayout, type VocabPlan, type VocabSourceInfo } from './vocab.ts';

/** What planning needs to know of one source: its tensors and layers (a Checkpoint satisfies it). */
export interface SourceCatalog {
  readonly path: string;
  readonly format: string;
  readonly config: Record<string, unknown> | null;
  readonly layers: { count: number; prefix: string | null };
  names(): string[];
  has(name: string): boolean;
  info(name: string): { dtype: DType; shape: number[] };
  /** Tokenizer files beside the weights (a Checkpoint's); read when the recipe sets a tokenizer. */
  tokenizerFiles?(): string[];
}

/** What planning needs of a LoRA adapter source. */
export interface AdapterCatalog {
  readonly path: string;
  targets(): string[];
  fullTensors(): string[];
}

export interface TensorRef {
  /** The model reference as written in the recipe. */
  model: string;
  tensor: string;
}

export interface TensorTask {
  /** The output tensor name. */
  name: string;
  shape: number[];
  dtype: DType;
  /** `copy`: a non-float tensor taken unchanged from `models[0]`. */
  kind: 'merge' | 'copy';
  base: TensorRef | null;
  models: TensorRef[];
  /** Stable model index (position among the recipe's models) for random streams. */
  modelIndex: number[];
  /** For LoRA methods: the adapter of each model, or null when it leaves this tensor alone. */
  lora?: Array<string | null>;
  global: ResolvedParams;
  perModel: ResolvedParams[];
  /**
   * Embedding-like tensors whose inputs are laid out in the output vocabulary first: one row
   * layout per input, in the order base (when there is one), then models (vocab.ts).
   */
  rows?: RowLayout;
}

export interface MergePlan {
  recipe: Recipe;
  method: MergeMethod;
  tasks: TensorTask[];
  /** The model whose config.json (and tokenizer, unless tokenizer_source) the output takes. */
  configFrom: string;
  tokenizerFrom: string;
  /** Output layer count. */
  layers: number;
  /** Models referenced, in first-use order. */
  models: string[];
  /**
   * The output vocabulary when it is not simply the config's: its row count (config.json's
   * vocab_size) and the tokenizer files to write. Absent: the config and tokenizer are copied.
   */
  vocab?: OutputVocab;
  /** What planning accepted but the user should know (one line each). */
  warnings?: string[];
}

interface SliceSpec {
  sources: Array<{ model: string; range: [number, number]; parameters?: ParamSettings }>;
  base: string | null;
  parameters?: ParamSettings;
}

const LAYER_RE = /^(.*?(?:^|\.)(?:layers|h|blocks|block|layer)\.)(\d+)\.(.*)$/;

function splitLayer(name: string): { prefix: string; index: number; suffix: string } | null {
  const m = LAYER_RE.exec(name);
  return m ? { prefix: m[1]!, index: Number(m[2]), suffix: m[3]! } : null;
}

function shapeStr(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

/**
 * Plan a merge. `open` returns the catalogue of a model reference (checkpoint), `openAdapter`
 * that of a LoRA adapter (for LoRA methods).
 */
export function planMerge(recipe: Recipe, open: (model: string) => SourceCatalog, openAdapter?: (model: string) => AdapterCatalog, outDtypeOverride?: DType): MergePlan {
  const method = getMethod(recipe.method);
  const usesBase = method.requiresBase !== 'none';
  if (method.requiresBase === 'required' && !recipe.base && !(recipe.slices?.every((s) => s.base_model))) {
    throw new RecipeError('E_RECIPE_NO_BASE', `method ${method.id} needs a base model; set base (base_model in mergekit YAML)`);
  }
  const forcedDtype: DType | undefined = outDtypeOverride ?? (recipe.out_dtype ? DTYPE_TO_SAFETENSORS[recipe.out_dtype] : recipe.dtype ? DTYPE_TO_SAFETENSORS[recipe.dtype] : undefined);
  const modelOrder: string[] = [];
  const note = (m: string) => {
    if (!modelOrder.includes(m)) modelOrder.push(m);
  };
  if (recipe.base) note(recipe.base);

  if (method.lora) return planLora(recipe, method, open, openAdapter, forcedDtype);

  // normalise to slices, as mergekit's normalize_config does
  let slices: SliceSpec[];
  if (recipe.sources) {
    const srcs = recipe.sources.map((s) => {
      const c = open(s.model);
      return { model: s.model, range: [0, c.layers.count] as [number, number], parameters: s.parameters };
    });
    if (recipe.base && !srcs.some((s) => s.model === recipe.base)) {
      srcs.push({ model: recipe.base, range: [0, open(recipe.base).layers.count], parameters: undefined });
    }
    slices = [{ sources: srcs, base: recipe.base ?? null }];
  } else {
    slices = recipe.slices!.map((s) => ({
      sources: s.sources.map((src) => ({ model: src.model, range: src.layer_range, parameters: src.parameters })),
      base: s.base_model ?? recipe.base ?? null,
      parameters: s.parameters,
    }));
  }
  for (const s of slices) for (const src of s.sources) note(src.model);
  const modelIndexOf = (m: string) => modelOrder.indexOf(m);

  // the reference checkpoint: names, config and non-layer tensors come from it
  const refModel = slices[0]!.base ?? slices[0]!.sources[0]!.model;
  const ref = open(refModel);
  const prefix = ref.layers.prefix;
  const tasks: TensorTask[] = [];
  const warnings: string[] = [];

  // the output vocabulary (mergekit/plan.py builds its tokenizer task before planning tensors)
  const setting = tokenizerSetting(recipe);
  const info = (m: string): VocabSourceInfo => {
    let c: SourceCatalog | null = null;
    try {
      c = open(m);
    } catch {
      c = null; // a tokenizer source that is no checkpoint: its folder is read for tokenizer.json only
    }
    const vs = c?.config?.vocab_size;
    return { tokenizerDir: tokenizerDirOf(m, c?.tokenizerFiles?.()), vocabSize: typeof vs === 'number' ? vs : null };
  };
  const vocabBase = recipe.base ?? modelOrder[0]!;
  const vocabPlan: VocabPlan | null = setting ? buildVocab(recipe, modelOrder, vocabBase, info) : null;
  if (vocabPlan) warnings.push(...vocabPlan.warnings);
  let cutRows: number | null = null;

  const addTask = (name: string, slice: SliceSpec, inputs: Array<{ model: string; tensor: string; parameters?: ParamSettings }>, t: number, ends = false) => {
    const sliceBase = usesBase ? slice.base : null;
    if (method.requiresBase === 'required' && !sliceBase) throw new RecipeError('E_RECIPE_NO_BASE', `method ${method.id} needs a base model for ${name}`);
    let base: TensorRef | null = null;
    const models: Array<{ model: string; tensor: string; parameters?: ParamSettings }> = [];
    for (const inp of inputs) {
      if (sliceBase && inp.model === sliceBase && !base) base = { model: inp.model, tensor: inp.tensor };
      else models.push(inp);
    }
    if (sliceBase && !base) {
      throw new RecipeError('E_RECIPE_BASE_NOT_IN_SLICE', `tensor ${name}: the base ${sliceBase} must be one of the slice's sources (give it a layer_range)`);
    }
    // shapes and presence
    let shape: number[] | null = null;
    let dtype: DType | null = null;
    let first = '';
    const all = [...(base ? [base] : []), ...models];
    const embed = ends && isEmbeddingTensor(name, open(all[0]!.model).has(all[0]!.tensor) ? open(all[0]!.model).info(all[0]!.tensor).shape : []);
    const inputRows: number[] = [];
    for (const r of all) {
      const c = open(r.model);
      if (!c.has(r.tensor)) throw new MissingTensorError(`tensor ${r.tensor} is missing from ${r.model} (needed for output ${name}); models must share an architecture (see evomerge inspect)`);
      const info = c.info(r.tensor);
      inputRows.push(info.shape[0]!);
      if (!shape) {
        shape = info.shape;
        dtype = info.dtype;
        first = r.model;
      } else if (embed && info.shape.length === 2 && info.shape[1] === shape[1]) {
        continue; // rows are tokens: laid out below
      } else if (shapeStr(shape) !== shapeStr(info.shape)) {
        throw new ShapeMismatchError(`tensor ${r.tensor} is ${shapeStr(info.shape)} in ${r.model} but ${shapeStr(shape)} in ${first}; models must share an architecture (see evomerge inspect)`);
      }
    }
    let rows: RowLayout | undefined;
    if (embed && vocabPlan) rows = embeddingLayout(vocabPlan, all.map((r) => r.model), inputRows, name);
    else if (embed && inputRows.some((n) => n !== inputRows[0])) {
      rows = commonRowsLayout(inputRows);
      cutRows = rows.rows;
      warnings.push(`${name} has ${inputRows.join(', ')} rows in ${all.map((r) => r.model).join(', ')}: the ${rows.rows} rows they share are merged, as mergekit does without a tokenizer setting (set tokenizer_source to lay the rows out by token)`);
    }
    if (rows && isIdentityLayout(rows, inputRows)) rows = undefined;
    if (rows) shape = [rows.rows, shape![1]!];
    const n = models.length;
    if (!isFloatDType(dtype!)) {
      tasks.push({ name, shape: shape!, dtype: dtype!, kind: 'copy', base: null, models: [base ?? models[0]!].map((r) => ({ model: r.model, tensor: r.tensor })), modelIndex: [0], global: {}, perModel: [] });
      return;
    }
    if (n < method.minModels || n > method.maxModels) {
      const want = method.minModels === method.maxModels ? `${method.minModels}` : `${method.minModels} to ${Number.isFinite(method.maxModels) ? method.maxModels : 'any'}`;
      throw new RecipeError('E_RECIPE_MODEL_COUNT', `tensor ${name}: ${method.id} merges ${want} model(s)${usesBase ? ' besides the base' : ''}, got ${n}`);
    }
    const { global, perModel } = resolveTensorParams(method, { top: recipe.parameters, slice: slice.parameters, models: models.map((m) => m.parameters) }, name, t, models.map((m) => m.model));
    tasks.push({
      name,
      shape: shape!,
      dtype: forcedDtype ?? dtype!,
      kind: 'merge',
      base,
      models: models.map((m) => ({ model: m.model, tensor: m.tensor })),
      modelIndex: models.map((m) => modelIndexOf(m.model)),
      global,
      perModel,
      ...(rows ? { rows } : {}),
    });
  };

  const names = ref.names();
  const nonLayer = names.filter((nm) => !prefix || !nm.startsWith(prefix) || !splitLayer(nm));
  const pre = nonLayer.filter((nm) => /embed|wte|wpe/.test(nm));
  const post = nonLayer.filter((nm) => !pre.includes(nm));
  const sameName = (slice: SliceSpec, nm: string) => slice.sources.map((s) => ({ model: s.model, tensor: nm, parameters: s.parameters }));

  // check every slice before planning a tensor, so the first error is the slice's
  for (const [si, slice] of slices.entries()) {
    const lengths = slice.sources.map((s) => s.range[1] - s.range[0]);
    if (!lengths.every((l) => l === lengths[0])) {
      throw new RecipeError('E_SLICE_LENGTH', `slice ${si}: every source must take the same number of layers, got ${lengths.join(', ')}`);
    }
    const len = lengths[0]!;
    for (const s of slice.sources) {
      const c = open(s.model);
      if (s.range[1] > c.layers.count) throw new RecipeError('E_LAYER_RANGE', `slice ${si}: layer_range [${s.range.join(', ')}] of ${s.model} goes past its ${c.layers.count} layers`);
      if (!c.layers.prefix && len > 0) throw new RecipeError('E_NO_LAYERS', `${s.model}: no numbered layers found (names like model.layers.N.*); slices need them`);
    }
    if (recipe.sources) {
      const counts = slice.sources.map((s) => open(s.model).layers.count);
      if (!counts.every((c) => c === counts[0])) {
        throw new RecipeError('E_LAYER_COUNT', `models have different layer counts (${slice.sources.map((s, i) => `${s.model}: ${counts[i]}`).join(', ')}); use slices with layer_range to merge them`);
      }
    }
  }
  for (const nm of pre) addTask(nm, slices[0]!, sameName(slices[0]!, nm), 0, true);
  let outLayer = 0;
  for (const [si, slice] of slices.entries()) {
    const len = slice.sources[0]!.range[1] - slice.sources[0]!.range[0];
    for (let i = 0; i < len; i++) {
      const t = len > 1 ? i / (len - 1) : 1;
      const first = slice.sources[0]!;
      const fc = open(first.model);
      const layerNames = fc.names().filter((nm) => {
        const sp = splitLayer(nm);
        return sp && sp.prefix === fc.layers.prefix && sp.index === first.range[0] + i;
      });
      for (const nm of layerNames) {
        const suffix = splitLayer(nm)!.suffix;
        const outName = `${prefix ?? fc.layers.prefix}${outLayer}.${suffix}`;
        const inputs = slice.sources.map((s) => ({ model: s.model, tensor: `${open(s.model).layers.prefix}${s.range[0] + i}.${suffix}`, parameters: s.parameters }));
        addTask(outName, slice, inputs, t);
      }
      outLayer++;
    }
  }
  const last = slices[slices.length - 1]!;
  const firstCount = slices[0]!.sources.length;
  for (const nm of post) addTask(nm, last, sameName(last, nm).slice(0, firstCount), 0, true);

  // the tokenizer: the built one's source; else the donor mergekit copies (base, or the first model)
  const tokenizerFrom = vocabPlan ? (setting!.source === 'base' || setting!.source === 'union' ? vocabPlan.base : setting!.source) : recipe.base ?? modelOrder[0] ?? refModel;
  let vocab: OutputVocab | undefined = vocabPlan?.output;
  if (!vocab && (cutRows !== null || recipe.chat_template)) {
    const donor = info(tokenizerFrom).tokenizerDir;
    const files = chatTemplateFiles(recipe, donor, modelOrder, info);
    vocab = { rows: cutRows, sourceDir: donor, files, skip: files ? ['chat_template.jinja', 'chat_template.json'] : [] };
  }
  return { recipe, method, tasks, configFrom: refModel, tokenizerFrom, layers: outLayer, models: modelOrder, ...(vocab ? { vocab } : {}), ...(warnings.length ? { warnings } : {}) };
}

function planLora(recipe: Recipe, method: MergeMethod, open: (model: string) => SourceCatalog, openAdapter: ((model: string) => AdapterCatalog) | undefined, forcedDtype: DType | undefined): MergePlan {
  if (!recipe.sources) throw new RecipeError('E_RECIPE_LORA_SLICES', `${method.id} composes LoRA adapters of the base; give them as sources, not slices`);
  if (!openAdapter) throw new RecipeError('E_RECIPE_LORA', `${method.id} needs LoRA adapter sources`);
  const base = open(recipe.base!);
  const adapters = recipe.sources.map((s) => {
    const a = openAdapter(s.model);
    if (a.fullTensors().length) {
      throw new RecipeError('E_MERGEKIT_NOT_SUPPORTED', `${s.model}: adapters with modules_to_save (full tensors ${a.fullTensors().slice(0, 3).join(', ')}) are not supported yet in LoRA composition`);
    }
    const targets = new Set(a.targets());
    for (const t of targets) if (!base.has(t)) throw new MissingTensorError(`adapter ${s.model} targets ${t}, which the base ${recipe.base} does not have; was it trained on another base?`);
    return { model: s.model, targets, parameters: s.parameters };
  });
  const tasks: TensorTask[] = [];
  for (const nm of base.names()) {
    const info = base.info(nm);
    const baseRef = { model: recipe.base!, tensor: nm };
    if (!isFloatDType(info.dtype)) {
      tasks.push({ name: nm, shape: info.shape, dtype: info.dtype, kind: 'copy', base: null, models: [baseRef], modelIndex: [0], global: {}, perModel: [] });
      continue;
    }
    const sp = splitLayer(nm);
    // tensors outside the layers at t = 0, as the main planner (mergekit's plan_module)
    const t = sp && base.layers.count > 1 ? sp.index / (base.layers.count - 1) : sp ? 1 : 0;
    const { global, perModel } = resolveTensorParams(method, { top: recipe.parameters, models: adapters.map((a) => a.parameters) }, nm, t, adapters.map((a) => a.model));
    tasks.push({
      name: nm,
      shape: info.shape,
      dtype: forcedDtype ?? info.dtype,
      kind: 'merge',
      base: baseRef,
      models: [],
      modelIndex: adapters.map((_, i) => i),
      lora: adapters.map((a) => (a.targets.has(nm) ? a.model : null)),
      global,
      perModel,
    });
  }
  return { recipe, method, tasks, configFrom: recipe.base!, tokenizerFrom: recipe.tokenizer_source ?? recipe.base!, layers: base.layers.count, models: [recipe.base!, ...adapters.map((a) => a.model)] };
}

/** One source of a layer path (a data-flow candidate). */
export interface PathSource {
  /** The model reference the tasks read from (a path, or an in-memory model's key). */
  key: string;
  catalog: SourceCatalog;
  /** The residual MLP's input projection plays the part of the embeddings (src/models/mlp.ts). */
  inputIsEmbedding?: boolean;
}

/** Whether a non-layer tensor belongs to the input end (embeddings) rather than the output end (final norm, head). */
export function isInputEnd(name: string, inputIsEmbedding = false): boolean {
  return /embed|wte|wpe/.test(name) || (inputIsEmbedding && name.startsWith('input.'));
}

/**
 * A data-flow candidate (Akiba et al. 2024, section 3.2) whose scales are all 1, as a plan that
 * stacks its layers: step k's layer tensors under layer index k (passthrough, renumbered), the
 * input-end tensors from `embeddings`, every other non-layer tensor from `head`. Unlike layer
 * stacking through slices (mergekit's planner, `dfsAsPassthrough`), the ends come from the sources
 * the candidate names, so every such path can be written. `steps` index `sources`.
 */
export function planLayerPath(sources: readonly PathSource[], steps: ReadonlyArray<{ source: number; layer: number; scale: number }>, embeddings: number, head: number): MergePlan {
  const method = getMethod('passthrough');
  const src = (i: number, what: string) => {
    const s = sources[i];
    if (!s) throw new RecipeError('E_PATH_SOURCE', `layer path: ${what} names source ${i} but only ${sources.length} sources were given`);
    return s;
  };
  const emb = src(embeddings, 'embeddings');
  const out = src(head, 'head');
  const prefix = emb.catalog.layers.prefix;
  if (!prefix) throw new RecipeError('E_NO_LAYERS', `${emb.key}: no numbered layers found (names like model.layers.N.*); a layer path needs them`);
  const tasks: TensorTask[] = [];
  const add = (name: string, from: PathSource, tensor: string) => {
    const info = from.catalog.info(tensor);
    const ref = { model: from.key, tensor };
    tasks.push(isFloatDType(info.dtype)
      ? { name, shape: info.shape, dtype: info.dtype, kind: 'merge', base: null, models: [ref], modelIndex: [0], global: {}, perModel: [{ scale: null }] }
      : { name, shape: info.shape, dtype: info.dtype, kind: 'copy', base: null, models: [ref], modelIndex: [0], global: {}, perModel: [] });
  };
  const nonLayer = (s: PathSource) => s.catalog.names().filter((n) => !splitLayer(n) || !n.startsWith(s.catalog.layers.prefix ?? '\u0000'));
  for (const n of nonLayer(emb)) if (isInputEnd(n, emb.inputIsEmbedding)) add(n, emb, n);
  // layers grouped by index once per source, not rescanned per step
  const byLayer = new Map<number, Map<number, string[]>>();
  for (const [k, step] of steps.entries()) {
    if (step.scale !== 1) throw new RecipeError('E_PATH_SCALE', `layer path step ${k} has scale ${step.scale}; only paths whose scales are all 1 can be written as a checkpoint (see src/report/dfs.ts)`);
    const s = src(step.source, `step ${k}`);
    let layers = byLayer.get(step.source);
    if (!layers) {
      layers = new Map();
      for (const n of s.catalog.names()) {
        const sp = splitLayer(n);
        if (!sp || sp.prefix !== s.catalog.layers.prefix) continue;
        if (!layers.has(sp.index)) layers.set(sp.index, []);
        layers.get(sp.index)!.push(n);
      }
      byLayer.set(step.source, layers);
    }
    const names = layers.get(step.layer);
    if (!names) throw new RecipeError('E_LAYER_RANGE', `layer path step ${k}: ${s.key} has no layer ${step.layer}`);
    for (const n of names) add(`${prefix}${k}.${splitLayer(n)!.suffix}`, s, n);
  }
  for (const n of nonLayer(out)) if (!isInputEnd(n, out.inputIsEmbedding)) add(n, out, n);
  // the plan comes from the path, not from a recipe: this stands in where a plan names its recipe
  const recipe = { version: 1, method: 'passthrough', seed: 0 } as unknown as Recipe;
  return { recipe, method, tasks, configFrom: emb.key, tokenizerFrom: emb.key, layers: steps.length, models: [...new Set(tasks.map((t) => t.models[0]!.model))] };
}

/**
 * A source config.json as the plan's output: vocab_size set to the output vocabulary's rows
 * when the plan changes them (mergekit/merge.py `_update_config_vocab`).
 */
export function withPlannedVocab<T extends Record<string, unknown> | null | undefined>(config: T, plan: MergePlan): T {
  if (!config || plan.vocab?.rows == null || config.vocab_size === plan.vocab.rows) return config;
  return { ...config, vocab_size: plan.vocab.rows };
}
