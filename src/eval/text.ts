/**
 * Text evaluators for causal language models: multiple choice by log-likelihood, greedy
 * generation with answer extraction, and perplexity.
 */
import { InputError, ShapeMismatchError } from '../errors.ts';
import type { CausalLM } from '../models/llama.ts';
import type { RunnableModel } from '../models/load.ts';
import type { TextTokenizer } from '../models/tokenizer.ts';
import { Rng, deriveSeed } from '../tensor/rng.ts';
import { fillTemplate, loadRows, type EvalRow } from './data.ts';
import { manifestFitness, partialScoring, type ChoiceManifest, type GenerateManifest, type Manifest, type PerplexityManifest } from './manifest.ts';
import { binomialSE, ratioSE } from './stderr.ts';
import type { EvalContext, EvalResult, Evaluator, PartialScore } from './types.ts';

function requireLm(m: Manifest, model: RunnableModel | null): { lm: CausalLM; tok: TextTokenizer } {
  if (!model || model.kind !== 'causal-lm') {
    throw new InputError('E_EVAL_FAMILY', `evaluator ${m.id} (${m.file}) scores causal language models, but the model is ${model ? 'a classifier' : 'missing'}`);
  }
  const lm = model as CausalLM;
  if (!lm.tokenizer) throw new InputError('E_TOKENIZER_MISSING', `evaluator ${m.id} needs the model's tokenizer.json, and the model folder has none`);
  if (lm.tokenizer.size > lm.config.vocabSize) {
    throw new ShapeMismatchError(`the tokenizer can produce ids up to ${lm.tokenizer.size - 1} but the model's vocab_size is ${lm.config.vocabSize}; tokenizer.json does not belong to this model`);
  }
  return { lm, tok: lm.tokenizer };
}

/** The `se` field of a result, present only when known. */
function withSE(se: number | undefined): { se?: number } {
  return se === undefined || !Number.isFinite(se) ? {} : { se };
}

function primary(m: Manifest, metrics: Record<string, number>, names: string): number {
  const v = metrics[m.metric.name];
  if (v === undefined) throw new InputError('E_EVAL_METRIC', `${m.file}: field 'metric.name' is '${m.metric.name}' but kind ${m.kind} reports ${names}`);
  return v;
}

abstract class TextEvaluator<M extends ChoiceManifest | GenerateManifest | PerplexityManifest> implements Evaluator {
  readonly needsModel = true;
  readonly family = 'llama' as const;
  protected rowsCache: EvalRow[] | null = null;
  protected fewshotPool: EvalRow[] | null = null;
  constructor(protected readonly m: M) {}
  get id() {
    return this.m.id;
  }
  get version() {
    return this.m.version;
  }
  get kind() {
    return this.m.kind;
  }
  get split() {
    return this.m.split;
  }
  get metric() {
    return this.m.metric;
  }
  protected rows(): EvalRow[] {
    if (!this.rowsCache) {
      const all = loadRows(this.m, this.m.split);
      this.rowsCache = this.m.limit ? all.slice(0, this.m.limit) : all;
    }
    return this.rowsCache;
  }
  /**
   * The few-shot prefix of item `index`: k examples drawn without replacement from the few-shot
   * split (the evaluated split by default, never the item itself), by a stream seeded from
   * (fewshot seed, index), so every candidate sees the same prompts.
   */
  protected prefix(index: number, render: (ex: EvalRow) => string): string {
    if (!('fewshot' in this.m) || !this.m.fewshot || this.m.fewshot.k === 0) return '';
    const fs = this.m.fewshot;
    const same = !fs.split || fs.split === this.m.split;
    if (!this.fewshotPool) this.fewshotPool = same ? loadRows(this.m, this.m.split) : loadRows(this.m, fs.split!);
    const pool = this.fewshotPool;
    const candidates = pool.map((_, i) => i).filter((i) => !(same && i === index));
    if (candidates.length < fs.k) throw new InputError('E_EVAL_FEWSHOT', `${this.m.file}: fewshot.k is ${fs.k} but the few-shot split has only ${candidates.length} other items`);
    const rng = Rng.seeded(deriveSeed('fewshot', fs.seed, index));
    // partial Fisher-Yates: the first k of a uniformly random permutation
    for (let i = 0; i < fs.k; i++) {
      const j = i + rng.int(candidates.length - i);
      [candidates[i], candidates[j]] = [candidates[j]!, candidates[i]!];
    }
    return candidates.slice(0, fs.k).map((i) => render(pool[i]!)).join(fs.separator) + fs.separator;
  }
  abstract evaluate(model: RunnableModel | null, ctx: EvalContext): Promise<EvalResult>;
  dispose(): void {}
}

/** The longest suffix of `ids` a model with `max` positions can take. */
function fit(ids: number[], max: number): number[] {
  return ids.length > max ? ids.slice(ids.length - max) : ids;
}

/**
 * Multiple choice by log-likelihood, as lm-eval-harness defines it (`api/task.py`,
 * `process_results` for `multiple_choice`): the score of option i is the summed log-probability
 * of its tokens after the context; `acc` takes the arg-max, `acc_norm` the arg-max after dividing
 * each score by the option's length in characters. Option tokens are those of
 * tokenize(context + delimiter + option) beyond tokenize(context), so merges across the boundary
 * are tokenized as the model saw them.
 */
export class ChoiceEvaluator extends TextEvaluator<ChoiceManifest> {
  private itemParts(row: EvalRow, index: number): { context: string; choices: string[]; gold: number } {
    const where = `${this.m.id} item ${index}`;
    const choices = row[this.m.choices_field];
    if (!Array.isArray(choices) || choices.length < 2 || choices.some((c) => typeof c !== 'string')) {
      throw new InputError('E_EVAL_DATA', `${where}: field '${this.m.choices_field}' must be an array of at least two strings`);
    }
    const gold = Number(row[this.m.gold_field]);
    if (!Number.isInteger(gold) || gold < 0 || gold >= choices.length) {
      throw new InputError('E_EVAL_DATA', `${where}: field '${this.m.gold_field}' is ${String(row[this.m.gold_field])}, not an index into its ${choices.length} choices`);
    }
    return { context: fillTemplate(this.m.prompt, row, where), choices: choices as string[], gold };
  }

  /**
   * The supervised items of this evaluator for gradient refinement (src/refine): each item's
   * context (with its few-shot prefix) + delimiter + gold option, tokenized as evaluate() does,
   * and the position of the first option token (`from`).
   */
  goldSequences(tok: TextTokenizer, maxPositions: number): { sequences: number[][]; from: number[] } {
    const sequences: number[][] = [];
    const from: number[] = [];
    this.rows().forEach((row, i) => {
      const item = this.itemParts(row, i);
      const { seqs, contLens } = this.sequences(item, i, [item.gold], tok, maxPositions);
      sequences.push(seqs[0]!);
      from.push(seqs[0]!.length - contLens[0]!);
    });
    return { sequences, from };
  }

  /**
   * The token sequences of item i's `choices` (few-shot prefix + context + delimiter + option, cut
   * to maxPositions) and how many of each sequence's last tokens are the option's.
   */
  private sequences(item: { context: string; choices: string[] }, i: number, choices: readonly number[], tok: TextTokenizer, maxPositions: number): { seqs: number[][]; contLens: number[] } {
    const prefix = this.prefix(i, (ex) => {
      const p = this.itemParts(ex, -1);
      return p.context + this.m.target_delimiter + p.choices[p.gold];
    });
    const context = prefix + item.context;
    const ctxIds = tok.encode(context);
    const seqs: number[][] = [];
    const contLens: number[] = [];
    for (const c of choices) {
      const whole = tok.encode(context + this.m.target_delimiter + item.choices[c]!);
      const n = Math.max(1, whole.length - ctxIds.length);
      const s = fit(whole, maxPositions);
      seqs.push(s);
      contLens.push(Math.min(n, s.length - 1));
    }
    return { seqs, contLens };
  }

  async evaluate(model: RunnableModel | null, ctx: EvalContext): Promise<EvalResult> {
    const n = this.rows().length;
    const p = await this.scoreItems(model, ctx, Array.from({ length: n }, (_, i) => i));
    return this.resultOf(p);
  }

  /** Items for multi-fidelity scoring: acc and acc_norm are means over items. */
  itemCount(): number | null {
    return partialScoring(this.m) ? this.rows().length : null;
  }

  /** Right answers (acc, acc_norm) on the items of `indices`, in that order. */
  async scoreItems(model: RunnableModel | null, ctx: EvalContext, indices: readonly number[]): Promise<PartialScore> {
    const { lm, tok } = requireLm(this.m, model);
    const rows = this.rows();
    let acc = 0;
    let accNorm = 0;
    for (const [done, i] of indices.entries()) {
      ctx.signal?.throwIfAborted();
      const item = this.itemParts(rows[i]!, i);
      const { seqs, contLens } = this.sequences(item, i, item.choices.map((_, c) => c), tok, lm.config.maxPositions);
      const lps = await lm.tokenLogProbs(seqs);
      const ll = lps.map((lp, c) => {
        let s = 0;
        for (let t = lp.length - contLens[c]!; t < lp.length; t++) s += lp[t]!;
        return s;
      });
      const argmax = (v: number[]) => v.reduce((b, x, j) => (x > v[b]! ? j : b), 0);
      if (argmax(ll) === item.gold) acc++;
      if (argmax(ll.map((x, c) => x / item.choices[c]!.length)) === item.gold) accNorm++;
      ctx.onProgress?.(done + 1, indices.length);
    }
    // per item, acc and acc_norm are 0 or 1: the square is the value
    const right = this.m.metric.name === 'acc_norm' ? accNorm : acc;
    return { count: indices.length, sums: { acc, acc_norm: accNorm }, primary: { sum: right, sumSq: right } };
  }

  resultOf(p: PartialScore): EvalResult {
    const n = p.count;
    const metrics = { acc: n ? (p.sums.acc ?? 0) / n : 0, acc_norm: n ? (p.sums.acc_norm ?? 0) / n : 0 };
    const value = primary(this.m, metrics, 'acc and acc_norm');
    return { fitness: manifestFitness(this.m, value), metrics, samples: n, ...withSE(binomialSE(value, n)) };
  }
}

/** The answer a generation states: the last number (commas dropped), or a regex's first group. */
export function extractAnswer(text: string, rule: string): string | null {
  if (rule === 'none') return text.trim();
  if (rule === 'last-number') {
    const all = text.match(/-?\d[\d,]*(?:\.\d+)?/g);
    return all ? all[all.length - 1]!.replace(/,/g, '') : null;
  }
  const m = new RegExp(rule).exec(text);
  return m ? (m[1] ?? m[0]).trim() : null;
}

/** Exact match after trimming; numbers compare by value (so "42.0" matches "42"). */
export function answersMatch(got: string | null, want: string): boolean {
  if (got === null) return false;
  const a = got.trim();
  const b = want.trim();
  if (a === b) return true;
  const x = Number(a.replace(/,/g, ''));
  const y = Number(b.replace(/,/g, ''));
  return a !== '' && b !== '' && Number.isFinite(x) && Number.isFinite(y) && x === y;
}

/**
 * Greedy generation up to `max_tokens` or a stop string, then answer extraction and exact
 * match. With `extract: last-number` this is the answer rule of the Sakana evaluation (Akiba et
 * al. 2024, section 4.1: the last number in the output is the model's answer).
 */
export class GenerateEvaluator extends TextEvaluator<GenerateManifest> {
  async evaluate(model: RunnableModel | null, ctx: EvalContext): Promise<EvalResult> {
    const { lm, tok } = requireLm(this.m, model);
    const rows = this.rows();
    if (this.m.extract !== 'none' && this.m.extract !== 'last-number') {
      try {
        new RegExp(this.m.extract);
      } catch (err) {
        throw new InputError('E_EVAL_MANIFEST', `${this.m.file}: field 'extract' is not a valid regular expression (${(err as Error).message})`);
      }
    }
    let right = 0;
    let answered = 0;
    let generatedTokens = 0;
    for (let i = 0; i < rows.length; i++) {
      ctx.signal?.throwIfAborted();
      const where = `${this.m.id} item ${i}`;
      const row = rows[i]!;
      const prefix = this.prefix(i, (ex) => fillTemplate(this.m.prompt, ex, where) + fillTemplate(this.m.target, ex, where));
      const prompt = fit(tok.encode(prefix + fillTemplate(this.m.prompt, row, where)), Math.max(1, lm.config.maxPositions - this.m.max_tokens));
      const stops = this.m.stop;
      const out = await lm.generate(prompt, {
        maxTokens: this.m.max_tokens,
        stop: stops.length ? (g) => stops.some((s) => tok.decode(g).includes(s)) : undefined,
      });
      generatedTokens += out.length;
      let text = tok.decode(out);
      for (const s of stops) {
        const at = text.indexOf(s);
        if (at >= 0) text = text.slice(0, at);
      }
      const answer = extractAnswer(text, this.m.extract);
      if (answer !== null) answered++;
      if (answersMatch(answer, fillTemplate(this.m.target, row, where))) right++;
      ctx.onProgress?.(i + 1, rows.length);
    }
    const n = rows.length;
    const metrics = { exact_match: n ? right / n : 0, answered: n ? answered / n : 0, generated_tokens: generatedTokens };
    const value = primary(this.m, metrics, 'exact_match and answered');
    // exact_match and answered are means of 0/1 items; generated_tokens is a count
    const se = this.m.metric.name === 'generated_tokens' ? undefined : binomialSE(value, n);
    return { fitness: manifestFitness(this.m, value), metrics, samples: n, ...withSE(se) };
  }
}

/**
 * Perplexity of texts: every token after the first is predicted once, by windows of at most
 * `context` tokens where each window after the first starts at the previous window's last token.
 * loss = mean negative log-likelihood per predicted token (nats), perplexity = exp(loss),
 * bits_per_char = total NLL / ln 2 / characters (Unicode code points) of the texts.
 */
/** The window length of a perplexity evaluation: the manifest's context, else the model's, at most 1024. */
function windowLength(context: number | undefined, maxPositions: number): number {
  const ctxLen = context ?? Math.min(maxPositions, 1024);
  if (ctxLen < 2) throw new InputError('E_EVAL_CONTEXT', `a perplexity window needs at least 2 tokens (got ${ctxLen})`);
  return ctxLen;
}

/** Windows of ctxLen tokens overlapping by one, so every token after the first is predicted exactly once. */
function perplexityWindows(ids: readonly number[], ctxLen: number): number[][] {
  const windows: number[][] = [];
  for (let s = 0; s + 1 < ids.length; s += ctxLen - 1) windows.push(ids.slice(s, Math.min(s + ctxLen, ids.length)));
  return windows;
}

export async function scorePerplexity(lm: CausalLM, tok: TextTokenizer, texts: readonly string[], options: { context?: number; onProgress?: (done: number, total: number) => void; signal?: AbortSignal } = {}): Promise<{ loss: number; perplexity: number; bits_per_char: number; tokens: number; characters: number; perText: { nll: number[]; tokens: number[]; characters: number[] } }> {
  const ctxLen = windowLength(options.context, lm.config.maxPositions);
  let nll = 0;
  let tokens = 0;
  let characters = 0;
  const perText = { nll: [] as number[], tokens: [] as number[], characters: [] as number[] };
  for (let d = 0; d < texts.length; d++) {
    options.signal?.throwIfAborted();
    const text = texts[d]!;
    const chars = [...text].length;
    characters += chars;
    const windows = perplexityWindows(tok.encode(text), ctxLen);
    let textNll = 0;
    let textTokens = 0;
    // A few windows per call: one forward pass over a small batch instead of many tiny ones.
    for (let w = 0; w < windows.length; w += 4) {
      const lps = await lm.tokenLogProbs(windows.slice(w, w + 4));
      for (const lp of lps) for (const v of lp) textNll -= v;
      for (const win of windows.slice(w, w + 4)) textTokens += win.length - 1;
    }
    nll += textNll;
    tokens += textTokens;
    perText.nll.push(textNll);
    perText.tokens.push(textTokens);
    perText.characters.push(chars);
    options.onProgress?.(d + 1, texts.length);
  }
  const loss = tokens ? nll / tokens : 0;
  return { loss, perplexity: Math.exp(loss), bits_per_char: characters ? nll / Math.LN2 / characters : 0, tokens, characters, perText };
}

/**
 * The standard error of a perplexity evaluation's primary metric from the spread over its texts
 * (./stderr.ts ratioSE: loss and bits_per_char are ratios of sums over texts; perplexity =
 * exp(loss), by the delta method exp(loss) se(loss)); none for the token count.
 */
export function perplexitySE(metric: string, r: Awaited<ReturnType<typeof scorePerplexity>>): number | undefined {
  if (metric === 'loss') return ratioSE(r.perText.nll, r.perText.tokens);
  if (metric === 'perplexity') {
    const se = ratioSE(r.perText.nll, r.perText.tokens);
    return se === undefined ? undefined : r.perplexity * se;
  }
  if (metric === 'bits_per_char') {
    const se = ratioSE(r.perText.nll, r.perText.characters);
    return se === undefined ? undefined : se / Math.LN2;
  }
  return undefined;
}

export class PerplexityEvaluator extends TextEvaluator<PerplexityManifest> {
  /** The windows scorePerplexity scores, for gradient refinement (src/refine): every token after the first. */
  windows(tok: TextTokenizer, maxPositions: number): { sequences: number[][]; from: number[] } {
    const ctxLen = windowLength(this.m.context, maxPositions);
    const sequences = this.texts().flatMap((t) => perplexityWindows(tok.encode(t), ctxLen));
    return { sequences, from: sequences.map(() => 1) };
  }

  private texts(): string[] {
    return this.rows().map((r, i) => {
      const t = r[this.m.text_field];
      if (typeof t !== 'string') throw new InputError('E_EVAL_DATA', `${this.m.id} item ${i}: field '${this.m.text_field}' is not a string`);
      return t;
    });
  }

  async evaluate(model: RunnableModel | null, ctx: EvalContext): Promise<EvalResult> {
    const { lm, tok } = requireLm(this.m, model);
    const texts = this.texts();
    const r = await scorePerplexity(lm, tok, texts, { context: this.m.context, onProgress: ctx.onProgress, signal: ctx.signal });
    const { perText: _, ...metrics } = r;
    return { fitness: manifestFitness(this.m, primary(this.m, metrics, 'loss, perplexity, bits_per_char and tokens')), metrics, samples: texts.length, ...withSE(perplexitySE(this.m.metric.name, r)) };
  }
}
