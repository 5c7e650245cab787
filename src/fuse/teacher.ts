/**
 * Teacher distributions for knowledge fusion (FuseLLM, Wan et al. 2024, section 3.3; FuseChat,
 * Wan et al. 2024, section 3.2): every source model, with its own tokenizer, reads the same
 * training texts as the pivot; its next-token distributions are cut to the top k (k = 10 as in
 * the FuseLLM repository), its tokens aligned to the pivot's by dynamic time warping over edit
 * distance, its vocabulary mapped onto the pivot's (exact, minimum edit distance, or alignment
 * statistics) and the result stored once per source, keyed by what it was made from, so a
 * second run or a resumed one reads it instead of running the source again.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { openCheckpoint, readConfig } from '../checkpoint/index.ts';
import { InputError } from '../errors.ts';
import { readJsonlFile } from '../eval/data.ts';
import { loadManifest, resolveDataPath } from '../eval/manifest.ts';
import { familyOf } from '../models/load.ts';
import { parseLlamaConfig, type LlamaConfig } from '../models/llama-config.ts';
import { LlamaModel } from '../models/llama.ts';
import { loadTokenizer, type TextTokenizer } from '../models/tokenizer.ts';
import { fingerprint } from '../candidate/sources.ts';
import { alignTokens } from './align.ts';
import { mapTopK, topKFromLogits, type TopK } from './distributions.ts';
import { readDistributions, writeDistributions } from './store.ts';
import { cooccurrenceCounts, exactMapping, fuseChatMapping, minEditMapping, statisticsMapping } from './vocab.ts';

export const FUSE_MAPPINGS = ['exact', 'mined', 'stats', 'fusechat'] as const;
export type FuseMapping = (typeof FUSE_MAPPINGS)[number];

/** Bump when stored distributions change for the same inputs, so old files are not reused. */
const DIST_FORMAT = 1;

/** A model taking part in a fusion: the pivot or a source. */
export interface FuseModel {
  dir: string;
  name: string;
  configJson: Record<string, unknown>;
  config: LlamaConfig;
  tokenizer: TextTokenizer;
  /** Token string of each id (null where the tokenizer has none). */
  vocab: Array<string | null>;
  /** SHA-256 of tokenizer.json. */
  tokenizerSha: string;
}

/**
 * Token strings by id from a tokenizer.json: the model's vocabulary (an object token -> id for
 * BPE, WordLevel and WordPiece; [token, score] pairs for Unigram) and the added tokens.
 */
export function vocabularyOf(json: Record<string, unknown>, file = 'tokenizer.json'): Array<string | null> {
  const model = json.model as { vocab?: unknown } | undefined;
  const out: Array<string | null> = [];
  const put = (token: string, id: number) => {
    if (!Number.isSafeInteger(id) || id < 0) throw new InputError('E_FUSE_TOKENIZER', `${file}: token ${JSON.stringify(token)} has id ${id}; ids must be non-negative integers`);
    while (out.length <= id) out.push(null);
    out[id] = token;
  };
  if (Array.isArray(model?.vocab)) (model.vocab as Array<[string, number]>).forEach(([t], id) => put(t, id));
  else if (model?.vocab && typeof model.vocab === 'object') for (const [t, id] of Object.entries(model.vocab as Record<string, number>)) put(t, id);
  else throw new InputError('E_FUSE_TOKENIZER', `${file}: no model.vocab; fusion reads the token strings from it (BPE, WordLevel, WordPiece or Unigram tokenizers)`);
  for (const a of (json.added_tokens as Array<{ id: number; content: string }> | undefined) ?? []) put(a.content, a.id);
  return out;
}

/** Opens a model folder for fusion, refusing what fusion cannot use, with the role in every message. */
export function openFuseModel(dir: string, role: 'pivot' | 'source'): FuseModel {
  const configJson = readConfig(dir);
  if (!configJson) throw new InputError('E_FUSE_MODEL', `${role} ${dir}: no config.json; give a Hugging Face model folder (config.json, model.safetensors, tokenizer.json)`);
  let family: string;
  try {
    family = familyOf(configJson, join(dir, 'config.json'));
  } catch (err) {
    throw new InputError('E_FUSE_MODEL', `${role} ${dir}: ${(err as Error).message}; fusion takes causal LMs of the Llama family`);
  }
  if (family !== 'llama') throw new InputError('E_FUSE_MODEL', `${role} ${dir}: architectures ${JSON.stringify(configJson.architectures)} is not a causal LM of the Llama family; fusion needs next-token distributions (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)`);
  const config = parseLlamaConfig(configJson, join(dir, 'config.json'));
  const tokFile = join(dir, 'tokenizer.json');
  if (!existsSync(tokFile)) throw new InputError('E_FUSE_TOKENIZER', `${role} ${dir}: no tokenizer.json; fusion aligns the ${role}'s own tokens with the pivot's, so each model folder needs its tokenizer.json`);
  const raw = readFileSync(tokFile);
  const tokenizer = loadTokenizer(dir, configJson);
  const vocab = vocabularyOf(JSON.parse(raw.toString('utf8')) as Record<string, unknown>, tokFile);
  if (vocab.length > config.vocabSize) throw new InputError('E_FUSE_TOKENIZER', `${role} ${dir}: tokenizer.json has ids up to ${vocab.length - 1} but config.json's vocab_size is ${config.vocabSize}`);
  // ids the model can predict but the tokenizer never produces (a padded vocabulary) have no string
  while (vocab.length < config.vocabSize) vocab.push(null);
  return { dir, name: basename(dir.replace(/\/+$/, '')), configJson, config, tokenizer, vocab, tokenizerSha: createHash('sha256').update(raw).digest('hex') };
}

/** A training corpus: its text and where it came from. */
export interface Corpus {
  path: string;
  text: string;
  sha256: string;
  /** `text` for a text file, else the manifest's kind and split. */
  origin: string;
}

/**
 * Reads `--data`: a text file as is, or an evaluator manifest (YAML), whose `train` split gives
 * the text: the file itself for text data, each row's prompt and target for `generate` and
 * `choice` items (the gold choice), the text field for `perplexity` JSONL.
 */
export function readCorpus(path: string): Corpus {
  if (!existsSync(path)) throw new InputError('E_FUSE_DATA', `--data ${path}: no such file; give a text file or an evaluator manifest (YAML) with a train split`);
  let text: string;
  let origin = 'text';
  if (/\.ya?ml$/i.test(path)) {
    const m = loadManifest(path);
    const file = m.data?.splits?.train;
    if (m.kind === 'classification' || m.kind === 'command') throw new InputError('E_FUSE_DATA', `--data ${path}: a ${m.kind} manifest has no text to train on; give a text file or a perplexity, generate or choice manifest`);
    if (typeof file !== 'string') throw new InputError('E_FUSE_DATA', `--data ${path}: the manifest has no data.splits.train file (splits: ${Object.keys(m.data?.splits ?? {}).join(', ') || 'none'}); fusion trains on the train split only, never on the evaluation splits`);
    const full = resolveDataPath(m, file);
    origin = `${m.kind} manifest, train split`;
    const fill = (template: string, row: Record<string, unknown>) => template.replace(/\{(\w+)\}/g, (_, k: string) => String(row[k] ?? ''));
    if (m.kind === 'perplexity' && !/\.jsonl(\.gz)?$/.test(full)) text = readFileSync(full, 'utf8');
    else {
      const rows = readJsonlFile(full);
      if (m.kind === 'perplexity') text = rows.map((r) => String(r[m.text_field] ?? '')).join('\n');
      else if (m.kind === 'generate') text = rows.map((r) => `${fill(m.prompt, r)}${fill(m.target, r)}`).join('\n');
      else text = rows.map((r) => `${fill(m.prompt, r)}${m.target_delimiter}${String((r[m.choices_field] as unknown[] | undefined)?.[Number(r[m.gold_field])] ?? '')}`).join('\n');
    }
  } else text = readFileSync(path, 'utf8');
  if (text.trim().length === 0) throw new InputError('E_FUSE_DATA', `--data ${path}: the corpus is empty; fusion needs text to train on`);
  return { path, text, sha256: createHash('sha256').update(text).digest('hex'), origin };
}

/** Training windows of the pivot: T + 1 token ids each (BOS first when the tokenizer has one) and the text they spell. */
export interface Windows {
  ids: Int32Array[];
  texts: string[];
}

/**
 * Cuts `text`, tokenized once by the pivot, into consecutive windows of T predicted tokens:
 * [BOS, t_0 .. t_{T-1}] with a BOS (inputs BOS .. t_{T-2}, gold t_0 .. t_{T-1}), else T + 1
 * tokens. A window's text (what the sources read) is the decoded text of its gold tokens.
 */
export function pivotWindows(pivot: FuseModel, text: string, T: number): Windows {
  const all = pivot.tokenizer.encode(text, { special: false });
  const bos = pivot.tokenizer.bosId;
  const span = bos === null ? T + 1 : T;
  const ids: Int32Array[] = [];
  const texts: string[] = [];
  for (let s = 0; s + span <= all.length; s += span) {
    const w = new Int32Array(T + 1);
    if (bos !== null) {
      w[0] = bos;
      w.set(all.slice(s, s + T), 1);
    } else w.set(all.slice(s, s + T + 1));
    ids.push(w);
    texts.push(pivot.tokenizer.decode([...w.subarray(1)]));
  }
  if (ids.length === 0) throw new InputError('E_FUSE_DATA', `the corpus gives the pivot ${all.length} tokens, fewer than one window of ${span}; give more text or a smaller --context`);
  return { ids, texts };
}

export interface TeacherProgress {
  model: string;
  done: number;
  total: number;
}

export interface TeacherOptions {
  /** The model whose distributions are taken; `pivot` itself for its own. */
  model: FuseModel;
  pivot: FuseModel;
  windows: Windows;
  mapping: FuseMapping;
  k: number;
  /** Folder of the stored distributions. */
  workDir: string;
  /** Sequences per forward pass. */
  batch?: number;
  onProgress?: (p: TeacherProgress) => void;
}

export interface TeacherResult {
  file: string;
  cached: boolean;
  /** One top-k distribution per window, on the pivot's positions and vocabulary. */
  seqs: TopK[];
  /**
   * Per window, the model's mean next-token cross-entropy on its own tokenization of the text,
   * from the full softmax (NaN for a window it has no prediction in): FuseLLM's `metric_ce`
   * (src/utils/forward_for_logits.py), by which MinCE and AvgCE rank the models.
   */
  crossEntropies: number[];
  metadata: Record<string, string>;
}

/** Mean over rows r < gold.length of -log softmax(logits row r)[gold[r]]; NaN without rows. */
export function sequenceCrossEntropy(logits: Float32Array, vocab: number, gold: ArrayLike<number>): number {
  let sum = 0;
  for (let r = 0; r < gold.length; r++) {
    const o = r * vocab;
    let max = -Infinity;
    for (let c = 0; c < vocab; c++) max = Math.max(max, logits[o + c]!);
    let z = 0;
    for (let c = 0; c < vocab; c++) z += Math.exp(logits[o + c]! - max);
    sum += max + Math.log(z) - logits[o + gold[r]!]!;
  }
  return gold.length === 0 ? NaN : sum / gold.length;
}

function sha(parts: unknown): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

/**
 * The model's top-k next-token distributions on every window, mapped onto the pivot; read from
 * `workDir` when stored from the same model files, tokenizers, windows, mapping and k.
 */
export async function teacherDistributions(o: TeacherOptions): Promise<TeacherResult> {
  const isPivot = o.model === o.pivot;
  const key = sha({
    format: DIST_FORMAT, model: Object.values(await fingerprint(o.model.dir)), config: o.model.configJson, tokenizer: o.model.tokenizerSha,
    pivotTokenizer: o.pivot.tokenizerSha, windows: sha(o.windows.ids.map((w) => [...w])), mapping: isPivot ? 'identity' : o.mapping, k: o.k,
  });
  const file = join(o.workDir, `${o.model.name}-${key.slice(0, 16)}.safetensors`);
  if (existsSync(file)) {
    const stored = readDistributions(file);
    if (stored.metadata.key === key && stored.seqs.length === o.windows.ids.length) {
      return { file, cached: true, seqs: stored.seqs, crossEntropies: (JSON.parse(stored.metadata.cross_entropies ?? '[]') as Array<number | null>).map((x) => x ?? NaN), metadata: stored.metadata };
    }
  }
  const ckpt = openCheckpoint(o.model.dir);
  let model: LlamaModel;
  try {
    model = LlamaModel.load(o.model.config, ckpt, o.model.tokenizer);
  } finally {
    ckpt.close();
  }
  const n = o.windows.ids.length;
  const T = o.windows.ids[0]!.length - 1;
  const V = o.model.config.vocabSize;
  const batch = o.batch ?? 8;
  const maxLen = o.model.config.maxPositions;
  // Per window: the model's own token ids (inputs, then gold = ids[1..]) and its top-k rows.
  const own: Array<{ ids: number[]; topk: TopK; ce: number }> = [];
  let truncated = 0;
  try {
    for (let b = 0; b < n; b += batch) {
      const seqs: number[][] = [];
      for (let w = b; w < Math.min(n, b + batch); w++) {
        let ids = isPivot ? [...o.windows.ids[w]!.subarray(0, T)] : o.model.tokenizer.encode(o.windows.texts[w]!, { special: true });
        if (ids.length > maxLen) {
          ids = ids.slice(0, maxLen);
          truncated++;
        }
        seqs.push(ids);
      }
      const logits = await model.logits(seqs.map((s) => (s.length === 0 ? [0] : s)));
      seqs.forEach((ids, i) => {
        // row r is the distribution after reading ids[0..r], its prediction of ids[r + 1] (the
        // convention of distributions.ts and of FuseLLM's stored per-step logits)
        const rows = ids.length === 0 ? new Float32Array(0) : logits[i]!.subarray(0, ids.length * V);
        const gold = isPivot ? o.windows.ids[b + i]!.subarray(1) : ids.slice(1);
        own.push({ ids, topk: topKFromLogits(rows, ids.length, V, o.k), ce: sequenceCrossEntropy(rows, V, gold) });
      });
      o.onProgress?.({ model: o.model.name, done: Math.min(n, b + batch), total: n });
      await new Promise((r) => setImmediate(r));
    }
  } finally {
    model.dispose();
  }

  let seqs: TopK[];
  let coverage = 1;
  if (isPivot) seqs = own.map((x) => x.topk);
  else {
    // FuseLLM section 3.3: the two token sequences of the same text aligned by DTW over edit
    // distance (alignTokens); here the source's own sequence (BOS included when its tokenizer
    // adds one) against the pivot's window
    const str = (m: FuseModel, id: number) => m.vocab[id] ?? '';
    const aligned = own.map((x, w) => {
      const window = o.windows.ids[w]!;
      const path = x.ids.length === 0 ? [] : alignTokens(x.ids.map((id) => str(o.model, id)), [...window].map((id) => str(o.pivot, id)));
      return { source: Int32Array.from(x.ids), pivot: window, path };
    });
    const minEd = () => minEditMapping(o.model.vocab, o.pivot.vocab);
    const seen = aligned.filter((a) => a.path.length > 0);
    // fusechat: FuseChat's own rule over the co-occurrence counts; a token never seen aligned
    // carries nothing (-1) rather than FuseChat's unknown token
    const mapping = o.mapping === 'exact' ? exactMapping(o.model.vocab, o.pivot.vocab)
      : o.mapping === 'mined' ? minEd()
      : o.mapping === 'stats' ? statisticsMapping(seen, V, minEd())
      : fuseChatMapping(cooccurrenceCounts(seen, V, o.pivot.vocab.length), o.model.vocab, o.pivot.vocab, -1);
    let mapped = 0;
    for (let i = 0; i < mapping.length; i++) if (mapping[i]! >= 0) mapped++;
    coverage = mapping.length === 0 ? 0 : mapped / mapping.length;
    seqs = aligned.map((a, w) => {
      // the pivot's gold at position t is its token t + 1; the window's last position predicts past it
      const gold = new Int32Array(T + 1).fill(-1);
      gold.set(a.pivot.subarray(1));
      const m = a.path.length === 0
        ? mapTopK({ length: 1, k: o.k, ids: new Int32Array(o.k).fill(-1), probs: new Float32Array(o.k) }, Array.from({ length: T + 1 }, (_, t): [number, number] => [0, t]), mapping, T + 1, gold, o.k)
        : mapTopK(own[w]!.topk, a.path, mapping, T + 1, gold, o.k);
      // rows 0..T-1 are the T positions trained (inputs window[0..T-1], gold window[1..T])
      return { length: T, k: o.k, ids: m.ids.slice(0, T * o.k), probs: m.probs.slice(0, T * o.k) };
    });
  }
  const metadata: Record<string, string> = {
    key, model: o.model.dir, role: isPivot ? 'pivot' : 'source', mapping: isPivot ? 'identity' : o.mapping, k: String(o.k),
    windows: String(n), context: String(T), cross_entropies: JSON.stringify(own.map((x) => x.ce)), truncated: String(truncated), vocabulary_coverage: coverage.toFixed(4),
  };
  mkdirSync(o.workDir, { recursive: true });
  writeDistributions(file, seqs, metadata);
  return { file, cached: false, seqs, crossEntropies: own.map((x) => x.ce), metadata };
}
