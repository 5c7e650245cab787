/**
 * Tokenizers, loaded from a Hugging Face `tokenizer.json` by `@huggingface/tokenizers` (a
 * maintained, dependency-free implementation of the Rust library's formats), never hand-written.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { InputError } from '../errors.ts';

export class TokenizerError extends InputError {
  constructor(code: string, message: string) {
    super(code, message);
  }
}

export interface TextTokenizer {
  /** Token ids; `special` adds what the tokenizer's post-processor adds (typically BOS). */
  encode(text: string, options?: { special?: boolean }): number[];
  decode(ids: readonly number[]): string;
  readonly bosId: number | null;
  readonly eosId: number | null;
  /** One past the largest id the tokenizer can produce. */
  readonly size: number;
}

function specialId(tok: Tokenizer, config: Record<string, unknown>, modelConfig: Record<string, unknown>, key: 'bos' | 'eos'): number | null {
  const v = config[`${key}_token`];
  const fromModel = modelConfig[`${key}_token_id`];
  if (v === undefined && typeof fromModel === 'number') return fromModel;
  const content = typeof v === 'string' ? v : v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string' ? (v as { content: string }).content : null;
  if (content === null) return null;
  return tok.token_to_id(content) ?? null;
}

/**
 * Wraps a parsed tokenizer.json. BOS and EOS come from tokenizer_config.json when given, else
 * from the model's config.json (`bos_token_id`, `eos_token_id`).
 */
export function tokenizerFromJson(json: object, config: Record<string, unknown> = {}, modelConfig: Record<string, unknown> = {}): TextTokenizer {
  // @huggingface/tokenizers 0.2 reads a WordLevel model through its legacy path, which takes the
  // unknown token from tokenizer_config.json only: without it, a word outside the vocabulary
  // encodes to an undefined id. The Rust library (and transformers) use the model's own
  // `unk_token`, so it is passed on here.
  const model = (json as { model?: { type?: unknown; unk_token?: unknown } }).model;
  const withUnk = model?.type === 'WordLevel' && typeof model.unk_token === 'string' && config.unk_token === undefined ? { ...config, unk_token: model.unk_token } : config;
  const tok = new Tokenizer(json, withUnk);
  let size = 0;
  for (const id of tok.get_vocab(true).values()) size = Math.max(size, id + 1);
  return {
    encode: (text, options = {}) => {
      const ids = tok.encode(text, { add_special_tokens: options.special ?? true }).ids;
      const bad = ids.findIndex((id: number) => !Number.isInteger(id));
      if (bad >= 0) {
        throw new TokenizerError('E_TOKENIZER_UNKNOWN', `the tokenizer gave no id for a piece of '${text.length > 60 ? `${text.slice(0, 60)}...` : text}' (token ${bad}) and declares no unknown token to stand for it; add unk_token to its model (tokenizer.json) or to tokenizer_config.json`);
      }
      return ids;
    },
    // the library refuses an empty list; an empty generation decodes to the empty string
    decode: (ids) => (ids.length === 0 ? '' : tok.decode([...ids], { skip_special_tokens: true, clean_up_tokenization_spaces: false })),
    bosId: specialId(tok, config, modelConfig, 'bos'),
    eosId: specialId(tok, config, modelConfig, 'eos'),
    size,
  };
}

/** Loads `tokenizer.json` (+ `tokenizer_config.json`) from a model folder. */
export function loadTokenizer(dir: string, modelConfig: Record<string, unknown> = {}): TextTokenizer {
  const file = join(dir, 'tokenizer.json');
  if (!existsSync(file)) {
    throw new TokenizerError('E_TOKENIZER_MISSING', `${dir} has no tokenizer.json; text evaluators need the model's tokenizer (copy it from the base model's folder)`);
  }
  let json: object;
  let config: Record<string, unknown> = {};
  try {
    json = JSON.parse(readFileSync(file, 'utf8')) as object;
    const cfgFile = join(dir, 'tokenizer_config.json');
    if (existsSync(cfgFile)) config = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new TokenizerError('E_TOKENIZER_PARSE', `${file}: not valid JSON (${(err as Error).message})`);
  }
  try {
    return tokenizerFromJson(json, config, modelConfig);
  } catch (err) {
    throw new TokenizerError('E_TOKENIZER_LOAD', `${file}: @huggingface/tokenizers cannot load it (${(err as Error).message})`);
  }
}

/**
 * A real tokenizer.json with one token per character: ids 0..2 are `<unk>`, `<s>`, `</s>`, then
 * the characters in the given order. A BPE model with no merges maps each character to itself,
 * and a template post-processor prepends `<s>`. For tiny test and demo models; pair it with
 * `bos_token_id: 1, eos_token_id: 2` in config.json.
 */
export function charTokenizerJson(chars: string): object {
  return bpeTokenizerJson(chars, []);
}

/**
 * As `charTokenizerJson`, with BPE merges (Sennrich et al. 2016, section 3.2: each merge joins
 * an adjacent pair into one new symbol, applied in order): the merged tokens get the ids after
 * the characters, in merge order. There is no pre-tokenizer, so a merge may join across a space.
 * `lowercase` adds a Lowercase normalizer (a vocabulary without capitals that still reads them).
 */
export function bpeTokenizerJson(chars: string, merges: ReadonlyArray<readonly [string, string]>, options: { lowercase?: boolean } = {}): object {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (const c of chars) if (!(c in vocab)) vocab[c] = Object.keys(vocab).length;
  for (const [a, b] of merges) {
    if (!(a in vocab) || !(b in vocab)) throw new InputError('E_TOKENIZER_MERGE', `BPE merge '${a}' + '${b}': both parts must be tokens already (characters or earlier merges)`);
    if (!(a + b in vocab)) vocab[a + b] = Object.keys(vocab).length;
  }
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: options.lowercase ? { type: 'Lowercase' } : null,
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: { type: 'Fuse' },
    model: {
      type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  return tokenizer;
}
