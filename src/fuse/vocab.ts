/**
 * Vocabulary mapping for knowledge fusion: which pivot (FuseLLM: "base") token a source
 * ("blending") token's probability goes to.
 *
 * - exact: FuseLLM's "hard" alignment (src/utils/others.py `transform_step_logits`,
 *   vocab_align_type="hard": a source token counts only if the same string is in the pivot vocab).
 * - MinED: FuseLLM section 3.3 and src/utils/vocab_mapping.py (vocab_mapping_type="default",
 *   `find_best_mapping`): the exact token when it exists, else the pivot token at minimum edit
 *   distance; used by transform_step_logits with vocab_align_type="soft".
 * - statistics: FuseChat (arXiv 2402.16107, stage 1 token alignment; repo train/align_token_and_vocab.py,
 *   `--do_token_alignment`): co-occurrence counts of token pairs at DTW-aligned positions.
 *
 * Vocabularies are arrays of token strings indexed by id; `null` marks an id with no token
 * (a hole in the id range). Strings are compared after `normalizeToken`, which plays the role of
 * FuseLLM's `x.replace(blending_special_token, base_special_token)`.
 */
import { InputError } from '../errors.ts';
import { editDistance, normalizeToken } from './align.ts';

type Vocab = ReadonlyArray<string | null>;

/** Normalised string -> lowest pivot id holding it. */
function pivotIndex(pivot: Vocab): Map<string, number> {
  const byString = new Map<string, number>();
  for (let id = 0; id < pivot.length; id++) {
    const t = pivot[id];
    if (t === null || t === undefined) continue;
    const key = normalizeToken(t);
    if (!byString.has(key)) byString.set(key, id);
  }
  return byString;
}

/**
 * Source id -> pivot id of the token with the same normalised string, -1 where none (and for
 * holes). Where several pivot tokens normalise to one string (say '<0x0A>' and a literal
 * newline token), the lowest pivot id is taken.
 */
export function exactMapping(source: Vocab, pivot: Vocab): Int32Array {
  const byString = pivotIndex(pivot);
  const out = new Int32Array(source.length).fill(-1);
  for (let id = 0; id < source.length; id++) {
    const t = source[id];
    if (t === null || t === undefined) continue;
    out[id] = byString.get(normalizeToken(t)) ?? -1;
  }
  return out;
}

/**
 * Levenshtein distance if it is at most `max`, else any number above `max` (rows whose minimum
 * exceeds `max` stop the computation: every later row is at least that minimum).
 */
function editDistanceAtMost(a: string, b: string, max: number, prev: Uint32Array, cur: Uint32Array): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    let rowMin = i;
    const ca = a.charCodeAt(i - 1);
    for (let j = 1; j <= b.length; j++) {
      const sub = prev[j - 1]! + (ca === b.charCodeAt(j - 1) ? 0 : 1);
      const del = prev[j]! + 1;
      const ins = cur[j - 1]! + 1;
      const v = sub < del ? (sub < ins ? sub : ins) : del < ins ? del : ins;
      cur[j] = v;
      if (v < rowMin) rowMin = v;
    }
    if (rowMin > max) return max + 1;
    const t = prev;
    prev = cur;
    cur = t;
  }
  return prev[b.length]!;
}

/**
 * FuseLLM's MinED mapping: the pivot token with the same normalised string where one exists
 * (lowest id among several), else the pivot token whose normalised string is at minimum
 * Levenshtein distance from the source token's (FuseLLM src/utils/vocab_mapping.py
 * `find_best_mapping`, best_one=True). -1 only for holes and when the pivot vocab is empty.
 *
 * Ties: FuseLLM takes Python's `min(..., key=distance)` over `list(base_tokenizer.get_vocab())`,
 * which keeps the first minimum in that list's order; for their Llama base (slow tokenizer)
 * `get_vocab()` lists tokens in id order, so the first minimum is the lowest pivot id. We take
 * the lowest pivot id for every vocabulary (a fast tokenizer's `get_vocab()` order is a hash
 * order that no one should depend on).
 *
 * Cost: pivot tokens are visited by increasing length difference from the source token, a
 * lower bound of the distance, and the search stops once that bound passes the best distance
 * found; each distance stops early once it cannot be at most the best. Source tokens with equal
 * normalised strings are searched once.
 */
export function minEditMapping(source: Vocab, pivot: Vocab): Int32Array {
  const byString = pivotIndex(pivot);
  // distinct pivot strings (lowest id each), grouped by length
  const byLength: Array<Array<{ key: string; id: number }>> = [];
  for (const [key, id] of byString) (byLength[key.length] ??= []).push({ key, id });
  for (const group of byLength) group?.sort((x, y) => x.id - y.id);
  const maxLen = byLength.length - 1;
  const cache = new Map<string, number>();
  const out = new Int32Array(source.length).fill(-1);
  let prev = new Uint32Array(1);
  let cur = new Uint32Array(1);
  for (let sid = 0; sid < source.length; sid++) {
    const t = source[sid];
    if (t === null || t === undefined) continue;
    const key = normalizeToken(t);
    const exact = byString.get(key);
    if (exact !== undefined) {
      out[sid] = exact;
      continue;
    }
    const cached = cache.get(key);
    if (cached !== undefined) {
      out[sid] = cached;
      continue;
    }
    let bestD = Infinity;
    let bestId = -1;
    for (let gap = 0; gap <= Math.max(key.length, maxLen); gap++) {
      if (gap > bestD) break; // |len(a) - len(b)| <= distance: nothing farther can win or tie
      for (const len of gap === 0 ? [key.length] : [key.length - gap, key.length + gap]) {
        if (len < 0 || len > maxLen) continue;
        const group = byLength[len];
        if (!group) continue;
        if (prev.length < len + 1) {
          prev = new Uint32Array(len + 1);
          cur = new Uint32Array(len + 1);
        }
        for (const p of group) {
          const limit = bestD === Infinity ? Math.max(key.length, len) : bestD;
          const d = editDistanceAtMost(key, p.key, limit, prev, cur);
          if (d < bestD || (d === bestD && p.id < bestId)) {
            bestD = d;
            bestId = p.id;
          }
        }
      }
    }
    cache.set(key, bestId);
    out[sid] = bestId;
  }
  return out;
}

/** Token ids of one text in both tokenizations, with their DTW path ([source index, pivot index] pairs, `alignTokens(source, pivot)`). */
export interface AlignedPair {
  source: ArrayLike<number>;
  pivot: ArrayLike<number>;
  path: ReadonlyArray<[number, number]>;
}

/**
 * Co-occurrence counts of (source token, pivot token) at aligned positions: for each pivot
 * position, each distinct source token id aligned with it counts once.
 *
 * FuseChat (train/align_token_and_vocab.py, `--do_token_alignment`): for every base position i,
 * `token_mapping_matrix[base_id, base_to_blending_mapping[i]] += 1`, where the right side lists
 * the blending token ids aligned with i; numpy's fancy-index `+= 1` adds 1 once per distinct
 * index, so a blending id repeated within one pivot position's list counts once.
 * Returns, per source id, a map pivot id -> count.
 */
export function cooccurrenceCounts(aligned: Iterable<AlignedPair>, sourceVocabSize: number, pivotVocabSize?: number): Array<Map<number, number>> {
  const counts: Array<Map<number, number>> = Array.from({ length: sourceVocabSize }, () => new Map());
  let seq = 0;
  for (const { source, pivot, path } of aligned) {
    // group the path by pivot position (the path is monotone, so each group is contiguous)
    let k = 0;
    while (k < path.length) {
      const pj = path[k]![1];
      const seen = new Set<number>();
      for (; k < path.length && path[k]![1] === pj; k++) {
        const [si] = path[k]!;
        if (!(si >= 0 && si < source.length && pj >= 0 && pj < pivot.length)) {
          throw new InputError('E_FUSE_PATH', `aligned sequence ${seq}: path pair [${si}, ${pj}] is outside the source (${source.length} tokens) or pivot (${pivot.length} tokens) sequence; pass the path alignTokens(source, pivot) returned for these same sequences`);
        }
        seen.add(source[si]!);
      }
      const pid = pivot[pj]!;
      if (pivotVocabSize !== undefined && !(pid >= 0 && pid < pivotVocabSize)) {
        throw new InputError('E_FUSE_TOKEN_ID', `aligned sequence ${seq}: pivot token id ${pid} at position ${pj} is outside the pivot vocabulary of ${pivotVocabSize}`);
      }
      for (const sid of seen) {
        if (!(Number.isInteger(sid) && sid >= 0 && sid < sourceVocabSize)) {
          throw new InputError('E_FUSE_TOKEN_ID', `aligned sequence ${seq}: source token id ${sid} is outside the source vocabulary of ${sourceVocabSize}; pass the source model's vocabulary size`);
        }
        const row = counts[sid]!;
        row.set(pid, (row.get(pid) ?? 0) + 1);
      }
    }
    seq++;
  }
  return counts;
}

/**
 * Statistics-based mapping (FuseChat stage 1): count (source token, pivot token) co-occurrences
 * at aligned positions over the aligned sequences of the same texts (`cooccurrenceCounts`) and
 * map each source token to its most frequent pivot partner, the lowest pivot id among equally
 * frequent ones; a source token never seen takes `fallback[id]` (for example `minEditMapping`).
 *
 * FuseChat's code then picks the partner differently (`token_align_mapping`): among the pivot
 * tokens seen with a source token, the one minimising sigmoid(count) * editDistance, the distance
 * scaled by 0.1 when one string contains the other, unseen tokens going to the unknown token.
 * This function is the FuseChat paper's rule (most frequent partner); `fuseChatMapping` over
 * `cooccurrenceCounts` is FuseChat's code's rule.
 */
export function statisticsMapping(aligned: Iterable<AlignedPair>, sourceVocabSize: number, fallback: Int32Array): Int32Array {
  if (fallback.length !== sourceVocabSize) {
    throw new InputError('E_FUSE_FALLBACK', `statisticsMapping: the fallback mapping has ${fallback.length} entries but the source vocabulary ${sourceVocabSize}; pass a mapping of the source vocabulary (e.g. minEditMapping(source, pivot))`);
  }
  const counts = cooccurrenceCounts(aligned, sourceVocabSize);
  const out = Int32Array.from(fallback);
  for (let sid = 0; sid < sourceVocabSize; sid++) {
    let best = -1;
    let bestCount = 0;
    for (const [pid, c] of counts[sid]!) {
      if (c > bestCount || (c === bestCount && pid < best)) {
        best = pid;
        bestCount = c;
      }
    }
    if (best >= 0) out[sid] = best;
  }
  return out;
}

/**
 * FuseChat's own choice of partner from the co-occurrence counts (train/align_token_and_vocab.py,
 * `token_align_mapping`, called with the count matrix transposed to give blending -> base, and
 * `transform_step_logits`, which tries the exact token first):
 * - the pivot token with the same normalised string, where one exists (lowest id among several);
 * - else, among the pivot tokens seen with it (count > 0), the one minimising
 *   sigmoid(count) * d, where d = editDistance of the two strings with markers removed, times 0.1
 *   when one string contains the other; ties to the lowest pivot id (numpy argmin over the
 *   non-zero ids in increasing order);
 * - else `unknownId` (FuseChat maps an unseen token to the unknown token).
 * Since sigmoid(count) lies in [0.73, 1) for every count >= 1, the rule is mostly the edit
 * distance among partners actually seen; a higher count slightly raises the score. FuseChat also
 * forces bos -> bos and eos -> eos; set those entries yourself if your vocabularies have them.
 */
export function fuseChatMapping(counts: ReadonlyArray<ReadonlyMap<number, number>>, source: Vocab, pivot: Vocab, unknownId: number): Int32Array {
  if (counts.length !== source.length) {
    throw new InputError('E_FUSE_COUNTS', `fuseChatMapping: ${counts.length} count rows for a source vocabulary of ${source.length}; pass cooccurrenceCounts(aligned, source.length)`);
  }
  const byString = pivotIndex(pivot);
  const strip = (t: string) => normalizeToken(t).replaceAll(' ', '');
  const out = new Int32Array(source.length).fill(unknownId);
  for (let sid = 0; sid < source.length; sid++) {
    const t = source[sid];
    if (t === null || t === undefined) {
      out[sid] = -1;
      continue;
    }
    const exact = byString.get(normalizeToken(t));
    if (exact !== undefined) {
      out[sid] = exact;
      continue;
    }
    const a = strip(t);
    let best = -1;
    let bestScore = Infinity;
    for (const pid of [...counts[sid]!.keys()].sort((x, y) => x - y)) {
      const c = counts[sid]!.get(pid)!;
      const p = pivot[pid];
      if (!(c > 0) || p === null || p === undefined) continue;
      const b = strip(p);
      const w = a.includes(b) || b.includes(a) ? 0.1 : 1;
      const score = (1 / (1 + Math.exp(-c))) * editDistance(a, b) * w;
      if (score < bestScore) {
        bestScore = score;
        best = pid;
      }
    }
    if (best >= 0) out[sid] = best;
  }
  return out;
}
