/**
 * Tokenizer folders for the vocabulary tests, shaped as the tokenizers library saves a Llama
 * fast tokenizer: a BPE model of `vocab` tokens (`<unk>`, `<s>`, `</s>`, then `_tok_3` ...),
 * those three as special added tokens (ids 0-2), then `added` as plain added tokens with the
 * next ids (normalized, not special, as `add_tokens(str)` adds them).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function writeTestTokenizer(dir: string, vocab: number, added: readonly string[] = [], extraConfig: Record<string, unknown> = {}): void {
  const names = ['<unk>', '<s>', '</s>', ...Array.from({ length: Math.max(0, vocab - 3) }, (_, i) => `_tok_${i + 3}`)].slice(0, vocab);
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const plain = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: false });
  const addedTokens = [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>'), ...added.map((t, i) => plain(vocab + i, t))];
  const json = {
    version: '1.0', truncation: null, padding: null, added_tokens: addedTokens, normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null,
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: false, ignore_merges: false, vocab: Object.fromEntries(names.map((n, i) => [n, i])), merges: [] },
  };
  writeFileSync(join(dir, 'tokenizer.json'), `${JSON.stringify(json)}\n`);
  const decoder = Object.fromEntries(addedTokens.map((t) => [String(t.id), { content: t.content, lstrip: false, normalized: t.normalized, rstrip: false, single_word: false, special: t.special }]));
  writeFileSync(join(dir, 'tokenizer_config.json'), `${JSON.stringify({ added_tokens_decoder: decoder, bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', tokenizer_class: 'LlamaTokenizer', ...extraConfig })}\n`);
  writeFileSync(join(dir, 'special_tokens_map.json'), `${JSON.stringify({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' })}\n`);
}
