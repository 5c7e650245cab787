/**
 * Output vocabularies and the rows of embedding-like tensors, as mergekit builds them
 * (mergekit/tokenizer/build.py, mergekit/tokenizer/embed.py, mergekit/merge.py
 * `_update_config_vocab`, mergekit/merge_methods/rectify_embed.py), read from and written to
 * Hugging Face `tokenizer.json` files as plain JSON, before a byte of weights is read.
 *
 * With a tokenizer setting (`tokenizer_source: base | union | <model>` or a `tokenizer:` block):
 * - the base's tokenizer is "stripped": tokens whose id is not below its config's vocab_size (a
 *   padded vocabulary's unused tokens) are removed (BPE only);
 * - the output tokenizer is the stripped base (`base`), a model's own (`<model>`), or the union:
 *   the base, then every other token a model's embeddings hold, then every model's added tokens,
 *   each new token given the next id as the tokenizers library does (`add_tokens`: a content the
 *   vocabulary holds keeps its id and becomes an added token; a content already added is left
 *   alone); the `tokens` of a `tokenizer:` block are added last;
 * - each model's embedding rows are laid out in that vocabulary: its own row where it has the
 *   token (and the token is not `force`d), else the token's default row: the configured source,
 *   else the only model that has it, else the base's, else the mean over the models that have it
 *   (zeros where none has it); rows padded up to `pad_to_multiple_of` take the mean of the token
 *   rows of that model;
 * - the merge method then merges these rows like any tensor; config.json's vocab_size becomes the
 *   row count.
 * Without one, embeddings of different row counts are cut to the rows they share (mergekit's
 * common submatrix) and the base's tokenizer files are copied.
 *
 * Where mergekit iterates a Python set or dict of models (the order of added tokens from
 * different models, the order of a mean), evomerge takes the recipe's order: base first, then
 * the models as listed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { InputError } from '../errors.ts';
import type { Recipe, TokenSource } from '../recipe/index.ts';

/** An entry of tokenizer.json's `added_tokens`. */
export interface AddedToken {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** Names of embedding-like tensors: rows are tokens (input embeddings and output heads). */
const EMBED_NAME = /(^|\.)(embed_tokens|wte|word_embeddings|embed_in|lm_head|embed_out)\.weight$/;

/** Whether a non-layer tensor's rows are tokens (mergekit's `is_embed` weights). */
export function isEmbeddingTensor(name: string, shape: readonly number[]): boolean {
  return shape.length === 2 && EMBED_NAME.test(name);
}

/** A tokenizer.json held as JSON, with the vocabulary operations mergekit's tokenizer code uses. */
export class TokenizerJson {
  readonly json: Record<string, unknown>;
  /** The model's own vocabulary (token -> id). */
  readonly modelVocab: Map<string, number>;
  /** Added tokens by id. */
  readonly added = new Map<number, AddedToken>();

  constructor(json: Record<string, unknown>, readonly file: string) {
    this.json = structuredClone(json);
    const model = this.json.model as { type?: string; vocab?: unknown } | undefined;
    this.modelVocab = new Map();
    if (model && Array.isArray(model.vocab)) (model.vocab as Array<[string, number]>).forEach((e, i) => this.modelVocab.set(e[0], i));
    else if (model && model.vocab && typeof model.vocab === 'object') for (const [t, id] of Object.entries(model.vocab as Record<string, number>)) this.modelVocab.set(t, id);
    else throw new InputError('E_TOKENIZER_VOCAB', `${file}: no model.vocab; building an output vocabulary reads it (BPE, WordLevel, WordPiece or Unigram tokenizers)`);
    for (const t of (this.json.added_tokens as AddedToken[] | undefined) ?? []) this.added.set(t.id, { ...t });
  }

  static read(file: string): TokenizerJson {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new InputError('E_TOKENIZER_PARSE', `${file}: not a readable tokenizer.json (${(err as Error).message})`);
    }
    if (!json || typeof json !== 'object') throw new InputError('E_TOKENIZER_PARSE', `${file}: a tokenizer.json is a JSON object`);
    return new TokenizerJson(json as Record<string, unknown>, file);
  }

  clone(): TokenizerJson {
    const t = new TokenizerJson(this.toJson(), this.file);
    return t;
  }

  /** Token -> id over the model vocabulary and the added tokens (the tokenizers library's get_vocab). */
  vocab(): Map<string, number> {
    const v = new Map(this.modelVocab);
    for (const t of this.added.values()) v.set(t.content, t.id);
    return v;
  }

  /** The model vocabulary's size (transformers' `vocab_size`). */
  get modelSize(): number {
    return this.modelVocab.size;
  }

  private addedId(content: string): number | undefined {
    for (const t of this.added.values()) if (t.content === content) return t.id;
    return undefined;
  }

  /**
   * The tokenizers library's AddedVocabulary.add_tokens for one token: an empty content or one
   * already added is skipped; a content of the model vocabulary keeps its id; a new one gets the
   * model vocabulary's size, or one past the largest added id when that is not below it.
   */
  addToken(token: Omit<AddedToken, 'id'>): void {
    if (token.content === '' || this.addedId(token.content) !== undefined) return;
    let id = this.modelVocab.get(token.content);
    if (id === undefined) {
      const ids = [...this.added.keys()];
      const max = ids.length ? Math.max(...ids) : -1;
      id = max >= this.modelSize || (ids.length && this.modelSize === 0) ? max + 1 : this.modelSize;
    }
    this.added.set(id, { id, ...token });
  }

  /** A plain string added as transformers' `add_tokens(str)` does: not special, normalized. */
  addPlain(content: string): void {
    this.addToken({ content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: false });
  }

  /**
   * mergekit/tokenizer/build.py `get_stripped_tokenizer`: drop every token whose id is not below
   * `vocabSize` (from the vocabulary, the added tokens and the BPE merges). Returns whether any was.
   */
  strip(vocabSize: number): boolean {
    const unused = [...this.vocab()].filter(([, id]) => id >= vocabSize).map(([t]) => t);
    if (unused.length === 0) return false;
    const model = this.json.model as { type?: string; merges?: unknown[] };
    if (model.type !== 'BPE') {
      throw new InputError('E_TOKENIZER_STRIP', `${this.file}: ${unused.length} tokens have ids at or past config.json's vocab_size ${vocabSize}, and stripping them is done for BPE tokenizers only (this one is ${model.type}), as in mergekit; give another model as the tokenizer source`);
    }
    const gone = new Set(unused);
    for (const [id] of [...this.added]) if (id >= vocabSize) this.added.delete(id);
    for (const t of gone) this.modelVocab.delete(t);
    if (Array.isArray(model.merges)) {
      model.merges = model.merges.filter((m) => (Array.isArray(m) ? m : String(m).split(' ')).every((p) => !gone.has(String(p))));
    }
    return true;
  }

  /** The tokenizer.json object: added tokens sorted by id (as the library writes them). */
  toJson(): Record<string, unknown> {
    const out = structuredClone(this.json);
    const model = out.model as { vocab: unknown };
    if (Array.isArray(model.vocab)) {
      const old = model.vocab as Array<[string, number]>;
      model.vocab = old.filter((e) => this.modelVocab.has(e[0]));
    } else model.vocab = Object.fromEntries([...this.modelVocab].sort((a, b) => a[1] - b[1]));
    out.added_tokens = [...this.added.values()].sort((a, b) => a.id - b.id);
    return out;
  }
}

/** What planning needs to know of a model for its vocabulary. */
export interface VocabSourceInfo {
  /** The folder holding tokenizer.json (and tokenizer_config.json), or null. */
  tokenizerDir: string | null;
  /** config.json's vocab_size, when it has one. */
  vocabSize: number | null;
}

/** Where a token's row comes from when a model's own row is not taken. */
type DefaultSource = { kind: 'zero' } | { kind: 'model'; model: string } | { kind: 'mean' };

/**
 * The layout of one embedding-like tensor's rows for each input of its task: `own[i][r]` is the
 * row of input i that output row r takes (-1: the token's default row), `defaults.get(r)` the
 * rows averaged for it (an empty list: zeros), rows from `vocab` up to `rows` are padding (the
 * mean of the input's token rows).
 */
export interface RowLayout {
  rows: number;
  vocab: number;
  own: Int32Array[];
  defaults: Map<number, Array<{ input: number; row: number }>>;
}

/** The output vocabulary of a plan. */
export interface OutputVocab {
  /** Rows of the embedding-like tensors (config.json's vocab_size); null: the config's stands. */
  rows: number | null;
  /** The folder whose tokenizer files are copied (but `skip`, and those `files` replace). */
  sourceDir: string | null;
  /**
   * Tokenizer files to write (name -> text), or null to copy the tokenizer source's files as
   * they are.
   */
  files: Record<string, string> | null;
  /** Tokenizer files of the source not to copy beside `files` (they would describe another vocabulary). */
  skip: string[];
}

export interface VocabPlan {
  output: OutputVocab;
  /** Token -> output id. */
  vocab: Map<string, number>;
  /** Per model: output id -> its own id (-1 when it lacks the token). */
  permutations: Map<string, Int32Array>;
  /** Tokens configured in the `tokenizer:` block. */
  tokens: Map<string, { source: TokenSource; force: boolean }>;
  /** Original vocabularies (token -> id) of the models whose tokenizer was read. */
  original: Map<string, Map<string, number>>;
  base: string;
  /** The folder whose tokenizer the output's is (copied as is when `output.files` is null). */
  sourceDir: string;
  warnings: string[];
}

function readOptionalJson(file: string): Record<string, unknown> | null {
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new InputError('E_TOKENIZER_PARSE', `${file}: not valid JSON (${(err as Error).message})`);
  }
}

/** The tokenizer source and tokens of a recipe (null: no tokenizer setting, mergekit's legacy copy). */
export function tokenizerSetting(recipe: Recipe): { source: string; tokens: Map<string, { source: TokenSource; force: boolean }>; padTo: number | null } | null {
  if (recipe.tokenizer) {
    return { source: recipe.tokenizer.source, tokens: new Map(Object.entries(recipe.tokenizer.tokens ?? {})), padTo: recipe.tokenizer.pad_to_multiple_of ?? null };
  }
  if (recipe.tokenizer_source) return { source: recipe.tokenizer_source, tokens: new Map(), padTo: null };
  return null;
}

/**
 * mergekit/tokenizer/build.py `build_tokenizer`: the output tokenizer and each model's
 * permutation. `models` are the referenced models (recipe order), `base` the base (or the first
 * model), `info` what each model's folder holds.
 */
export function buildVocab(recipe: Recipe, models: readonly string[], base: string, info: (model: string) => VocabSourceInfo): VocabPlan {
  const setting = tokenizerSetting(recipe)!;
  const warnings: string[] = [];
  const load = (model: string, role: string): TokenizerJson | null => {
    const dir = info(model).tokenizerDir;
    const file = dir ? join(dir, 'tokenizer.json') : null;
    if (!file || !existsSync(file)) {
      if (role === 'base' || role === 'source') {
        throw new InputError('E_TOKENIZER_MISSING', `${model}: no tokenizer.json, which the ${role === 'base' ? 'base (the first model when there is no base)' : 'tokenizer source'} must have for ${recipe.tokenizer ? 'the tokenizer block' : `tokenizer_source: ${recipe.tokenizer_source}`}; give the folder its tokenizer.json (evomerge reads tokenizer.json files only)`);
      }
      return null;
    }
    return TokenizerJson.read(file);
  };
  const baseTok = load(base, 'base')!;
  const baseSize = info(base).vocabSize ?? baseTok.vocab().size;
  baseTok.strip(baseSize);
  const toks = new Map<string, TokenizerJson>([[base, baseTok]]);
  for (const m of models) {
    if (m === base || toks.has(m)) continue;
    const t = load(m, 'model');
    if (t) toks.set(m, t);
    else warnings.push(`${m} has no tokenizer.json: its vocabulary is taken to be the base's (${base}), as mergekit does`);
  }
  let out: TokenizerJson;
  let sourceDir: string;
  if (setting.source === 'base') {
    out = baseTok.clone();
    sourceDir = info(base).tokenizerDir!;
  } else if (setting.source === 'union') {
    out = unionTokenizer(baseTok, base, models, toks, info);
    sourceDir = info(base).tokenizerDir!;
  } else {
    const own = toks.get(setting.source) && setting.source !== base ? toks.get(setting.source)!.clone() : load(setting.source, 'source')!;
    out = own;
    sourceDir = (info(setting.source).tokenizerDir ?? setting.source);
  }
  for (const t of setting.tokens.keys()) out.addPlain(t);
  const vocab = out.vocab();
  const size = vocab.size;
  for (const [t, id] of vocab) {
    if (id >= size) throw new InputError('E_TOKENIZER_IDS', `the output vocabulary has ${size} tokens but '${t}' has id ${id}: its ids are not contiguous (${out.file}); mergekit would index past its rows too`);
  }
  const permutations = new Map<string, Int32Array>();
  for (const m of models) {
    const mv = (toks.get(m) ?? baseTok).vocab();
    const limit = info(m).vocabSize ?? mv.size;
    const p = new Int32Array(size).fill(-1);
    for (const [t, id] of vocab) {
      const orig = mv.get(t);
      // an id past the model's rows (padding) is no row of it
      if (orig !== undefined && orig < limit) p[id] = orig;
    }
    permutations.set(m, p);
  }
  const rows = setting.padTo && size % setting.padTo ? (Math.floor(size / setting.padTo) + 1) * setting.padTo : size;
  // a vocabulary equal to its source's, and no template to set: the source's files are copied
  const sourceTok = TokenizerJson.read(join(sourceDir, 'tokenizer.json'));
  const unchanged = !recipe.chat_template && JSON.stringify(sourceTok.toJson()) === JSON.stringify(out.toJson());
  const output = unchanged ? { files: null, skip: [] } : tokenizerFiles(out, sourceDir, recipe, models, info);
  return {
    output: { rows, sourceDir, ...output },
    sourceDir,
    vocab,
    permutations,
    tokens: setting.tokens,
    original: new Map([...toks].map(([m, t]) => [m, t.vocab()])),
    base,
    warnings,
  };
}

/**
 * mergekit/tokenizer/build.py `build_union_tokenizer`: the base, then each model's tokens below
 * its vocab_size that the base lacks (as plain added tokens), then each model's added tokens
 * below its vocab_size (with their settings; the first model's when several add one).
 */
function unionTokenizer(baseTok: TokenizerJson, base: string, models: readonly string[], toks: Map<string, TokenizerJson>, info: (m: string) => VocabSourceInfo): TokenizerJson {
  const order = [base, ...models.filter((m) => m !== base && toks.has(m))];
  const plain: string[] = [];
  const seenPlain = new Set<string>();
  const addedOut = new Map<string, AddedToken>();
  for (const m of order) {
    const t = toks.get(m)!;
    const limit = info(m).vocabSize ?? t.modelSize;
    const byId = [...t.vocab()].sort((a, b) => a[1] - b[1]);
    for (const [tok, id] of byId) {
      if (id >= limit || seenPlain.has(tok)) continue;
      seenPlain.add(tok);
      plain.push(tok);
    }
    for (const a of [...t.added.values()].sort((x, y) => x.id - y.id)) {
      if (a.id >= limit || addedOut.has(a.content)) continue;
      addedOut.set(a.content, a);
    }
  }
  const out = baseTok.clone();
  const baseVocab = baseTok.vocab();
  for (const tok of plain) if (!addedOut.has(tok) && !baseVocab.has(tok)) out.addPlain(tok);
  for (const a of addedOut.values()) {
    const { id: _id, ...rest } = a;
    out.addToken(rest);
  }
  return out;
}

const BUILTIN_TEMPLATES: Record<string, string> = {
  // ChatML: <|im_start|>role\ncontent<|im_end|>\n per message
  chatml: "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
  // Llama 3: a header per role, each turn closed by <|eot_id|>
  llama3: "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
  // Alpaca: ### Instruction / ### Response sections
  alpaca: "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}{% elif message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}{% else %}{{ '### Response:\\n' + message['content'] + eos_token + '\\n\\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}",
  // Mistral: [INST] user [/INST] assistant</s>
  mistral: "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% else %}{{ message['content'] + '\\n\\n' }}{% endif %}{% endfor %}",
  // Zephyr: <|role|>\ncontent</s>\n
  zephyr: "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}",
  // EXAONE: [|role|]content[|endofturn|]
  exaone: "{% for message in messages %}{{ '[|' + message['role'] + '|]' + message['content'] }}{% if message['role'] != 'user' %}{{ '[|endofturn|]' }}{% endif %}{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '[|assistant|]' }}{% endif %}",
};

/** A tokenizer folder's chat template (chat_template.jinja first, then tokenizer_config.json's; a named set's `default`). */
function folderChatTemplate(dir: string | null): string | null {
  if (!dir) return null;
  const jinja = join(dir, 'chat_template.jinja');
  if (existsSync(jinja)) return readFileSync(jinja, 'utf8');
  const cfg = readOptionalJson(join(dir, 'tokenizer_config.json'));
  const t = cfg?.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const d = (t as Array<{ name?: string; template?: string }>).find((x) => x.name === 'default');
    return d?.template ?? null;
  }
  return null;
}

/**
 * mergekit/merge.py `_set_chat_template`: `auto` takes the template most of the models share
 * (none: no template is set), a built-in name takes that template (evomerge's own text for the
 * named formats), anything else must be a Jinja template.
 */
export function resolveChatTemplate(value: string, models: readonly string[], info: (m: string) => VocabSourceInfo): string | null {
  if (value === 'auto') {
    const counts = new Map<string, number>();
    for (const m of models) {
      const t = folderChatTemplate(info(m).tokenizerDir)?.trim();
      if (t) counts.set(t, (counts.get(t) ?? 0) + 1);
    }
    let best: string | null = null;
    let n = 0;
    for (const [t, c] of counts) if (c > n) [best, n] = [t, c];
    return best;
  }
  if (value.length < 256 && !value.includes('\n') && !value.includes('{')) {
    const t = BUILTIN_TEMPLATES[value];
    if (t) return t;
  }
  if (value.length < 20 || !value.includes('{')) {
    throw new InputError('E_CHAT_TEMPLATE', `chat_template '${value.slice(0, 40)}' is neither auto, a built-in name (${Object.keys(BUILTIN_TEMPLATES).join(', ')}) nor a Jinja template`);
  }
  return value;
}

/** The names of tokenizer files a folder may hold that describe its vocabulary. */
const VOCAB_FILES = ['tokenizer.json', 'tokenizer.model', 'vocab.json', 'merges.txt', 'added_tokens.json', 'vocab.txt'];

/**
 * The files of an output tokenizer: tokenizer.json as built; tokenizer_config.json from the
 * source folder with `added_tokens_decoder` rewritten to the added tokens (and the chat template,
 * when one is set); the source's other vocabulary files are not copied.
 */
function tokenizerFiles(out: TokenizerJson, sourceDir: string, recipe: Recipe, models: readonly string[], info: (m: string) => VocabSourceInfo): { files: Record<string, string>; skip: string[] } {
  const files: Record<string, string> = { 'tokenizer.json': `${JSON.stringify(out.toJson(), null, 2)}\n` };
  const cfg = readOptionalJson(join(sourceDir, 'tokenizer_config.json')) ?? {};
  cfg.added_tokens_decoder = Object.fromEntries([...out.added.values()].sort((a, b) => a.id - b.id).map((t) => [String(t.id), { content: t.content, lstrip: t.lstrip, normalized: t.normalized, rstrip: t.rstrip, single_word: t.single_word, special: t.special }]));
  const skip = [...VOCAB_FILES];
  if (recipe.chat_template) {
    const template = resolveChatTemplate(recipe.chat_template, models, info);
    if (template !== null) {
      cfg.chat_template = template;
      skip.push('chat_template.jinja', 'chat_template.json');
    }
  }
  files['tokenizer_config.json'] = `${JSON.stringify(cfg, null, 2)}\n`;
  return { files, skip };
}

/**
 * Without a tokenizer setting but with `chat_template`: the donor's tokenizer files with the
 * template set in tokenizer_config.json (mergekit re-saves the donor's tokenizer then).
 */
export function chatTemplateFiles(recipe: Recipe, donorDir: string | null, models: readonly string[], info: (m: string) => VocabSourceInfo): OutputVocab['files'] {
  if (!recipe.chat_template || !donorDir) return null;
  const template = resolveChatTemplate(recipe.chat_template, models, info);
  if (template === null) return null;
  const cfg = readOptionalJson(join(donorDir, 'tokenizer_config.json')) ?? {};
  cfg.chat_template = template;
  return { 'tokenizer_config.json': `${JSON.stringify(cfg, null, 2)}\n` };
}

/**
 * mergekit/tokenizer/embed.py `PermutedEmbeddings` for one tensor: the row layout of each input
 * (`inputs`: the task's models, base included) in the output vocabulary.
 */
export function embeddingLayout(plan: VocabPlan, inputs: readonly string[], inputRows: readonly number[], tensor: string): RowLayout {
  const size = plan.vocab.size;
  const perms = inputs.map((m) => {
    const p = plan.permutations.get(m);
    if (!p) throw new InputError('E_TOKENIZER_MODEL', `${tensor}: ${m} has no vocabulary permutation (it is not among the recipe's models)`);
    return p;
  });
  const inputOf = (model: string, what: string): number => {
    const i = inputs.indexOf(model);
    // mergekit asserts the model is part of this tensor's merge
    if (i < 0) throw new InputError('E_TOKENIZER_SOURCE', `${what}: ${model} is not one of the models merged into ${tensor} (${inputs.join(', ')})`);
    return i;
  };
  const own = perms.map((p) => Int32Array.from(p));
  const defaults = new Map<number, Array<{ input: number; row: number }>>();
  const baseIndex = inputs.indexOf(plan.base);
  for (const [token, id] of plan.vocab) {
    const cfg = plan.tokens.get(token);
    const present = perms.map((p) => p[id]! >= 0);
    if (cfg?.force) for (const o of own) o[id] = -1;
    const needed = own.some((o) => o[id]! < 0);
    if (!needed) continue;
    let source: DefaultSource;
    if (cfg) {
      const s = cfg.source;
      if (typeof s === 'string') source = { kind: 'model', model: s };
      else if (s.kind === 'zero') source = { kind: 'zero' };
      else {
        const i = inputOf(s.model, `tokenizer.tokens['${token}']`);
        let row = s.token_id ?? -1;
        if (s.token != null) {
          const v = plan.original.get(s.model) ?? plan.original.get(plan.base)!;
          const r = v.get(s.token);
          if (r === undefined) throw new InputError('E_TOKENIZER_SOURCE', `tokenizer.tokens['${token}']: token '${s.token}' is not in the vocabulary of ${s.model}`);
          row = r;
        }
        if (row < 0 || row >= inputRows[i]!) throw new InputError('E_TOKENIZER_SOURCE', `tokenizer.tokens['${token}']: row ${row} is out of range for ${s.model} (${inputRows[i]} rows in ${tensor})`);
        defaults.set(id, [{ input: i, row }]);
        continue;
      }
    } else {
      const count = present.filter(Boolean).length;
      if (count === 1) source = { kind: 'model', model: inputs[present.indexOf(true)]! };
      else if (count === 0) source = { kind: 'zero' };
      else if (baseIndex >= 0 && present[baseIndex]) source = { kind: 'model', model: plan.base };
      else source = { kind: 'mean' };
    }
    if (source.kind === 'zero') defaults.set(id, []);
    else if (source.kind === 'mean') defaults.set(id, inputs.flatMap((_, i) => (present[i] ? [{ input: i, row: perms[i]![id]! }] : [])));
    else if (source.kind === 'model') {
      const i = inputOf(source.model, `the default row of '${token}'`);
      if (perms[i]![id]! < 0) throw new InputError('E_TOKENIZER_SOURCE', `tokenizer.tokens['${token}']: ${source.model} has no token '${token}' to take its row from`);
      defaults.set(id, [{ input: i, row: perms[i]![id]! }]);
    }
  }
  return { rows: plan.output.rows ?? size, vocab: size, own, defaults };
}

/** mergekit/merge_methods/rectify_embed.py: every input cut to the rows they all have. */
export function commonRowsLayout(inputRows: readonly number[]): RowLayout {
  const rows = Math.min(...inputRows);
  const own = inputRows.map(() => Int32Array.from({ length: rows }, (_, r) => r));
  return { rows, vocab: rows, own, defaults: new Map() };
}

/**
 * The rows of input `i` laid out by `layout` (float32 as mergekit in float32: a default row is
 * zeros plus each averaged row in order, divided by their count; padding rows the mean of the
 * token rows). `read(j)` gives input j's tensor; `cols` its row length.
 */
export function layoutRows(layout: RowLayout, i: number, read: (j: number) => Float32Array, cols: number): Float32Array {
  const out = new Float32Array(layout.rows * cols);
  const src = read(i);
  const own = layout.own[i]!;
  for (let r = 0; r < layout.vocab; r++) {
    const o = own[r]!;
    if (o >= 0) {
      out.set(src.subarray(o * cols, (o + 1) * cols), r * cols);
      continue;
    }
    const refs = layout.defaults.get(r);
    if (!refs || refs.length === 0) continue; // zeros (mergekit logs "no embedding" and leaves them)
    const dst = out.subarray(r * cols, (r + 1) * cols);
    for (const { input, row } of refs) {
      const s = input === i ? src : read(input);
      for (let c = 0; c < cols; c++) dst[c] = Math.fround(dst[c]! + s[row * cols + c]!);
    }
    if (refs.length > 1) for (let c = 0; c < cols; c++) dst[c] = Math.fround(dst[c]! / refs.length);
  }
  if (layout.rows > layout.vocab) {
    // vocabulary expansion by the mean embedding (mergekit cites Hewitt 2021,
    // https://nlp.stanford.edu/~johnhew/vocab-expansion.html)
    const mean = new Float64Array(cols);
    for (let r = 0; r < layout.vocab; r++) for (let c = 0; c < cols; c++) mean[c] += out[r * cols + c]!;
    for (let c = 0; c < cols; c++) mean[c] = Math.fround(mean[c]! / layout.vocab);
    for (let r = layout.vocab; r < layout.rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = mean[c]!;
  }
  return out;
}

/** Whether a layout leaves every input as it is (no remapping needed). */
export function isIdentityLayout(layout: RowLayout, inputRows: readonly number[]): boolean {
  if (layout.defaults.size > 0 || layout.rows !== layout.vocab) return false;
  return layout.own.every((o, i) => inputRows[i] === layout.rows && o.every((v, r) => v === r));
}

/** The tokenizer folder of a catalogue (its tokenizer.json's folder, else the model path when a folder). */
export function tokenizerDirOf(path: string, files: readonly string[] | undefined): string | null {
  const tj = files?.find((f) => basename(f) === 'tokenizer.json');
  if (tj) return dirname(tj);
  if (files && files.length) return dirname(files[0]!);
  return existsSync(join(path, 'tokenizer.json')) ? path : null;
}
