/**
 * The loss of a PS candidate's merged model on validation items and its gradient with respect to
 * the genome's weight-like genes, masks held fixed (see ./index.ts for the method).
 */
import { tf } from '../models/backend.ts';
import { InputError, NotSupportedError } from '../errors.ts';
import { Rng, deriveSeed } from '../tensor/rng.ts';
import { PsCodec } from '../space/ps.ts';
import { MlpPathModel, MLP_ARCHITECTURE, parseResidualMlpConfig, residualMlpTensorShapes, type MlpBlock, type MlpEnds, type ResidualMlpConfig } from '../models/mlp.ts';
import { parseLlamaConfig, type LlamaConfig } from '../models/llama-config.ts';
import { assembleLlamaEnds, assembleLlamaLayer, llamaShapesOf, type LlamaTensor, type LlamaTensorOps } from '../models/llama-layout.ts';
import { LlamaPathModel } from '../models/llama.ts';
import { loadClassificationData } from '../eval/data.ts';
import { loadManifest, type Manifest } from '../eval/manifest.ts';
import { loadTokenizer } from '../models/tokenizer.ts';
import { ChoiceEvaluator, PerplexityEvaluator } from '../eval/text.ts';
import { createEvaluator } from '../eval/evaluator.ts';
import type { TextTokenizer } from '../models/tokenizer.ts';
import { planCandidate, type SourceModels } from '../candidate/index.ts';
import { ensureGradients } from '../train/gradients.ts';
import { chainToGenes, geneLinks, linearizeTasks } from './chain.ts';
import { checkRefinableEvaluator, checkRefinableMethod } from './setup.ts';

/** The sources as the engine holds them: catalogues keyed by the model references of the recipe (read per tensor). */
export interface RefineSources {
  models: SourceModels;
}

/** Validation items of a classification evaluator: x row-major [n, d], labels (null: unlabelled). */
export type RefineItems = ClassificationItems | CausalLmItems;

/**
 * Token sequences of a text evaluator. Position t >= from[b] of sequence b is scored, as
 * log p(ids[t] | ids[<t]): a choice item is context + delimiter + correct answer with `from` the
 * context's token count (ChoiceEvaluator's scoring, src/eval/text.ts), a perplexity window
 * has from = 1. Supervised: the mean negative log-likelihood over scored tokens (causal-LM
 * cross-entropy); entropy: the mean Shannon entropy of the next-token distribution there.
 */
export interface CausalLmItems {
  kind: 'causal-lm';
  id: string;
  sequences: number[][];
  from: number[];
  weight?: number;
}

export interface ClassificationItems {
  kind: 'classification';
  id: string;
  x: Float32Array;
  y: Int32Array | null;
  n: number;
  d: number;
  /** The classifier head scored (default: the model's first). */
  head?: string;
  /** Weight of this evaluator's loss in the sum (default 1). */
  weight?: number;
}

/** Classification manifests (their own split, normally validation; `limit` honoured) as items. */
export function classificationItemsFromManifests(manifests: ReadonlyArray<Manifest>, weights?: readonly number[]): ClassificationItems[] {
  return manifests.map((m, i) => {
    checkRefinableEvaluator(m);
    if (m.kind !== 'classification') throw new NotSupportedError('E_REFINE_EVALUATOR', `refine: evaluator ${m.id} (${m.file}) is ${m.kind}; a residual-MLP model is refined on classification evaluators`);
    const d = loadClassificationData(m, m.split);
    const n = Math.min(d.n, m.limit ?? d.n);
    return { kind: 'classification', id: m.id, x: d.x.subarray(0, n * d.d), y: d.y.subarray(0, n), n, d: d.d, ...(m.head ? { head: m.head } : {}), weight: weights?.[i] ?? 1 };
  });
}

/**
 * Text manifests as causal-LM items, tokenized by `tok` (loadTokenizer of the stage's tokenizer
 * folder) as their evaluators tokenize: choice -> context + gold option, option tokens scored;
 * perplexity -> its windows, every token after the first scored. Generate and command
 * evaluators have no differentiable target here and are refused.
 */
export function causalLmItemsFromManifests(manifests: ReadonlyArray<Manifest>, tok: TextTokenizer, maxPositions: number, weights?: readonly number[]): CausalLmItems[] {
  return manifests.map((m, i) => {
    checkRefinableEvaluator(m);
    const ev = createEvaluator(m, { purpose: 'search' });
    let items: { sequences: number[][]; from: number[] };
    if (ev instanceof ChoiceEvaluator) items = ev.goldSequences(tok, maxPositions);
    else if (ev instanceof PerplexityEvaluator) items = ev.windows(tok, maxPositions);
    else throw new NotSupportedError('E_REFINE_EVALUATOR', `refine: evaluator ${m.id} (${m.file}) is ${m.kind}; causal-LM refinement supports choice and perplexity evaluators`);
    return { kind: 'causal-lm', id: m.id, ...items, weight: weights?.[i] ?? 1 };
  });
}

/**
 * The items of a stage's evaluators as the engine lists them (EvaluatorSpec: manifest path and
 * weight), on the family of `configFrom` (the base, or the first model): classification manifests
 * for the residual MLP; choice and perplexity manifests tokenized by that model's tokenizer.
 */
export function refineItemsFromSpecs(specs: ReadonlyArray<{ manifest: string; weight: number }>, sources: SourceModels, configFrom: string): RefineItems[] {
  const manifests = specs.map((s) => loadManifest(s.manifest));
  const weights = specs.map((s) => s.weight);
  const src = sources[configFrom];
  if (!src) throw new InputError('E_REFINE_SOURCE', `refine: ${configFrom} is not among the sources`);
  if (((src.config?.architectures as string[] | undefined) ?? []).includes(MLP_ARCHITECTURE)) return classificationItemsFromManifests(manifests, weights);
  if (!src.tokenizerDir) throw new InputError('E_REFINE_TOKENIZER', `refine: ${configFrom} has no tokenizer files (tokenizer.json), which text evaluators need to turn their items into the loss's tokens; add the model's tokenizer to its folder, or remove refine`);
  const tok = loadTokenizer(src.tokenizerDir, src.config ?? {});
  return causalLmItemsFromManifests(manifests, tok, parseLlamaConfig(src.config, `${configFrom}/config.json`).maxPositions, weights);
}

export interface CoefficientGradientInput {
  codec: PsCodec;
  genome: number[];
  sources: RefineSources;
  evaluators: RefineItems[];
  loss: 'supervised' | 'entropy';
  /** Items per evaluator (a seeded sample); default all. */
  batch?: number;
  seed?: number;
}

/** A seeded sample of `batch` of `n` indices (Fisher-Yates over the project's seeded stream), in order. */
function sample(n: number, batch: number | undefined, seed: number): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  if (batch === undefined || batch >= n) return all;
  const rng = Rng.seeded(deriveSeed('refine-batch', seed));
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return all.slice(0, batch).sort((a, b) => a - b);
}

/** Mean cross-entropy (labels) or mean Shannon entropy of softmax(logits) (AdaMerging eq. 2). */
function lossOf(logits: tf.Tensor2D, y: Int32Array | null, loss: 'supervised' | 'entropy'): tf.Scalar {
  const logp = tf.logSoftmax(logits);
  if (loss === 'entropy') return tf.neg(tf.mean(tf.sum(tf.mul(tf.exp(logp), logp), 1)));
  const onehot = tf.oneHot(tf.tensor1d(y!, 'int32'), logits.shape[1]);
  return tf.neg(tf.mean(tf.sum(tf.mul(onehot, logp), 1)));
}

/**
 * Checks on the items that need their contents, applied by the preflight (./preflight.ts)
 * and again by coefficientGradient: labels for a supervised classification loss, every token
 * inside the model's vocabulary (`vocabSize`, null for a classifier), a scored token in each text
 * evaluator.
 */
export function checkRefineItems(items: ReadonlyArray<RefineItems>, loss: 'supervised' | 'entropy', vocabSize: number | null): void {
  if (items.length === 0) throw new InputError('E_REFINE_EVALUATOR', 'refine: no evaluator items to compute a loss on');
  for (const e of items) {
    if (e.kind === 'classification') {
      if (loss === 'supervised' && !e.y) throw new InputError('E_REFINE_LABELS', `refine: evaluator ${e.id} has no labels, which the supervised loss needs; use loss 'entropy'`);
      continue;
    }
    let scored = 0;
    e.sequences.forEach((s, b) => {
      if (vocabSize !== null) for (const t of s) if (!Number.isInteger(t) || t < 0 || t >= vocabSize) throw new InputError('E_TOKEN_RANGE', `refine: evaluator ${e.id} has token ${t} outside the vocabulary [0, ${vocabSize}) of the model; its tokenizer does not match the model's vocabulary`);
      scored += Math.max(0, s.length - Math.max(1, e.from[b]!));
    });
    if (scored === 0) throw new InputError('E_REFINE_ITEMS', `refine: evaluator ${e.id} has no scored tokens (every item is its context only)`);
  }
}

/**
 * The merged tensors the loss reads, from the family's own tensor list (src/models/): all of a
 * Llama-family model's; a residual MLP's but the heads no evaluator scores. The gradient is taken
 * over these only: the loss does not depend on any other tensor, so its gradient there is exactly
 * 0 and its terms of the chain rule vanish (TensorFlow.js refuses to differentiate with respect to
 * a tensor that does not lead to the loss).
 */
export function refineTensorNames(configRaw: Record<string, unknown> | null, configFile: string, items: ReadonlyArray<RefineItems>): string[] {
  const arch = (configRaw?.architectures as string[] | undefined) ?? [];
  if (!arch.includes(MLP_ARCHITECTURE)) return llamaShapesOf(parseLlamaConfig(configRaw, configFile)).map((t) => t.name);
  const config = parseResidualMlpConfig(configRaw, configFile);
  const scored = new Set(items.map((e) => scoredHead(config, e as ClassificationItems)));
  const unread = new Set(config.heads.filter((h) => !scored.has(h.name)).flatMap((h) => [`heads.${h.name}.weight`, `heads.${h.name}.bias`]));
  return residualMlpTensorShapes(config).map((t) => t.name).filter((n) => !unread.has(n));
}

/** The head a classification evaluator scores (its manifest's, else the model's first). */
function scoredHead(config: ResidualMlpConfig, e: ClassificationItems): string {
  const head = e.head ?? config.heads[0]!.name;
  if (!config.heads.some((h) => h.name === head)) throw new InputError('E_EVAL_HEAD', `refine: evaluator ${e.id} names head '${head}' but the model's heads are ${config.heads.map((h) => h.name).join(', ')}`);
  return head;
}

export async function coefficientGradient(input: CoefficientGradientInput): Promise<{ loss: number; gradient: number[] }> {
  const { codec, genome, sources, evaluators, loss } = input;
  // the preflight applies these rules before a run starts; they stay here for callers of the library
  if (!(codec instanceof PsCodec)) throw new InputError('E_REFINE_SPACE', 'refine: gradient refinement needs a parameter-space (PS) stage with one method; data-flow and multi-method stages are not refinable');
  checkRefinableMethod(codec.layout.method.id);
  await ensureGradients();
  const recipe = codec.decode(genome);
  const plan = planCandidate(recipe, sources.models);
  const cfgRaw = sources.models[plan.configFrom]?.config ?? null;
  const cfgFile = `${plan.configFrom}/config.json`;
  const arch = (cfgRaw?.architectures as string[] | undefined) ?? [];
  const isMlp = arch.includes(MLP_ARCHITECTURE);
  for (const e of evaluators) {
    if ((e.kind === 'classification') !== isMlp) throw new InputError('E_EVAL_FAMILY', `refine: evaluator ${e.id} gives ${e.kind} items but ${plan.configFrom} is ${JSON.stringify(arch)}`);
  }
  checkRefineItems(evaluators, loss, isMlp ? null : parseLlamaConfig(cfgRaw, cfgFile).vocabSize);
  const links = geneLinks(codec, genome, plan, sources.models);

  // the tensors the loss reads (task indices), and their linearisations, in float64 apart from the uploaded copy
  const names = refineTensorNames(cfgRaw, cfgFile, evaluators);
  const index = new Map(plan.tasks.map((t, i) => [t.name, i]));
  const read = names.map((n) => {
    const at = index.get(n);
    if (at === undefined) throw new InputError('E_REFINE_TENSOR', `refine: the merged model has no tensor ${n}`);
    if (plan.tasks[at]!.kind !== 'merge') throw new NotSupportedError('E_REFINE_COPY', `refine: ${n} is a non-float tensor; refinement needs float tensors only`);
    if (plan.tasks[at]!.rows) throw new NotSupportedError('E_REFINE_VOCAB', `refine: the sources' ${n} have different vocabularies (rows laid out per token, src/merge/vocab.ts), which refinement does not follow yet; refine over sources of one vocabulary`);
    return at;
  });
  const lin = linearizeTasks(plan, read, sources.models, recipe.seed);
  const slot = new Map(names.map((n, j) => [n, j]));
  const build = isMlp
    ? mlpLoss(parseResidualMlpConfig(cfgRaw, cfgFile), evaluators as ClassificationItems[], loss, input)
    : llamaLoss(parseLlamaConfig(cfgRaw, cfgFile), evaluators as CausalLmItems[], loss, input);

  const weights = read.map((ti) => tf.tensor(lin.get(ti)!.merged, plan.tasks[ti]!.shape));
  try {
    const f = (...ws: tf.Tensor[]): tf.Scalar => build.loss((n) => {
      const j = slot.get(n);
      if (j === undefined) throw new Error(`refine: the loss read ${n}, which refineTensorNames does not list`);
      return ws[j]!;
    });
    const { value, grads } = tf.valueAndGrads(f)(weights);
    const lossValue = (await value.data())[0]!;
    const G = new Map<number, Float32Array>();
    const data = await Promise.all(grads.map((g) => g.data() as Promise<Float32Array>));
    read.forEach((ti, j) => G.set(ti, data[j]!));
    value.dispose();
    grads.forEach((g) => g.dispose());
    // a tensor the loss does not read has dL/dW = 0 (./chain.ts)
    return { loss: lossValue, gradient: chainToGenes(links, lin, G, genome.length) };
  } finally {
    weights.forEach((t) => t.dispose());
    build.dispose();
  }
}

type Get = (name: string) => tf.Tensor;
interface LossBuilder { loss(get: Get): tf.Scalar; dispose(): void }

/** The classifier's loss over the evaluator's own forward (src/models/mlp.ts) on differentiable tensors. */
function mlpLoss(config: ResidualMlpConfig, evaluators: ClassificationItems[], loss: 'supervised' | 'entropy', input: CoefficientGradientInput): LossBuilder {
  const batches = evaluators.map((e, i) => {
    const rows = sample(e.n, input.batch, (input.seed ?? 0) + i * 7919);
    const x = new Float32Array(rows.length * e.d);
    rows.forEach((r, j) => x.set(e.x.subarray(r * e.d, (r + 1) * e.d), j * e.d));
    return { e, x: tf.tensor2d(x, [rows.length, e.d]), y: e.y ? Int32Array.from(rows, (r) => e.y![r]!) : null };
  });
  const heads = new Set(evaluators.map((e) => scoredHead(config, e)));
  return {
    dispose: () => batches.forEach((b) => b.x.dispose()),
    loss(get) {
      const T = (n: string) => tf.transpose(get(n)) as tf.Tensor2D; // [out, in] on disk, [in, out] in the model
      const V = (n: string) => get(n) as tf.Tensor1D;
      const ln = (p: string) => (config.norm === 'layernorm' ? { w: V(`${p}.weight`), b: V(`${p}.bias`) } : null);
      const ends: MlpEnds = { win: T('input.weight'), bin: V('input.bias'), norm: ln('norm'), heads: new Map(), config };
      // only the scored heads: a head no evaluator reads would not lead to the loss (refineTensorNames)
      for (const h of config.heads) if (heads.has(h.name)) ends.heads.set(h.name, { w: T(`heads.${h.name}.weight`), b: V(`heads.${h.name}.bias`), classes: h.classes });
      const path = Array.from({ length: config.blocks }, (_, i): { block: MlpBlock; scale: number } => ({
        block: { norm: ln(`blocks.${i}.norm`), w1: T(`blocks.${i}.fc1.weight`), b1: V(`blocks.${i}.fc1.bias`), w2: T(`blocks.${i}.fc2.weight`), b2: V(`blocks.${i}.fc2.bias`), config },
        scale: 1,
      }));
      const model = new MlpPathModel({ input: ends, head: ends, path });
      let total: tf.Scalar = tf.scalar(0);
      for (const b of batches) {
        const logits = model.forward(b.x).get(scoredHead(config, b.e))!;
        total = tf.add(total, tf.mul(lossOf(logits, b.y, loss), b.e.weight ?? 1));
      }
      return total;
    },
  };
}

/**
 * Causal-LM loss over LlamaPathModel's own forward (src/models/llama.ts), its layers and ends
 * assembled from the differentiable tensors by the family's own layout (src/models/llama-layout.ts).
 */
function llamaLoss(config: LlamaConfig, evaluators: CausalLmItems[], loss: 'supervised' | 'entropy', input: CoefficientGradientInput): LossBuilder {
  const batches = evaluators.map((e, i) => {
    const rows = sample(e.sequences.length, input.batch, (input.seed ?? 0) + i * 7919);
    const seqs = rows.map((r) => e.sequences[r]!);
    const B = seqs.length;
    const T = Math.max(...seqs.map((s) => s.length));
    const ids = new Int32Array(B * T);
    const pos: number[] = []; // flat row of logits that predicts a scored token
    const next: number[] = [];
    seqs.forEach((s, b) => {
      ids.set(s, b * T);
      for (let t = Math.max(1, e.from[rows[b]!]!); t < s.length; t++) {
        pos.push(b * T + t - 1);
        next.push(s[t]!);
      }
    });
    if (pos.length === 0) throw new InputError('E_REFINE_ITEMS', `refine: evaluator ${e.id} has no scored tokens`);
    return { e, B, T, ids: tf.tensor1d(ids, 'int32'), pos: tf.tensor1d(pos, 'int32'), next: tf.tensor1d(next, 'int32'), count: pos.length };
  });
  return {
    dispose: () => batches.forEach((b) => [b.ids, b.pos, b.next].forEach((t) => t.dispose())),
    loss(get) {
      const W = (t: LlamaTensor) => tf.transpose(get(t.name)) as tf.Tensor2D; // [out, in] -> [in, out]
      const V = (t: LlamaTensor) => get(t.name) as tf.Tensor1D;
      const ops: LlamaTensorOps = {
        stored: (t) => get(t.name) as tf.Tensor2D,
        matrix: (parts) => (parts.length === 1 ? W(parts[0]!) : (tf.concat(parts.map(W), 1) as tf.Tensor2D)),
        vector: (parts) => (parts.length === 1 ? V(parts[0]!) : (tf.concat(parts.map(V)) as tf.Tensor1D)),
        transposed: (t) => tf.transpose(t) as tf.Tensor2D,
      };
      const path = Array.from({ length: config.layers }, (_, i) => ({ layer: assembleLlamaLayer(config, i, ops), scale: 1 }));
      const ends = assembleLlamaEnds(config, ops);
      const model = new LlamaPathModel({ embed: ends, head: ends, path, tokenizer: null });
      let total: tf.Scalar = tf.scalar(0);
      for (const b of batches) {
        const logits = tf.gather(model.forwardLogits(b.ids, b.B, b.T), b.pos) as tf.Tensor2D;
        const logp = tf.logSoftmax(logits);
        const l = loss === 'entropy'
          ? tf.neg(tf.mean(tf.sum(tf.mul(tf.exp(logp), logp), 1)))
          : tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(b.next, config.vocabSize), logp), 1)));
        total = tf.add(total, tf.mul(l, b.e.weight ?? 1));
      }
      return total as tf.Scalar;
    },
  };
}
