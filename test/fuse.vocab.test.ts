import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InputError } from '../src/errors.ts';
import { cooccurrenceCounts, editDistance, exactMapping, fuseChatMapping, minEditMapping, normalizeToken, statisticsMapping } from '../src/fuse/index.ts';

const pivot = ['<unk>', 'Ġthe', 'hello', '▁world', 'Ċ'];

test('exactMapping matches tokens whose normalised strings are equal and leaves the rest at -1', () => {
  const source = ['▁the', 'hello', 'Ġworld', null, 'zzz', '<0x0A>'];
  assert.deepEqual(Array.from(exactMapping(source, pivot)), [1, 2, 3, -1, -1, 4]);
});

test('exactMapping takes the lowest pivot id when two pivot tokens normalise to the same string', () => {
  assert.deepEqual(Array.from(exactMapping(['\n', 'Ċ'], ['x', '<0x0A>', 'Ċ'])), [1, 1]);
  assert.deepEqual(Array.from(exactMapping(['a'], [null, 'a'])), [1]);
});

test('minEditMapping keeps exact matches and sends other tokens to the nearest pivot token', () => {
  // 'Ġworlds' -> ' worlds': ' world' (id 3) is at distance 1, every other pivot string farther
  // 'hellp' -> 'hello' (1); 'zzz' -> '<unk>' (5: 3 substitutions + 2 insertions) vs ' the' (4) vs 'hello' (5) vs ' world' (6) vs '\n' (3)
  const source = ['▁the', 'Ġworlds', 'hellp', 'zzz', null];
  assert.deepEqual(Array.from(minEditMapping(source, pivot)), [1, 3, 2, 4, -1]);
});

test('minEditMapping breaks distance ties towards the lowest pivot id, as FuseLLM does over a vocabulary listed in id order', () => {
  // 'abc' is at distance 1 from 'abd', 'ab' and 'abcd'
  assert.deepEqual(Array.from(minEditMapping(['abc'], ['abd', 'ab', 'abcd'])), [0]);
  assert.deepEqual(Array.from(minEditMapping(['abc'], ['xyz', 'abcd', 'ab'])), [1]);
  assert.deepEqual(Array.from(minEditMapping(['abc'], ['xyz', 'ab', 'abcd'])), [1]);
});

test('minEditMapping agrees with an exhaustive search on a random vocabulary', () => {
  let seed = 11;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const word = () => {
    const n = 1 + Math.floor(rand() * 6);
    let s = rand() < 0.3 ? 'Ġ' : '';
    for (let i = 0; i < n; i++) s += 'abcde'[Math.floor(rand() * 5)];
    return s;
  };
  const src = Array.from({ length: 300 }, word);
  const piv = Array.from({ length: 200 }, () => (rand() < 0.05 ? null : word()));
  const got = minEditMapping(src, piv);
  for (let s = 0; s < src.length; s++) {
    const a = normalizeToken(src[s]!);
    let best = -1;
    let bestD = Infinity;
    for (let p = 0; p < piv.length; p++) {
      if (piv[p] === null) continue;
      const d = editDistance(a, normalizeToken(piv[p]!));
      if (d < bestD) {
        bestD = d;
        best = p;
      }
    }
    assert.equal(got[s], best, `source ${src[s]}`);
  }
});

// Four texts, tokenised by both models; source vocab 5, pivot vocab 6.
//   seq 1: source [0 'hello', 1 'Ġworld'] vs pivot [2 '▁hel', 3 'lo', 4 '▁world'], path (0,0) (0,1) (1,2)
//   seq 2: source [0] vs pivot [5 '▁hello'], path (0,0)
//   seq 3: source [0, 0] vs pivot [5, 5], path (0,0) (1,1)
//   seq 4: source [2, 3] vs pivot [1], path (0,0) (1,0)
//   seq 5: source [2, 2] vs pivot [1], path (0,0) (1,0)  (one pivot position, source id 2 twice: counts once)
// counts (source -> pivot: n):
//   0 -> 2: 1 (seq 1), 0 -> 3: 1 (seq 1), 0 -> 5: 1 (seq 2) + 2 (seq 3) = 3
//   1 -> 4: 1
//   2 -> 1: 1 (seq 4) + 1 (seq 5) = 2
//   3 -> 1: 1
//   4: never seen
const aligned = [
  { source: [0, 1], pivot: [2, 3, 4], path: [[0, 0], [0, 1], [1, 2]] as Array<[number, number]> },
  { source: [0], pivot: [5], path: [[0, 0]] as Array<[number, number]> },
  { source: [0, 0], pivot: [5, 5], path: [[0, 0], [1, 1]] as Array<[number, number]> },
  { source: [2, 3], pivot: [1], path: [[0, 0], [1, 0]] as Array<[number, number]> },
  { source: [2, 2], pivot: [1], path: [[0, 0], [1, 0]] as Array<[number, number]> },
];

test('cooccurrenceCounts tabulates each distinct source token once per aligned pivot position', () => {
  const counts = cooccurrenceCounts(aligned, 5);
  const plain = counts.map((m) => Object.fromEntries([...m].sort((x, y) => x[0] - y[0])));
  assert.deepEqual(plain, [{ 2: 1, 3: 1, 5: 3 }, { 4: 1 }, { 1: 2 }, { 1: 1 }, {}]);
});

test('statisticsMapping maps each source token to its most frequent partner and unseen tokens to the fallback', () => {
  const fallback = Int32Array.from([0, 0, 0, 0, 4]);
  assert.deepEqual(Array.from(statisticsMapping(aligned, 5, fallback)), [5, 4, 1, 1, 4]);
});

test('statisticsMapping breaks count ties towards the lowest pivot id', () => {
  // only seq 1: source 0 meets pivot 2 and pivot 3 once each
  assert.deepEqual(Array.from(statisticsMapping([aligned[0]!], 5, new Int32Array(5).fill(-1))), [2, 4, -1, -1, -1]);
});

test('statisticsMapping rejects a fallback of the wrong size and a path outside its sequences', () => {
  assert.throws(() => statisticsMapping(aligned, 5, new Int32Array(4)), (e: unknown) => e instanceof InputError && e.code === 'E_FUSE_FALLBACK');
  const bad = [{ source: [0], pivot: [1], path: [[0, 0], [1, 0]] as Array<[number, number]> }];
  assert.throws(() => statisticsMapping(bad, 5, new Int32Array(5)), (e: unknown) => e instanceof InputError && e.code === 'E_FUSE_PATH' && /sequence 0/.test(e.message));
  const badId = [{ source: [7], pivot: [1], path: [[0, 0]] as Array<[number, number]> }];
  assert.throws(() => statisticsMapping(badId, 5, new Int32Array(5)), (e: unknown) => e instanceof InputError && e.code === 'E_FUSE_TOKEN_ID');
});

test("fuseChatMapping picks, among the partners seen, the lowest sigmoid(count) x edit distance, substrings at a tenth", () => {
  // source vocab: 0 'hello' (exact in pivot), 1 'Ġworlds', 2 'abc', 3 'zzz' (never seen)
  // pivot vocab:  0 '<unk>', 1 '▁world', 2 'worldwide', 3 'hello', 4 'abd', 5 'xbc'
  const source = ['hello', 'Ġworlds', 'abc', 'zzz'];
  const piv = ['<unk>', '▁world', 'worldwide', 'hello', 'abd', 'xbc'];
  const counts = [
    new Map([[1, 9]]), // ignored: 'hello' is in the pivot vocab (id 3)
    // 'worlds' vs 'world': distance 1, substring -> 0.1; sigmoid(1) = 0.731 -> 0.0731
    // 'worlds' vs 'worldwide': distance 4 ('s' -> 'w', + 'ide'), not a substring; sigmoid(5) = 0.993 -> 3.97
    new Map([[1, 1], [2, 5]]),
    // 'abc' vs 'abd' (count 3): sigmoid(3) * 1 = 0.9526; vs 'xbc' (count 1): sigmoid(1) * 1 = 0.7311 -> 'xbc',
    // although 'abd' was seen more often (the most frequent partner would be 'abd')
    new Map([[4, 3], [5, 1]]),
    new Map(),
  ];
  assert.deepEqual(Array.from(fuseChatMapping(counts, source, piv, 0)), [3, 1, 5, 0]);
  assert.throws(() => fuseChatMapping(counts.slice(1), source, piv, 0), (e: unknown) => e instanceof InputError && e.code === 'E_FUSE_COUNTS');
});
