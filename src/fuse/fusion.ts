/**
 * Fusion of several sources' distributions on the pivot's positions: FuseLLM's MinCE and AvgCE
 * (Wan et al., ICLR 2024, arXiv 2401.10491, section 3.3 "Fusion strategy"; repo
 * src/utils/trainer.py `DistillTrainer.compute_loss`, src/utils/forward_for_logits.py `metric_ce`).
 *
 * All distributions are on the pivot's positions and vocabulary (the pivot's own TopK, and each
 * source's TopK after `mapTopK`), and `gold[t]` is the pivot's token t+1 (negative where a
 * position has no next token, as the last one). In FuseLLM the pivot ("base") model's own
 * distribution is one of the candidates; pass it among `dists` (first, to get FuseLLM's order).
 */
import { InputError } from '../errors.ts';
import { type TopK, checkTopK, setTopKRow } from './distributions.ts';

/**
 * Probability floor in the gold cross-entropy: a gold token outside a row's top k has
 * probability 0 there, and -log 0 is infinite; it counts as -log(1e-8) = 18.42 instead.
 * FuseLLM's `metric_ce` has no such case: it is the cross-entropy of the full softmax.
 */
export const GOLD_PROB_FLOOR = 1e-8;

/** Probability of token `gold` in row t (0 when outside the row). */
function probOf(d: TopK, t: number, gold: number): number {
  const base = t * d.k;
  for (let s = 0; s < d.k; s++) if (d.ids[base + s] === gold) return d.probs[base + s]!;
  return 0;
}

function checkGold(d: TopK, gold: Int32Array, where: string): void {
  if (gold.length !== d.length) {
    throw new InputError('E_FUSE_GOLD', `${where}: ${gold.length} gold tokens for ${d.length} positions; pass the pivot's token t+1 at each position t (-1 at the last)`);
  }
}

/**
 * Cross-entropy of a distribution sequence on the gold next tokens: the mean over positions
 * with a gold token (gold >= 0) of -log max(p(gold), GOLD_PROB_FLOOR); NaN when no position has
 * one. FuseLLM forward_for_logits.py: per-token cross_entropy(logits[:-1], labels[1:]), averaged
 * over the attended positions (`metric_ce`); here from the top-k rows, hence the floor.
 */
export function goldCrossEntropy(d: TopK, gold: Int32Array, floor = GOLD_PROB_FLOOR): number {
  checkTopK(d, 'goldCrossEntropy');
  checkGold(d, gold, 'goldCrossEntropy');
  let sum = 0;
  let n = 0;
  for (let t = 0; t < d.length; t++) {
    const g = gold[t]!;
    if (g < 0) continue;
    sum += -Math.log(Math.max(probOf(d, t, g), floor));
    n++;
  }
  return n === 0 ? NaN : sum / n;
}

export type FusionGranularity = 'sequence' | 'position';

export interface FusionOptions {
  /**
   * Per-source sequence cross-entropies to use instead of `goldCrossEntropy` of each
   * distribution (granularity 'sequence' only). FuseLLM scores each model by its own
   * cross-entropy on its own tokenization of the text, computed from the full softmax
   * (`metric_ce` of forward_for_logits.py, carried into the aligned dataset); pass those here to
   * reproduce it exactly.
   */
  crossEntropies?: ArrayLike<number>;
  /** Probability floor of the per-position and sequence cross-entropies (default GOLD_PROB_FLOOR). */
  floor?: number;
}

function checkDists(dists: readonly TopK[], gold: Int32Array, k: number, where: string, granularity: string, options: FusionOptions): number {
  if (dists.length === 0) throw new InputError('E_FUSE_NO_SOURCES', `${where}: no distributions to fuse; pass at least one`);
  if (!Number.isInteger(k) || k < 1) throw new InputError('E_FUSE_K', `${where}: k must be a positive integer, got ${k}`);
  if (granularity !== 'sequence' && granularity !== 'position') {
    throw new InputError('E_FUSE_GRANULARITY', `${where}: granularity '${granularity}' is neither 'sequence' nor 'position'`);
  }
  const length = dists[0]!.length;
  dists.forEach((d, s) => {
    checkTopK(d, `${where} source ${s}`);
    if (d.length !== length) throw new InputError('E_FUSE_LENGTH', `${where}: source ${s} has ${d.length} positions, source 0 has ${length}; map every source onto the pivot's positions first (mapTopK)`);
  });
  checkGold(dists[0]!, gold, where);
  if (options.crossEntropies !== undefined) {
    if (granularity !== 'sequence') throw new InputError('E_FUSE_GRANULARITY', `${where}: crossEntropies are per sequence; they cannot drive granularity 'position'`);
    if (options.crossEntropies.length !== dists.length) throw new InputError('E_FUSE_CE', `${where}: ${options.crossEntropies.length} cross-entropies for ${dists.length} sources`);
  }
  return length;
}

/** Per-source cross-entropy of the whole sequence (option or computed). */
function sequenceCE(dists: readonly TopK[], gold: Int32Array, options: FusionOptions): number[] {
  const floor = options.floor ?? GOLD_PROB_FLOOR;
  return dists.map((d, s) => (options.crossEntropies ? options.crossEntropies[s]! : goldCrossEntropy(d, gold, floor)));
}

/** Cross-entropy of every source at position t (NaN where gold[t] < 0). */
function positionCE(dists: readonly TopK[], gold: Int32Array, t: number, floor: number): number[] {
  const g = gold[t]!;
  return dists.map((d) => (g < 0 ? NaN : -Math.log(Math.max(probOf(d, t, g), floor))));
}

/** Index of the smallest score, the first among equals; NaN never wins unless all are NaN (then 0). */
function argminFirst(scores: readonly number[]): number {
  let best = 0;
  let bestV = Infinity;
  let any = false;
  for (let s = 0; s < scores.length; s++) {
    const v = scores[s]!;
    if (Number.isNaN(v)) continue;
    if (!any || v < bestV) {
      best = s;
      bestV = v;
      any = true;
    }
  }
  return best;
}

/**
 * AvgCE weights: softmax over sources of the reward exp(-CE). FuseLLM trainer.py
 * (`distill_weighted_as_gt`): `reward = 1 / exp(metric_ce)`, `normalized_weights =
 * softmax(stack(rewards))`; the softmax is applied to exp(-CE), not to -CE. NaN scores (no gold)
 * all round give equal weights.
 */
function avgWeights(ce: readonly number[]): number[] {
  if (ce.every((v) => Number.isNaN(v))) return ce.map(() => 1 / ce.length);
  const reward = ce.map((v) => (Number.isNaN(v) ? 0 : Math.exp(-v)));
  const max = Math.max(...reward);
  const e = reward.map((r) => Math.exp(r - max));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
}

/** Rows combined with weights w (ids merged by summing), top k kept and renormalised into row t. */
function weightedRow(dists: readonly TopK[], w: readonly number[], t: number, k: number, ids: Int32Array, probs: Float32Array, eIds: number[], eProbs: number[]): void {
  eIds.length = 0;
  eProbs.length = 0;
  const index = new Map<number, number>();
  dists.forEach((d, s) => {
    const ws = w[s]!;
    if (!(ws > 0)) return;
    const base = t * d.k;
    for (let q = 0; q < d.k; q++) {
      const id = d.ids[base + q]!;
      const p = d.probs[base + q]!;
      if (id < 0 || !(p > 0)) continue;
      const at = index.get(id);
      if (at === undefined) {
        index.set(id, eIds.length);
        eIds.push(id);
        eProbs.push(ws * p);
      } else eProbs[at]! += ws * p;
    }
  });
  setTopKRow(eIds, eProbs, k, ids, probs, t);
}

/**
 * FuseLLM's MinCE: the distribution of the source with the lowest cross-entropy on the gold
 * text (the first such source on ties; a source with a NaN score never wins).
 *
 * Granularity: FuseLLM picks per sequence. forward_for_logits.py reduces the per-token
 * cross-entropy to one `metric_ce` per sequence, and trainer.py (`distill_greater_as_gt`) expands
 * `reward = 1 / exp(metric_ce)` over every position and vocabulary entry before
 * `argmax(stacked_rewards)`, so a whole sequence comes from one source; that is the default here.
 * torch.argmax returns the first maximum, hence the first source on ties (their branch with two
 * aligned sources and no base uses `torch.where(r0 > r1, d0, d1)`, which gives the second on a
 * tie; we keep one rule). 'position' picks per position by -log p(gold[t]); positions without a
 * gold take source 0. FuseLLM's token_alignment.py and FuseChat's align_token_and_vocab.py both
 * offer the two levels as `--metric_level sequence|token`, default `sequence`; at `token` they
 * carry each model's per-token CE of its own tokenization, not re-aligned, where we score the
 * aligned rows on the pivot's gold.
 * The chosen rows are cut to the k most probable and renormalised (padded if k is larger).
 */
export function fuseMinCE(dists: readonly TopK[], gold: Int32Array, k: number, granularity: FusionGranularity = 'sequence', options: FusionOptions = {}): TopK {
  const length = checkDists(dists, gold, k, 'fuseMinCE', granularity, options);
  const floor = options.floor ?? GOLD_PROB_FLOOR;
  const ids = new Int32Array(length * k);
  const probs = new Float32Array(length * k);
  const eIds: number[] = [];
  const eProbs: number[] = [];
  const chosen = granularity === 'sequence' ? argminFirst(sequenceCE(dists, gold, options)) : -1;
  for (let t = 0; t < length; t++) {
    const s = chosen >= 0 ? chosen : argminFirst(positionCE(dists, gold, t, floor));
    weightedRow([dists[s]!], [1], t, k, ids, probs, eIds, eProbs);
  }
  return { length, k, ids, probs };
}

/**
 * FuseLLM's AvgCE: the weighted average of the sources' distributions, weights
 * softmax over sources of exp(-CE) (trainer.py `distill_weighted_as_gt`: `reward = 1 /
 * exp(metric_ce)`, `softmax(stack(rewards))`). The paper's section 3.3 only says the weights
 * follow the CE scores; the code's softmax of exp(-CE) is what we follow. Per sequence by default
 * (FuseLLM's `metric_ce` is per sequence); 'position' weights each position by its own
 * -log p(gold[t]), equal weights where there is no gold. FuseLLM keeps the dense average over
 * the vocabulary; here the union of the sources' entries is cut to the k most probable and
 * renormalised.
 */
export function fuseAvgCE(dists: readonly TopK[], gold: Int32Array, k: number, granularity: FusionGranularity = 'sequence', options: FusionOptions = {}): TopK {
  const length = checkDists(dists, gold, k, 'fuseAvgCE', granularity, options);
  const floor = options.floor ?? GOLD_PROB_FLOOR;
  const ids = new Int32Array(length * k);
  const probs = new Float32Array(length * k);
  const eIds: number[] = [];
  const eProbs: number[] = [];
  const seqWeights = granularity === 'sequence' ? avgWeights(sequenceCE(dists, gold, options)) : null;
  for (let t = 0; t < length; t++) {
    const w = seqWeights ?? avgWeights(positionCE(dists, gold, t, floor));
    weightedRow(dists, w, t, k, ids, probs, eIds, eProbs);
  }
  return { length, k, ids, probs };
}
