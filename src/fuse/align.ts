/**
 * Token alignment for knowledge fusion: FuseLLM (Wan, Huang, Cai, Quan, Bi, Shi, ICLR 2024,
 * "Knowledge Fusion of Large Language Models", arXiv 2401.10491, section 3.3 "Token alignment")
 * and FuseChat (Wan et al. 2024, arXiv 2402.16107, stage 1).
 *
 * Two tokenizers cut the same text into different token sequences. FuseLLM aligns them with
 * dynamic time warping (DTW) whose pair cost is the edit distance of the two token strings
 * (FuseLLM repo, src/utils/others.py: `dtw` and `transform_step_logits.dist_fn`; FuseChat repo,
 * train/align_token_and_vocab.py: the same `dtw`). The path found here is theirs exactly,
 * backtracking tie-breaks included, so the positions fused downstream are the ones they fuse.
 */
import { InputError } from '../errors.ts';

/**
 * GPT-2 byte-level alphabet, inverted: the byte each printable stand-in character encodes.
 * GPT-2's `bytes_to_unicode` (openai/gpt-2 encoder.py, reused by every byte-level BPE: GPT-NeoX,
 * Llama 3, Qwen) keeps the printable bytes 33-126, 161-172 and 174-255 as the characters of the
 * same code, and maps the other 68 bytes, in increasing order, to U+0100.. U+0143. So 'Ġ'
 * (U+0120) is byte 0x20 (space) and 'Ċ' (U+010A) is byte 0x0A (newline).
 */
const BYTE_OF_CHAR: ReadonlyMap<number, number> = (() => {
  const m = new Map<number, number>();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    if (printable) m.set(b, b);
    else m.set(0x100 + n++, b);
  }
  return m;
})();

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** SentencePiece's byte fallback token, `<0x0A>` (Llama, Mistral). */
const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;

/**
 * Strip tokenizer surface markers so token strings of different tokenizers compare.
 *
 * - SentencePiece: '▁' (U+2581) is a space; a byte-fallback token `<0xNN>` is that byte, as a
 *   character when it is ASCII (a lone byte >= 0x80 is part of a multi-byte character and has
 *   no character of its own: it is returned unchanged).
 * - Byte-level BPE: a token made only of GPT-2 byte stand-ins that contains a non-ASCII stand-in
 *   ('Ġ', 'Ċ', 'âĢĻ', ...) is decoded to its bytes and read as UTF-8 ('Ġhello' -> ' hello',
 *   'Ċ' -> '\n', 'âĢĻ' -> '’'). When those bytes are not complete UTF-8 (a token holding part of
 *   a character), only the markers are replaced: 'Ġ' -> ' ', 'Ċ' -> '\n', 'ĉ' -> '\t', 'č' -> '\r'.
 *
 * FuseLLM (src/utils/others.py, `TOKENIZER_TO_SPECIAL_TOKEN`) only knows one marker per
 * tokenizer class ('▁' for Llama, 'Ġ' for GPT-NeoX) and swaps one for the other; FuseChat
 * (train/align_token_and_vocab.py, `SPECIAL_TOKEN_LLAMA3_TO_MISTRAL`) adds 'Ċ' <-> '<0x0A>',
 * 'ĉ' <-> '<0x09>', 'č' <-> '\r' and 'âĢĻ' <-> '’'. Mapping every form to the plain text, as here,
 * covers both tables and any pair of tokenizers. (A SentencePiece token that happens to be
 * spelled only with byte stand-ins, such as 'Ã©', would be decoded too; real vocabularies of
 * that kind do not hold such tokens.)
 */
export function normalizeToken(token: string): string {
  const byte = BYTE_TOKEN.exec(token);
  if (byte) {
    const b = parseInt(byte[1]!, 16);
    return b < 0x80 ? String.fromCharCode(b) : token;
  }
  if (token.includes('\u2581')) return token.replaceAll('\u2581', ' ');
  let byteLevel = true;
  let escaped = false;
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    if (!BYTE_OF_CHAR.has(c)) {
      byteLevel = false;
      break;
    }
    if (c >= 0x80) escaped = true;
  }
  if (byteLevel && escaped) {
    const bytes = new Uint8Array(token.length);
    for (let i = 0; i < token.length; i++) bytes[i] = BYTE_OF_CHAR.get(token.charCodeAt(i))!;
    try {
      return UTF8.decode(bytes);
    } catch {
      // part of a multi-byte character: fall through to the marker replacement
    }
  }
  return token.replaceAll('\u0120', ' ').replaceAll('\u010a', '\n').replaceAll('\u0109', '\t').replaceAll('\u010d', '\r');
}

/**
 * Levenshtein distance with unit costs (insert, delete, substitute), over UTF-16 code units as
 * Python's `editdistance.eval` does over the code points of the same strings (they differ only
 * for characters outside the BMP, which token strings of real vocabularies rarely hold).
 * Two rows, O(|a| |b|) time, O(|b|) memory.
 */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  let prev = new Uint32Array(b.length + 1);
  let cur = new Uint32Array(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    const ca = a.charCodeAt(i - 1);
    for (let j = 1; j <= b.length; j++) {
      const sub = prev[j - 1]! + (ca === b.charCodeAt(j - 1) ? 0 : 1);
      const del = prev[j]! + 1;
      const ins = cur[j - 1]! + 1;
      cur[j] = sub < del ? (sub < ins ? sub : ins) : del < ins ? del : ins;
    }
    const t = prev;
    prev = cur;
    cur = t;
  }
  return prev[b.length]!;
}

/**
 * The string a token is compared by in the DTW cost: normalised, then with its spaces removed.
 * FuseLLM's `dist_fn` (src/utils/others.py, inside `transform_step_logits`) deletes each
 * tokenizer's marker ('▁' or 'Ġ') before the edit distance rather than comparing it, so
 * '▁hello' and 'hello' cost 0. We remove the normalised form of the marker, a space.
 */
function dtwKey(token: string): string {
  return normalizeToken(token).replaceAll(' ', '');
}

/**
 * FuseLLM's DTW alignment of two token sequences of the same text.
 *
 * Returns the monotone warping path as [i, j] pairs (i into `a`, j into `b`) from [0, 0] to
 * [a.length - 1, b.length - 1], in order: every index of both sequences appears, each step
 * advances i, j or both by one, so one token may align with several of the other side.
 *
 * Recurrence (src/utils/others.py `dtw`, after talcs/simpledtw): D[0][0] = 0, D[i][0] =
 * D[0][j] = inf otherwise, and
 *     D[i+1][j+1] = cost(a_i, b_j) + min(D[i][j+1], D[i+1][j], D[i][j]),
 * cost = editDistance of the tokens normalised with spaces removed (see `dtwKey`).
 * Backtracking starts at the last cell and, while not at [0, 0], moves to the predecessor with
 * the smallest accumulated cost, ties broken as numpy's argmin over [diagonal, up (i-1),
 * left (j-1)] breaks them: the first minimum, so diagonal before up before left.
 *
 * In FuseLLM the call is `dtw(blending_tokens, base_tokens)`: pass the source (blending) model's
 * tokens as `a` and the pivot (base) model's as `b` to get their path, tie-breaks included.
 */
export function alignTokens(a: readonly string[], b: readonly string[]): Array<[number, number]> {
  const n = a.length;
  const m = b.length;
  if (n === 0 || m === 0) {
    if (n === 0 && m === 0) return [];
    throw new InputError('E_FUSE_EMPTY_SEQUENCE', `alignTokens: the ${n === 0 ? 'first' : 'second'} sequence is empty but the other has ${Math.max(n, m)} tokens; both must be tokenizations of the same text`);
  }
  // a text repeats its tokens: distances are computed once per distinct pair of keys
  const intern = (tokens: readonly string[]) => {
    const keys: string[] = [];
    const byKey = new Map<string, number>();
    const ids = tokens.map((t) => {
      const key = dtwKey(t);
      let id = byKey.get(key);
      if (id === undefined) {
        id = keys.length;
        byKey.set(key, id);
        keys.push(key);
      }
      return id;
    });
    return { keys, ids };
  };
  const ia = intern(a);
  const ib = intern(b);
  const nb = ib.keys.length;
  const costs = new Float64Array(ia.keys.length * nb).fill(-1);
  // D without its inf border: acc[i * m + j] = D[i+1][j+1]
  const acc = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    const rowKey = ia.ids[i]! * nb;
    for (let j = 0; j < m; j++) {
      let cost = costs[rowKey + ib.ids[j]!]!;
      if (cost < 0) cost = costs[rowKey + ib.ids[j]!] = editDistance(ia.keys[ia.ids[i]!]!, ib.keys[ib.ids[j]!]!);
      let best: number;
      if (i === 0 && j === 0) best = 0;
      else {
        const up = i > 0 ? acc[(i - 1) * m + j]! : Infinity; // D[i][j+1]
        const left = j > 0 ? acc[i * m + j - 1]! : Infinity; // D[i+1][j]
        const diag = i > 0 && j > 0 ? acc[(i - 1) * m + j - 1]! : Infinity; // D[i][j]
        best = Math.min(up, left, diag);
      }
      acc[i * m + j] = cost + best;
    }
  }
  const path: Array<[number, number]> = [];
  let i = n - 1;
  let j = m - 1;
  while (i > 0 || j > 0) {
    path.push([i, j]);
    const diag = i > 0 && j > 0 ? acc[(i - 1) * m + j - 1]! : Infinity;
    const up = i > 0 ? acc[(i - 1) * m + j]! : Infinity;
    const left = j > 0 ? acc[i * m + j - 1]! : Infinity;
    // numpy argmin: the first of equal minima wins
    if (diag <= up && diag <= left) {
      i--;
      j--;
    } else if (up <= left) i--;
    else j--;
  }
  path.push([0, 0]);
  path.reverse();
  return path;
}
