/**
 * Top-k next-token distributions and their transfer onto the pivot's positions and vocabulary
 * (FuseLLM, Wan et al., ICLR 2024, arXiv 2401.10491, section 3.3 and appendix; repo
 * src/utils/forward_for_logits.py, src/utils/others.py `transform_step_logits`,
 * src/utils/data_collator.py `DataCollatorForDistill`).
 *
 * Position convention, the same as FuseLLM's stored `per_step_logits`: the row at position t of
 * a sequence is the model's distribution after reading tokens 0..t, that is its prediction of
 * token t+1 (forward_for_logits keeps the logits unshifted; its cross-entropy pairs
 * logits[..., :-1] with labels[..., 1:]). The gold of position t is token t+1; the last position
 * has none.
 */
import { InputError } from '../errors.ts';

/**
 * Top-k next-token distributions of one sequence: position t holds k (id, prob) pairs, ids in
 * the owner's vocabulary; probs >= 0, rows sum to 1 (renormalised top-k). `ids` and `probs` are
 * [length * k], row-major. Within a row, entries are sorted by probability, highest first (ties:
 * lower id first). A row with fewer than k entries is padded with id -1 and probability 0; a row
 * of padding only (sum 0) is an empty row, which only `mapTopK` makes, at a position that needs
 * its fallback but has no gold token (see there).
 */
export interface TopK {
  length: number;
  k: number;
  ids: Int32Array;
  probs: Float32Array;
}

/** Check a TopK's shape; `what` names it in the message. */
export function checkTopK(d: TopK, what: string): void {
  if (!Number.isInteger(d.length) || d.length < 0 || !Number.isInteger(d.k) || d.k < 1) {
    throw new InputError('E_FUSE_TOPK', `${what}: length ${d.length} and k ${d.k} must be a non-negative and a positive integer`);
  }
  if (d.ids.length !== d.length * d.k || d.probs.length !== d.length * d.k) {
    throw new InputError('E_FUSE_TOPK', `${what}: ids has ${d.ids.length} and probs ${d.probs.length} entries, but length ${d.length} x k ${d.k} needs ${d.length * d.k}`);
  }
}

function checkK(k: number, where: string): void {
  if (!Number.isInteger(k) || k < 1) throw new InputError('E_FUSE_K', `${where}: k must be a positive integer, got ${k}`);
}

/**
 * Sort a row's (id, prob) entries (probability descending, id ascending on ties), keep the
 * first k, renormalise them to sum 1 and write them at row `t` of `ids`/`probs`, padding with
 * (-1, 0). Entries of zero total mass leave the row empty. Returns whether the row has mass.
 */
export function setTopKRow(entryIds: number[], entryProbs: number[], k: number, ids: Int32Array, probs: Float32Array, t: number): boolean {
  const order = entryIds.map((_, i) => i);
  order.sort((a, b) => entryProbs[b]! - entryProbs[a]! || entryIds[a]! - entryIds[b]!);
  const n = Math.min(k, order.length);
  let sum = 0;
  for (let s = 0; s < n; s++) sum += entryProbs[order[s]!]!;
  const base = t * k;
  ids.fill(-1, base, base + k);
  probs.fill(0, base, base + k);
  if (!(sum > 0)) return false;
  for (let s = 0; s < n; s++) {
    ids[base + s] = entryIds[order[s]!]!;
    probs[base + s] = entryProbs[order[s]!]! / sum;
  }
  return true;
}

/**
 * Top-k of a [length, vocab] row-major logits array: softmax, top k, renormalised.
 *
 * The renormalised top-k of softmax(x) is softmax over the k largest logits alone (the full
 * normaliser cancels), which is what FuseLLM computes: forward_for_logits.py stores
 * `torch.topk(logits, k)` and DataCollatorForDistill takes `softmax(top_k_logits / T)` with
 * T = distill_teacher_temperature, 1 by default. Selection is a k-entry min-heap per row,
 * O(vocab log k), not a sort of the row. Equal logits: the lower id is kept and listed first.
 * NaN or +Infinity logits are refused; -Infinity is probability 0.
 */
export function topKFromLogits(logits: Float32Array, length: number, vocab: number, k: number): TopK {
  checkK(k, 'topKFromLogits');
  if (!Number.isInteger(length) || length < 0 || !Number.isInteger(vocab) || vocab < 1) {
    throw new InputError('E_FUSE_TOPK', `topKFromLogits: length ${length} and vocab ${vocab} must be a non-negative and a positive integer`);
  }
  if (k > vocab) throw new InputError('E_FUSE_K', `topKFromLogits: k = ${k} is larger than the vocabulary (${vocab}); use k <= ${vocab}`);
  if (logits.length !== length * vocab) {
    throw new InputError('E_FUSE_TOPK', `topKFromLogits: ${logits.length} logits for length ${length} x vocab ${vocab} (${length * vocab} expected); pass one row of logits per position`);
  }
  const ids = new Int32Array(length * k);
  const probs = new Float32Array(length * k);
  // heap of k (value, id), the root the entry that leaves first: smallest value, then largest id
  const hv = new Float64Array(k);
  const hi = new Int32Array(k);
  const before = (a: number, b: number) => hv[a]! < hv[b]! || (hv[a] === hv[b] && hi[a]! > hi[b]!);
  const siftDown = (size: number) => {
    let p = 0;
    for (;;) {
      const l = 2 * p + 1;
      const r = l + 1;
      let m = p;
      if (l < size && before(l, m)) m = l;
      if (r < size && before(r, m)) m = r;
      if (m === p) return;
      const tv = hv[p]!, ti = hi[p]!;
      hv[p] = hv[m]!, hi[p] = hi[m]!;
      hv[m] = tv, hi[m] = ti;
      p = m;
    }
  };
  const siftUp = (c: number) => {
    while (c > 0) {
      const p = (c - 1) >> 1;
      if (!before(c, p)) return;
      const tv = hv[p]!, ti = hi[p]!;
      hv[p] = hv[c]!, hi[p] = hi[c]!;
      hv[c] = tv, hi[c] = ti;
      c = p;
    }
  };
  const order = Array.from({ length: k }, (_, i) => i);
  for (let t = 0; t < length; t++) {
    const row = t * vocab;
    let size = 0;
    for (let v = 0; v < vocab; v++) {
      const x = logits[row + v]!;
      if (Number.isNaN(x) || x === Infinity) {
        throw new InputError('E_FUSE_LOGITS', `topKFromLogits: logit of token ${v} at position ${t} is ${x}; the model produced non-finite logits (check its dtype and weights)`);
      }
      if (size < k) {
        hv[size] = x;
        hi[size] = v;
        siftUp(size++);
      } else if (x > hv[0]!) {
        // a later id never displaces an equal value: the lower id stays
        hv[0] = x;
        hi[0] = v;
        siftDown(size);
      }
    }
    order.sort((a, b) => hv[b]! - hv[a]! || hi[a]! - hi[b]!);
    const max = hv[order[0]!]!;
    if (max === -Infinity) throw new InputError('E_FUSE_LOGITS', `topKFromLogits: every logit at position ${t} is -Infinity; the row has no distribution`);
    let sum = 0;
    for (let s = 0; s < k; s++) sum += Math.exp(hv[order[s]!]! - max);
    for (let s = 0; s < k; s++) {
      ids[t * k + s] = hi[order[s]!]!;
      probs[t * k + s] = Math.exp(hv[order[s]!]! - max) / sum;
    }
  }
  return { length, k, ids, probs };
}

/** Token ids of both sequences, for FuseLLM's check that aligned tokens agree (see `mapTopK`). */
export interface MapTopKOptions {
  /** The source sequence's token ids (src.length of them). */
  sourceTokens?: ArrayLike<number>;
  /** The pivot sequence's token ids (pivotLength of them). */
  pivotTokens?: ArrayLike<number>;
}

/**
 * Map a source sequence's TopK onto the pivot's positions and vocabulary.
 *
 * Positions (FuseLLM src/utils/others.py `transform_step_logits`, which walks `base_to_blending`,
 * the DTW path grouped by pivot position):
 * - pivot position t aligned with exactly one source position j: the source row at j, with no
 *   shift. Row j predicts the source token after j, row t the pivot token after t; when tokens j
 *   and t end at the same place in the text both predict what follows that place. FuseLLM makes
 *   sure of it by requiring the two aligned tokens to agree (`base_token == blending_token`, or
 *   the blending token's mapping equals the base token for vocab_align_type="soft"): with
 *   `options.sourceTokens` and `options.pivotTokens` we apply that check as
 *   `mapping[sourceTokens[j]] === pivotTokens[t]`. Without them we check what it stands for from
 *   the path alone: t must be the last pivot position aligned with j (source 'hello' against
 *   pivot 'hel', 'lo': the row after 'hello' is used for 'lo', not for 'hel'). A failed check takes
 *   the fallback.
 * - pivot position t aligned with several source positions (one pivot token, several source
 *   tokens): the fallback, as FuseLLM ("one base token map to multiple blending token ... use the
 *   one-hot logits").
 * Vocabulary: each source id goes through `mapping` (source id -> pivot id); ids mapped to -1 are
 * dropped. Pivot ids reached by several source ids are merged by summing their probabilities
 * (FuseLLM keeps only the first, highest, of them and drops the rest; the sum keeps the mass
 * the source model put on that pivot token). Then the k most probable are kept and renormalised:
 * FuseLLM's collator takes softmax over the kept logits, which is the same renormalisation.
 * Fallback: the one-hot of the pivot's gold next token `pivotGold[t]` (the pivot's token t+1).
 * FuseLLM's code one-hots `base_model_tokens[i]`, the pivot's token at t itself, while the row at
 * t is trained against the prediction of token t+1 (its trainer applies no shift to the target
 * distributions): we take the next token, the one the position predicts. Where every mapped id
 * was dropped, FuseLLM's collator uses the pivot model's own distribution ("bad case"); without
 * it here, that position also takes the one-hot fallback. A fallback at a position whose gold is
 * negative (the last position, which predicts past the text) leaves the row empty.
 */
export function mapTopK(src: TopK, path: ReadonlyArray<[number, number]>, mapping: Int32Array, pivotLength: number, pivotGold: Int32Array, k: number, options: MapTopKOptions = {}): TopK {
  checkTopK(src, 'mapTopK source distributions');
  checkK(k, 'mapTopK');
  if (pivotGold.length !== pivotLength) {
    throw new InputError('E_FUSE_GOLD', `mapTopK: pivotGold has ${pivotGold.length} entries for a pivot sequence of ${pivotLength}; pass the pivot's token t+1 at each position t (-1 at the last)`);
  }
  const { sourceTokens, pivotTokens } = options;
  if ((sourceTokens === undefined) !== (pivotTokens === undefined)) {
    throw new InputError('E_FUSE_TOKENS', 'mapTopK: pass both sourceTokens and pivotTokens, or neither');
  }
  if (sourceTokens && pivotTokens && (sourceTokens.length !== src.length || pivotTokens.length !== pivotLength)) {
    throw new InputError('E_FUSE_TOKENS', `mapTopK: ${sourceTokens.length} source and ${pivotTokens.length} pivot tokens for sequences of ${src.length} and ${pivotLength}`);
  }
  // per pivot position: how many source positions align with it, and the (last) one
  const count = new Int32Array(pivotLength);
  const srcOf = new Int32Array(pivotLength).fill(-1);
  // per source position: the last pivot position aligned with it
  const lastPivot = new Int32Array(src.length).fill(-1);
  for (let s = 0; s < path.length; s++) {
    const [j, t] = path[s]!;
    if (!(Number.isInteger(j) && Number.isInteger(t) && j >= 0 && j < src.length && t >= 0 && t < pivotLength)) {
      throw new InputError('E_FUSE_PATH', `mapTopK: path pair ${s} [${j}, ${t}] is outside the source (${src.length}) or pivot (${pivotLength}) sequence; pass alignTokens(sourceTokens, pivotTokens) for these sequences`);
    }
    if (srcOf[t] !== j) count[t]!++;
    srcOf[t] = j;
    if (t > lastPivot[j]!) lastPivot[j] = t;
  }
  for (let t = 0; t < pivotLength; t++) {
    if (count[t] === 0) throw new InputError('E_FUSE_PATH', `mapTopK: pivot position ${t} is on no pair of the path; the path must cover every position of both sequences`);
  }
  const ids = new Int32Array(pivotLength * k);
  const probs = new Float32Array(pivotLength * k);
  const eIds: number[] = [];
  const eProbs: number[] = [];
  for (let t = 0; t < pivotLength; t++) {
    eIds.length = 0;
    eProbs.length = 0;
    if (count[t] === 1) {
      const j = srcOf[t]!;
      const agree = sourceTokens && pivotTokens
        ? mapping[sourceTokens[j]!] === pivotTokens[t]
        : lastPivot[j] === t;
      if (agree) {
        for (let s = 0; s < src.k; s++) {
          const id = src.ids[j * src.k + s]!;
          const p = src.probs[j * src.k + s]!;
          if (id < 0 || !(p > 0)) continue;
          if (id >= mapping.length) {
            throw new InputError('E_FUSE_TOKEN_ID', `mapTopK: source id ${id} at position ${j} is outside the mapping (${mapping.length} source ids); pass the mapping of this source's vocabulary`);
          }
          const pid = mapping[id]!;
          if (pid < 0) continue;
          const at = eIds.indexOf(pid);
          if (at >= 0) eProbs[at]! += p;
          else {
            eIds.push(pid);
            eProbs.push(p);
          }
        }
      }
    }
    if (setTopKRow(eIds, eProbs, k, ids, probs, t)) continue;
    const gold = pivotGold[t]!;
    if (gold >= 0) setTopKRow([gold], [1], k, ids, probs, t);
  }
  return { length: pivotLength, k, ids, probs };
}
