import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InputError } from '../src/errors.ts';
import { alignTokens, editDistance, normalizeToken } from '../src/fuse/index.ts';

test('normalizeToken turns every tokenizer marker into the plain text it stands for', () => {
  assert.equal(normalizeToken('Ġhello'), ' hello'); // GPT-2 / GPT-NeoX space
  assert.equal(normalizeToken('▁hello'), ' hello'); // SentencePiece space
  assert.equal(normalizeToken('Ċ'), '\n'); // byte-level newline
  assert.equal(normalizeToken('ĉ'), '\t');
  assert.equal(normalizeToken('<0x0A>'), '\n'); // SentencePiece byte fallback
  assert.equal(normalizeToken('<0x20>'), ' ');
  assert.equal(normalizeToken('âĢĻ'), '\u2019'); // byte-level UTF-8 of a right quote (FuseChat's table)
  assert.equal(normalizeToken('hello'), 'hello');
  assert.equal(normalizeToken('<unk>'), '<unk>');
});

test('normalizeToken leaves part of a multi-byte character recognisable instead of inventing a character', () => {
  assert.equal(normalizeToken('<0xE2>'), '<0xE2>'); // one byte of a 3-byte character
  assert.equal(normalizeToken('ĠâĢ'), ' âĢ'); // bytes 20 E2 80: incomplete UTF-8, only the marker is replaced
});

test('editDistance is the unit-cost Levenshtein distance', () => {
  assert.equal(editDistance('kitten', 'sitting'), 3);
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(editDistance('abc', ''), 3);
  assert.equal(editDistance('same', 'same'), 0);
  assert.equal(editDistance('hello', 'hel'), 2);
  assert.equal(editDistance('world', 'lo'), 4);
  assert.equal(editDistance('flaw', 'lawn'), 2);
});

test('a word kept whole by one tokenizer aligns with each of its pieces in the other', () => {
  // source: 'hello', 'Ġworld'; pivot: '▁hel', 'lo', '▁world'. Markers are removed for the cost
  // (FuseLLM dist_fn), so the keys are hello, world / hel, lo, world.
  // costs:            hel  lo  world
  //   hello            2    3    4
  //   world            4    4    0
  // accumulated D:     hel  lo  world
  //   hello            2    5    9
  //   world            6    6    5        (6 = 4 + min(5, 6, 2); 5 = 0 + min(9, 6, 5))
  // backtrack from (1,2): diag D(0,1)=5 < left D(1,1)=6 < up D(0,2)=9 -> (0,1); then i = 0 -> left -> (0,0)
  assert.deepEqual(alignTokens(['hello', 'Ġworld'], ['▁hel', 'lo', '▁world']), [[0, 0], [0, 1], [1, 2]]);
  // the other way round the path is the transpose
  assert.deepEqual(alignTokens(['▁hel', 'lo', '▁world'], ['hello', 'Ġworld']), [[0, 0], [1, 0], [2, 1]]);
});

test('two source tokens merged into one pivot token both align with it', () => {
  // source 'in', 'to' vs pivot 'into': costs 2 and 2; D = [2], [4]; path down the only column
  assert.deepEqual(alignTokens(['in', 'to', 'Ġit'], ['▁into', '▁it']), [[0, 0], [1, 0], [2, 1]]);
});

test('an unknown token on one side is absorbed by the path without breaking its neighbours', () => {
  const path = alignTokens(['a', '<unk>', 'Ġc'], ['a', 'b', '▁c']);
  // <unk> vs b costs 5 (substitute 1 + 4 more letters), but the diagonal is still the cheapest path:
  // D = [0 1 2; 5 5 6; 6 6 5]: from (2,2) diag D(1,1)=5 < up D(1,2)=6 = left D(2,1)=6
  assert.deepEqual(path, [[0, 0], [1, 1], [2, 2]]);
});

test('newline bytes of SentencePiece and byte-level BPE align at zero cost', () => {
  assert.deepEqual(alignTokens(['hi', 'Ċ', 'there'], ['▁hi', '<0x0A>', '▁there']), [[0, 0], [1, 1], [2, 2]]);
});

test('ties in the backtrack go diagonal first, as numpy argmin over [diagonal, up, left] does', () => {
  // all costs 0: every predecessor is 0, the diagonal wins each time
  assert.deepEqual(alignTokens(['x', 'x', 'x'], ['x', 'x', 'x']), [[0, 0], [1, 1], [2, 2]]);
  // a longer source than pivot: after the diagonal runs out the path must go up
  assert.deepEqual(alignTokens(['x', 'x', 'x'], ['x']), [[0, 0], [1, 0], [2, 0]]);
});

/** Minimum total cost over every monotone path, by enumeration. */
function bruteForceCost(a: string[], b: string[]): number {
  const key = (t: string) => normalizeToken(t).replaceAll(' ', '');
  let best = Infinity;
  const walk = (i: number, j: number, sum: number): void => {
    sum += editDistance(key(a[i]!), key(b[j]!));
    if (i === a.length - 1 && j === b.length - 1) {
      best = Math.min(best, sum);
      return;
    }
    if (i + 1 < a.length) walk(i + 1, j, sum);
    if (j + 1 < b.length) walk(i, j + 1, sum);
    if (i + 1 < a.length && j + 1 < b.length) walk(i + 1, j + 1, sum);
  };
  walk(0, 0, 0);
  return best;
}

test('the DTW path is monotone, covers both sequences and costs the minimum over all monotone paths (brute force)', () => {
  const pieces = ['a', 'ab', 'b', 'Ġa', '▁b', 'abc', 'c', 'ca', 'Ċ', '<0x0A>'];
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  for (let trial = 0; trial < 200; trial++) {
    const a = Array.from({ length: 1 + Math.floor(rand() * 5) }, () => pieces[Math.floor(rand() * pieces.length)]!);
    const b = Array.from({ length: 1 + Math.floor(rand() * 5) }, () => pieces[Math.floor(rand() * pieces.length)]!);
    const path = alignTokens(a, b);
    assert.deepEqual(path[0], [0, 0]);
    assert.deepEqual(path.at(-1), [a.length - 1, b.length - 1]);
    let cost = editDistance(normalizeToken(a[0]!).replaceAll(' ', ''), normalizeToken(b[0]!).replaceAll(' ', ''));
    for (let s = 1; s < path.length; s++) {
      const di = path[s]![0] - path[s - 1]![0];
      const dj = path[s]![1] - path[s - 1]![1];
      assert.ok((di === 1 || di === 0) && (dj === 1 || dj === 0) && di + dj > 0, `step ${s} of ${JSON.stringify(path)}`);
      cost += editDistance(normalizeToken(a[path[s]![0]]!).replaceAll(' ', ''), normalizeToken(b[path[s]![1]]!).replaceAll(' ', ''));
    }
    assert.equal(cost, bruteForceCost(a, b), `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
  }
});

test('alignTokens refuses to align an empty sequence with a non-empty one', () => {
  assert.deepEqual(alignTokens([], []), []);
  assert.throws(() => alignTokens([], ['a']), (e: unknown) => e instanceof InputError && e.code === 'E_FUSE_EMPTY_SEQUENCE' && /first sequence is empty/.test(e.message));
});
