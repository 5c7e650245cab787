import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { CheckpointFormatError, InputError } from '../src/errors.ts';
import { writeSafetensors } from '../src/checkpoint/safetensors.ts';
import {
  type TopK,
  GOLD_PROB_FLOOR,
  alignTokens,
  exactMapping,
  fuseAvgCE,
  fuseMinCE,
  goldCrossEntropy,
  mapTopK,
  readDistributions,
  topKFromLogits,
  writeDistributions,
} from '../src/fuse/index.ts';
import { tempDir } from './helpers/tmp.ts';

/** A TopK from rows of [id, prob] pairs, padded with (-1, 0) to k. */
function topk(k: number, rows: Array<Array<[number, number]>>): TopK {
  const ids = new Int32Array(rows.length * k).fill(-1);
  const probs = new Float32Array(rows.length * k);
  rows.forEach((row, t) => row.forEach(([id, p], s) => {
    ids[t * k + s] = id;
    probs[t * k + s] = p;
  }));
  return { length: rows.length, k, ids, probs };
}

/** Rows of a TopK as [id, prob] pairs, padding left out, probabilities rounded to 1e-6. */
function rowsOf(d: TopK): Array<Array<[number, number]>> {
  const out: Array<Array<[number, number]>> = [];
  for (let t = 0; t < d.length; t++) {
    const row: Array<[number, number]> = [];
    for (let s = 0; s < d.k; s++) if (d.ids[t * d.k + s]! >= 0) row.push([d.ids[t * d.k + s]!, Math.round(d.probs[t * d.k + s]! * 1e6) / 1e6]);
    out.push(row);
  }
  return out;
}

const r6 = (x: number) => Math.round(x * 1e6) / 1e6;
const isInput = (code: string) => (e: unknown) => e instanceof InputError && e.code === code;

// ---------------------------------------------------------------- topKFromLogits

test('topKFromLogits renormalises the top k of the softmax', () => {
  // probabilities proportional to 1, 2, 3, 4: the top 2 are ids 3 and 2 with 4/7 and 3/7
  const d = topKFromLogits(Float32Array.from([0, Math.log(2), Math.log(3), Math.log(4)]), 1, 4, 2);
  assert.deepEqual(rowsOf(d), [[[3, r6(4 / 7)], [2, r6(3 / 7)]]]);
  // k = vocab: the full softmax, 1/10 .. 4/10
  assert.deepEqual(rowsOf(topKFromLogits(Float32Array.from([0, Math.log(2), Math.log(3), Math.log(4)]), 1, 4, 4)), [[[3, 0.4], [2, 0.3], [1, 0.2], [0, 0.1]]]);
});

test('topKFromLogits keeps the lower id among equal logits', () => {
  assert.deepEqual(rowsOf(topKFromLogits(Float32Array.from([1, 5, 5, 0]), 1, 4, 1)), [[[1, 1]]]);
  assert.deepEqual(rowsOf(topKFromLogits(Float32Array.from([7, 7, 7, 7]), 1, 4, 2)), [[[0, 0.5], [1, 0.5]]]);
});

test('topKFromLogits agrees with a full sort on random rows', () => {
  let seed = 3;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const length = 20;
  const vocab = 50;
  const k = 7;
  const logits = Float32Array.from({ length: length * vocab }, () => Math.round((rand() * 8 - 4) * 4) / 4); // coarse: many ties
  const d = topKFromLogits(logits, length, vocab, k);
  for (let t = 0; t < length; t++) {
    const row = Array.from(logits.subarray(t * vocab, (t + 1) * vocab), (x, id) => ({ x, id }));
    row.sort((a, b) => b.x - a.x || a.id - b.id);
    const top = row.slice(0, k);
    const z = top.reduce((s, e) => s + Math.exp(e.x - top[0]!.x), 0);
    assert.deepEqual(Array.from(d.ids.subarray(t * k, (t + 1) * k)), top.map((e) => e.id));
    top.forEach((e, s) => assert.ok(Math.abs(d.probs[t * k + s]! - Math.exp(e.x - top[0]!.x) / z) < 1e-6));
  }
});

test('topKFromLogits refuses NaN logits, k above the vocabulary and a wrong logits size', () => {
  assert.throws(() => topKFromLogits(Float32Array.from([0, NaN]), 1, 2, 1), (e: unknown) => isInput('E_FUSE_LOGITS')(e) && /position 0/.test((e as Error).message));
  assert.throws(() => topKFromLogits(Float32Array.from([0, 1]), 1, 2, 3), isInput('E_FUSE_K'));
  assert.throws(() => topKFromLogits(Float32Array.from([0, 1, 2]), 1, 2, 1), isInput('E_FUSE_TOPK'));
});

// ---------------------------------------------------------------- mapTopK

// source vocab: 0 'hello', 1 'Ġworld', 2 '!', 3 'Ġthere', 4 'Ġearth'
// pivot vocab:  0 '▁hel', 1 'lo', 2 '▁world', 3 '!', 4 '▁earth', 5 '▁there'
const srcVocab = ['hello', 'Ġworld', '!', 'Ġthere', 'Ġearth'];
const pivVocab = ['▁hel', 'lo', '▁world', '!', '▁earth', '▁there'];
const mapping = exactMapping(srcVocab, pivVocab); // [-1, 2, 3, 5, 4]
// text "hello world!": source [hello, Ġworld, !], pivot [▁hel, lo, ▁world, !]
const path = alignTokens(['hello', 'Ġworld', '!'], ['▁hel', 'lo', '▁world', '!']);
// source rows: row j predicts the source token after j
const src = topk(3, [
  [[1, 0.5], [4, 0.3], [3, 0.2]], // after 'hello': world .5, earth .3, there .2
  [[2, 0.6], [0, 0.3], [1, 0.1]], // after 'world': ! .6, hello .3, world .1
  [[0, 1]], // after '!': hello 1
]);
// gold of pivot position t is the pivot's token t+1: lo, world, !, (none)
const pivotGold = Int32Array.from([1, 2, 3, -1]);

test('the exact mapping and the DTW path of the example are the hand-computed ones', () => {
  assert.deepEqual(Array.from(mapping), [-1, 2, 3, 5, 4]);
  assert.deepEqual(path, [[0, 0], [0, 1], [1, 2], [2, 3]]);
});

test('mapTopK moves each source row to the pivot position that ends where its token ends, and one-hots the gold next token elsewhere', () => {
  const d = mapTopK(src, path, mapping, 4, pivotGold, 3);
  assert.deepEqual(rowsOf(d), [
    // t=0 '▁hel': aligned with 'hello' only, but 'hello' also covers 'lo', so the row after 'hello'
    // does not predict what follows 'hel': one-hot of the gold next token, 'lo' (1), not '▁hel'
    [[1, 1]],
    // t=1 'lo': 'hello' ends here; its row mapped: world->2 .5, earth->4 .3, there->5 .2
    [[2, 0.5], [4, 0.3], [5, 0.2]],
    // t=2 '▁world': the row after 'world': ! -> 3 (.6), hello dropped (-1), world -> 2 (.1); renormalised by .7
    [[3, r6(0.6 / 0.7)], [2, r6(0.1 / 0.7)]],
    // t=3 '!': the row after '!' maps to nothing; the fallback has no gold (last position): empty row
    [],
  ]);
  assert.equal(d.k, 3);
  assert.equal(d.length, 4);
});

test("mapTopK with the sequences' tokens applies FuseLLM's check that the aligned tokens agree", () => {
  const d = mapTopK(src, path, mapping, 4, pivotGold, 3, { sourceTokens: [0, 1, 2], pivotTokens: [0, 1, 2, 3] });
  assert.deepEqual(rowsOf(d), [
    [[1, 1]], // mapping['hello'] = -1 is not '▁hel': one-hot of gold 'lo'
    [[2, 1]], // mapping['hello'] = -1 is not 'lo' either (FuseLLM is stricter than the span rule): one-hot of gold '▁world'
    [[3, r6(0.6 / 0.7)], [2, r6(0.1 / 0.7)]], // mapping['Ġworld'] = 2 = '▁world'
    [],
  ]);
});

test('mapTopK sums source ids that map to one pivot id, then keeps the top k', () => {
  // source 0 'Ġcat' and 1 '▁cat' both map to pivot 0 '▁cat'; 2 'dog' to pivot 1
  const m = exactMapping(['Ġcat', '▁cat', 'dog'], ['▁cat', 'dog']);
  assert.deepEqual(Array.from(m), [0, 0, 1]);
  const row = topk(3, [[[0, 0.4], [1, 0.35], [2, 0.25]]]);
  assert.deepEqual(rowsOf(mapTopK(row, [[0, 0]], m, 1, Int32Array.from([1]), 2)), [[[0, 0.75], [1, 0.25]]]);
  assert.deepEqual(rowsOf(mapTopK(row, [[0, 0]], m, 1, Int32Array.from([1]), 1)), [[[0, 1]]]);
});

test('mapTopK one-hots the gold next token where one pivot token aligns with several source tokens', () => {
  // source 'in', 'to' vs pivot 'into': pivot position 0 has two source positions
  const row = topk(2, [[[0, 1]], [[1, 1]]]);
  const d = mapTopK(row, [[0, 0], [1, 0]], Int32Array.from([0, 1]), 1, Int32Array.from([7]), 2);
  assert.deepEqual(rowsOf(d), [[[7, 1]]]);
});

test('mapTopK refuses a path that misses a pivot position or leaves the sequences', () => {
  assert.throws(() => mapTopK(src, [[0, 0], [2, 3]], mapping, 4, pivotGold, 3), isInput('E_FUSE_PATH'));
  assert.throws(() => mapTopK(src, [[0, 0], [5, 1]], mapping, 4, pivotGold, 3), isInput('E_FUSE_PATH'));
  assert.throws(() => mapTopK(src, path, mapping, 4, Int32Array.from([1, 2, 3]), 3), isInput('E_FUSE_GOLD'));
});

// ---------------------------------------------------------------- cross-entropy and fusion

// three sources on a 3-position pivot text, k = 2; gold next tokens 1, 2, none
// (rows listed in TopK order: probability descending, lower id first on ties)
const gold = Int32Array.from([1, 2, -1]);
const A = topk(2, [[[0, 0.5], [1, 0.5]], [[3, 0.75], [2, 0.25]], [[0, 1]]]);
const B = topk(2, [[[1, 0.8], [2, 0.2]], [[0, 0.5], [2, 0.5]], [[3, 1]]]);
const C = topk(2, [[[0, 1]], [[2, 1]], [[1, 1]]]);
// CE_A = (-ln .5 - ln .25) / 2 = 1.5 ln 2 = 1.039721
// CE_B = (-ln .8 - ln .5) / 2 = -ln sqrt(.4) = 0.458145
// CE_C = (-ln 1e-8 - ln 1) / 2 = 9.210340 (gold 1 is outside C's row at t=0: the floor)
const ceA = 1.5 * Math.log(2);
const ceB = -Math.log(Math.sqrt(0.4));
const ceC = -Math.log(GOLD_PROB_FLOOR) / 2;

test('goldCrossEntropy averages -log p(gold) over the positions with a gold token, flooring missing tokens', () => {
  assert.ok(Math.abs(goldCrossEntropy(A, gold) - ceA) < 1e-6);
  assert.ok(Math.abs(goldCrossEntropy(B, gold) - ceB) < 1e-6);
  assert.ok(Math.abs(goldCrossEntropy(C, gold) - ceC) < 1e-6);
  assert.ok(Number.isNaN(goldCrossEntropy(A, Int32Array.from([-1, -1, -1]))));
  assert.throws(() => goldCrossEntropy(A, Int32Array.from([1, 2])), isInput('E_FUSE_GOLD'));
});

test('MinCE by sequence takes every row of the source with the lowest cross-entropy', () => {
  // CE_B 0.458 < CE_A 1.040 < CE_C 9.210: all of B
  assert.deepEqual(rowsOf(fuseMinCE([A, B, C], gold, 2)), rowsOf(B));
  assert.deepEqual(rowsOf(fuseMinCE([A, B, C], gold, 2, 'sequence')), rowsOf(B));
});

test('MinCE by position takes, at each position, the source most probable on that gold token', () => {
  // t=0: p(1) = .5, .8, 0 -> B;  t=1: p(2) = .25, .5, 1 -> C;  t=2: no gold -> source 0 (A)
  assert.deepEqual(rowsOf(fuseMinCE([A, B, C], gold, 2, 'position')), [rowsOf(B)[0], rowsOf(C)[1], rowsOf(A)[2]]);
});

test('MinCE breaks ties towards the first source and can use the caller\'s own cross-entropies', () => {
  assert.deepEqual(rowsOf(fuseMinCE([B, B], gold, 2)), rowsOf(B));
  assert.deepEqual(rowsOf(fuseMinCE([C, A], gold, 2, 'sequence', { crossEntropies: [0.1, 0.1] })), rowsOf(C));
  assert.deepEqual(rowsOf(fuseMinCE([A, B], gold, 2, 'sequence', { crossEntropies: [0.1, 0.2] })), rowsOf(A));
  assert.throws(() => fuseMinCE([A, B], gold, 2, 'position', { crossEntropies: [0.1, 0.2] }), isInput('E_FUSE_GRANULARITY'));
});

test("AvgCE weights sources by softmax of exp(-CE), FuseLLM's reward, and keeps the top k of the mixture", () => {
  // rewards: exp(-CE_A) = 2^-1.5 = 0.353553, exp(-CE_B) = sqrt(.4) = 0.632456
  // weights: softmax(0.353553, 0.632456) = (0.430723, 0.569277)
  const rA = Math.pow(2, -1.5);
  const rB = Math.sqrt(0.4);
  const wA = Math.exp(rA) / (Math.exp(rA) + Math.exp(rB));
  const wB = 1 - wA;
  assert.ok(Math.abs(wA - 0.430723) < 1e-6);
  // t=0: id 1: .5 wA + .8 wB = 0.670784; id 0: .5 wA = 0.215361; id 2: .2 wB = 0.113855 -> top 2, renormalised
  const t0 = [0.5 * wA + 0.8 * wB, 0.5 * wA];
  // t=1: id 2: .25 wA + .5 wB = 0.392319; id 3: .75 wA = 0.323042; id 0: .5 wB = 0.284639 -> top 2
  const t1 = [0.25 * wA + 0.5 * wB, 0.75 * wA];
  // t=2: id 0: wA, id 3: wB -> 3 first
  const fused = fuseAvgCE([A, B], gold, 2);
  assert.deepEqual(rowsOf(fused), [
    [[1, r6(t0[0]! / (t0[0]! + t0[1]!))], [0, r6(t0[1]! / (t0[0]! + t0[1]!))]],
    [[2, r6(t1[0]! / (t1[0]! + t1[1]!))], [3, r6(t1[1]! / (t1[0]! + t1[1]!))]],
    [[3, r6(wB)], [0, r6(wA)]],
  ]);
  // softmax(-CE) would give A 0.357; the code's softmax(exp(-CE)) gives 0.431
  assert.ok(Math.abs(wA - Math.exp(-ceA) / (Math.exp(-ceA) + Math.exp(-ceB))) > 0.05);
});

test('AvgCE by position weights each position by its own gold probability', () => {
  // t=0: rewards p(1) = .5 (A), .8 (B); t=1: p(2) = .25, .5; t=2: no gold: equal weights
  const w = (ra: number, rb: number) => Math.exp(ra) / (Math.exp(ra) + Math.exp(rb));
  const w0 = w(0.5, 0.8);
  const w1 = w(0.25, 0.5);
  const fused = fuseAvgCE([A, B], gold, 4, 'position');
  // k = 4 keeps the whole mixture
  const expect0 = [[1, 0.5 * w0 + 0.8 * (1 - w0)], [0, 0.5 * w0], [2, 0.2 * (1 - w0)]].sort((x, y) => y[1]! - x[1]!);
  const expect1 = [[3, 0.75 * w1], [2, 0.25 * w1 + 0.5 * (1 - w1)], [0, 0.5 * (1 - w1)]].sort((x, y) => y[1]! - x[1]!);
  assert.deepEqual(rowsOf(fused), [expect0.map(([i, p]) => [i, r6(p!)]), expect1.map(([i, p]) => [i, r6(p!)]), [[0, 0.5], [3, 0.5]]]);
});

test('fusion refuses sources of different lengths, no sources and an unknown granularity', () => {
  const short = topk(2, [[[1, 1]]]);
  assert.throws(() => fuseMinCE([A, short], gold, 2), isInput('E_FUSE_LENGTH'));
  assert.throws(() => fuseAvgCE([], gold, 2), isInput('E_FUSE_NO_SOURCES'));
  assert.throws(() => fuseAvgCE([A], gold, 2, 'token' as 'sequence'), isInput('E_FUSE_GRANULARITY'));
});

// ---------------------------------------------------------------- store

test('distributions written to safetensors read back exactly, each sequence at its own length', () => {
  const dir = tempDir();
  const file = join(dir, 'source-a.safetensors');
  const seqs = [A, topk(2, [[[5, 0.25], [4, 0.75]]])];
  const metadata = { source: 'model-a', pivot_vocab_size: '32000', mapping: 'minED', text_hash: 'abc123' };
  writeDistributions(file, seqs, metadata);
  const back = readDistributions(file);
  assert.deepEqual(back.metadata, { ...metadata, k: '2' });
  assert.equal(back.seqs.length, 2);
  back.seqs.forEach((d, n) => {
    assert.equal(d.length, seqs[n]!.length);
    assert.equal(d.k, 2);
    assert.deepEqual(Array.from(d.ids), Array.from(seqs[n]!.ids));
    assert.deepEqual(Array.from(d.probs), Array.from(seqs[n]!.probs));
  });
});

test('the store refuses mixed k, an empty set, and a safetensors file that is not a distributions file', () => {
  const dir = tempDir();
  assert.throws(() => writeDistributions(join(dir, 'x.safetensors'), [A, topk(3, [[[1, 1]]])], {}), isInput('E_FUSE_K'));
  assert.throws(() => writeDistributions(join(dir, 'x.safetensors'), [A], { k: '5' }), isInput('E_FUSE_K'));
  assert.throws(() => writeDistributions(join(dir, 'x.safetensors'), [], {}), isInput('E_FUSE_EMPTY'));
  const other = join(dir, 'other.safetensors');
  writeSafetensors(other, [{ name: 'probs', dtype: 'F32', shape: [1, 1, 1], data: Float32Array.from([1]) }], { k: '1' });
  assert.throws(() => readDistributions(other), (e: unknown) => e instanceof CheckpointFormatError && e.code === 'E_FUSE_STORE' && /'ids' is missing/.test(e.message));
});
