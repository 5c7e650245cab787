/**
 * Evaluation data: JSONL, CSV, IDX (the MNIST container format, LeCun et al. 1998; gzip allowed)
 * and plain text files, plus seeded generators. Every error names the file and the line or field.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { extname } from 'node:path';
import { InputError } from '../errors.ts';
import { Rng, deriveSeed } from '../tensor/rng.ts';
import { resolveDataPath, type Manifest, type EvalSplit } from './manifest.ts';

export class EvalDataError extends InputError {
  constructor(file: string, message: string) {
    super('E_EVAL_DATA', `${file}: ${message}`);
  }
}

export type EvalRow = Record<string, unknown>;

function readBytes(file: string): Buffer {
  let b: Buffer;
  try {
    b = readFileSync(file);
  } catch (err) {
    throw new EvalDataError(file, `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); paths in a manifest are relative to the manifest's folder`);
  }
  return file.endsWith('.gz') ? gunzipSync(b) : b;
}

export function readJsonlFile(file: string): EvalRow[] {
  const rows: EvalRow[] = [];
  readBytes(file).toString('utf8').split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (err) {
      throw new EvalDataError(file, `line ${i + 1} is not JSON (${(err as Error).message})`);
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new EvalDataError(file, `line ${i + 1} is not a JSON object`);
    rows.push(v as EvalRow);
  });
  return rows;
}

/** RFC 4180 CSV with a header row; quoted fields may hold commas, quotes ("") and newlines. */
export function readCsvFile(file: string): EvalRow[] {
  const text = readBytes(file).toString('utf8');
  const records: string[][] = [];
  let field = '';
  let record: string[] = [];
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else field += ch;
    } else if (ch === '"' && field === '') quoted = true;
    else if (ch === ',') {
      record.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      record.push(field);
      field = '';
      if (record.length > 1 || record[0] !== '') records.push(record);
      record = [];
    } else field += ch;
  }
  if (quoted) throw new EvalDataError(file, 'ends inside a quoted field');
  if (field !== '' || record.length > 0) {
    record.push(field);
    records.push(record);
  }
  const header = records.shift();
  if (!header) throw new EvalDataError(file, 'is empty; a CSV needs a header row');
  return records.map((r, i) => {
    if (r.length !== header.length) throw new EvalDataError(file, `row ${i + 2} has ${r.length} fields but the header has ${header.length}`);
    const row: EvalRow = {};
    header.forEach((h, j) => (row[h] = r[j]));
    return row;
  });
}

/** An IDX array: dimensions and values (as float32, whatever the stored type). */
export function readIdxFile(file: string): { dims: number[]; data: Float32Array } {
  const b = readBytes(file);
  if (b.length < 4 || b[0] !== 0 || b[1] !== 0) throw new EvalDataError(file, 'is not an IDX file (its first two bytes must be zero)');
  const type = b[2]!;
  const nd = b[3]!;
  const dims: number[] = [];
  for (let i = 0; i < nd; i++) dims.push(b.readUInt32BE(4 + 4 * i));
  const n = dims.reduce((a, c) => a * c, 1);
  const off = 4 + 4 * nd;
  const sizes: Record<number, number> = { 0x08: 1, 0x09: 1, 0x0b: 2, 0x0c: 4, 0x0d: 4, 0x0e: 8 };
  const size = sizes[type];
  if (!size) throw new EvalDataError(file, `has IDX type code 0x${type.toString(16)}, not one of 08, 09, 0B, 0C, 0D, 0E`);
  if (b.length !== off + n * size) throw new EvalDataError(file, `holds ${b.length - off} data bytes but its dimensions [${dims.join(',')}] need ${n * size}`);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const p = off + i * size;
    data[i] = type === 0x08 ? b[p]! : type === 0x09 ? b.readInt8(p) : type === 0x0b ? b.readInt16BE(p) : type === 0x0c ? b.readInt32BE(p) : type === 0x0d ? b.readFloatBE(p) : b.readDoubleBE(p);
  }
  return { dims, data };
}

/**
 * Arithmetic items `{ question: "37+5=", answer: "42", choices, gold }`, seeded per split so
 * train, validation and test differ. Operands have up to `digits` digits; subtraction keeps
 * results non-negative; `choices` holds the answer and three near misses for choice evaluators.
 */
export function arithmeticItems(options: { seed: number | string; count: number; digits: number; operations: Array<'+' | '-' | '*'> }, split: EvalSplit): EvalRow[] {
  const rng = Rng.seeded(deriveSeed('arithmetic', options.seed, split));
  const max = 10 ** options.digits;
  const rows: EvalRow[] = [];
  for (let i = 0; i < options.count; i++) {
    let a = rng.int(max);
    let b = rng.int(max);
    const op = options.operations[rng.int(options.operations.length)]!;
    if (op === '-' && b > a) [a, b] = [b, a];
    const answer = op === '+' ? a + b : op === '-' ? a - b : a * b;
    // Four options for choice evaluators: the answer and three near misses, in seeded order.
    const options4 = [answer, answer + 1, answer + 10, answer === 0 ? 2 : answer - 1].map(String);
    for (let k = options4.length - 1; k > 0; k--) {
      const j = rng.int(k + 1);
      [options4[k], options4[j]] = [options4[j]!, options4[k]!];
    }
    rows.push({ question: `${a}${op}${b}=`, answer: String(answer), choices: options4, gold: options4.indexOf(String(answer)) });
  }
  return rows;
}

function formatOf(m: Manifest, file: string): 'jsonl' | 'csv' | 'idx' | 'text' {
  if (m.data?.format) return m.data.format;
  const ext = extname(file.replace(/\.gz$/, '')).toLowerCase();
  if (ext === '.jsonl' || ext === '.json') return 'jsonl';
  if (ext === '.csv') return 'csv';
  if (ext === '.txt' || ext === '.md') return 'text';
  if (ext.includes('idx') || /-idx\d-ubyte$/.test(file.replace(/\.gz$/, ''))) return 'idx';
  throw new EvalDataError(file, `has no known data format; set data.format in ${m.file} to jsonl, csv, idx or text`);
}

/** The rows of one split (text files become one row `{ text }`). IDX belongs to classification. */
export function loadRows(m: Manifest, split: EvalSplit): EvalRow[] {
  const data = m.data!;
  if (data.generator) return arithmeticItems(data.generator, split);
  const entry = data.splits?.[split];
  if (entry === undefined) throw new EvalDataError(m.file, `has no data file for split '${split}' under data.splits`);
  if (typeof entry !== 'string') throw new EvalDataError(m.file, `data.splits.${split} is an IDX pair; only classification reads IDX files`);
  const file = resolveDataPath(m, entry);
  switch (formatOf(m, file)) {
    case 'jsonl':
      return readJsonlFile(file);
    case 'csv':
      return readCsvFile(file);
    case 'text':
      return [{ text: readBytes(file).toString('utf8') }];
    case 'idx':
      throw new EvalDataError(file, 'is IDX; give IDX data as { images, labels } to a classification evaluator');
  }
}

/** Features [n, d] and labels [n] for classification, from IDX pairs, CSV or JSONL. */
export function loadClassificationData(m: Manifest & { input_field: string; label_field: string }, split: EvalSplit): { x: Float32Array; y: Int32Array; n: number; d: number; file: string } {
  const entry = m.data?.splits?.[split];
  if (entry === undefined) throw new EvalDataError(m.file, `has no data file for split '${split}' under data.splits (classification needs files, not a generator)`);
  if (typeof entry !== 'string') {
    const imgFile = resolveDataPath(m, entry.images);
    const lblFile = resolveDataPath(m, entry.labels);
    const img = readIdxFile(imgFile);
    const lbl = readIdxFile(lblFile);
    const n = img.dims[0] ?? 0;
    if (lbl.dims.length !== 1 || lbl.dims[0] !== n) throw new EvalDataError(lblFile, `has dimensions [${lbl.dims.join(',')}] but ${imgFile} holds ${n} items; labels must be a vector of ${n}`);
    const d = n === 0 ? 0 : img.data.length / n;
    return { x: img.data, y: Int32Array.from(lbl.data), n, d, file: imgFile };
  }
  const file = resolveDataPath(m, entry);
  const rows = loadRows(m, split);
  if (rows.length === 0) throw new EvalDataError(file, 'holds no rows');
  const fmt = formatOf(m, file);
  const features = (r: EvalRow, i: number): number[] => {
    if (fmt === 'csv') {
      return Object.entries(r).filter(([k]) => k !== m.label_field).map(([k, v]) => {
        const num = Number(v);
        if (v === '' || !Number.isFinite(num)) throw new EvalDataError(file, `row ${i + 2}, column '${k}': '${String(v)}' is not a number`);
        return num;
      });
    }
    const v = r[m.input_field];
    if (!Array.isArray(v) || v.some((e) => typeof e !== 'number')) throw new EvalDataError(file, `line ${i + 1}: field '${m.input_field}' must be an array of numbers`);
    return v as number[];
  };
  const first = features(rows[0]!, 0);
  const d = first.length;
  const x = new Float32Array(rows.length * d);
  const y = new Int32Array(rows.length);
  rows.forEach((r, i) => {
    const f = i === 0 ? first : features(r, i);
    if (f.length !== d) throw new EvalDataError(file, `${fmt === 'csv' ? `row ${i + 2}` : `line ${i + 1}`} has ${f.length} features but the first has ${d}`);
    x.set(f, i * d);
    const label = Number(r[m.label_field]);
    if (!Number.isInteger(label) || label < 0) throw new EvalDataError(file, `${fmt === 'csv' ? `row ${i + 2}` : `line ${i + 1}`}: field '${m.label_field}' is '${String(r[m.label_field])}', not a class index`);
    y[i] = label;
  });
  return { x, y, n: rows.length, d, file };
}

/** Fills `{field}` placeholders from a row; a missing field is an error naming it. */
export function fillTemplate(template: string, row: EvalRow, where: string): string {
  return template.replace(/\{([A-Za-z0-9_.-]+)\}/g, (_, key: string) => {
    const v = key.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as EvalRow)[k] : undefined), row);
    if (v === undefined || v === null) throw new InputError('E_EVAL_DATA', `${where}: the template asks for field '${key}' but the item has none (fields: ${Object.keys(row).join(', ')})`);
    return String(v);
  });
}
