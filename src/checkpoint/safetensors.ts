/**
 * safetensors: read lazily with positioned reads, validate everything before trusting it,
 * write atomically in a deterministic layout.
 *
 * Format (huggingface/safetensors, docs "The format"): 8 bytes little-endian u64 N, then N
 * bytes of UTF-8 JSON mapping tensor names to {dtype, shape, data_offsets: [begin, end]}
 * (offsets relative to the data section that follows the header) plus an optional
 * `__metadata__` string->string map, then the data section. The reference implementation
 * also requires the tensors to cover the data section exactly, with no gap, overlap or
 * trailing bytes; we check the same, and cap N at 100 MB as it does.
 */
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, writeSync } from 'node:fs';
import { CheckpointFormatError, InputError, MissingTensorError, RuntimeFailure } from '../errors.ts';
import { DTYPE_SIZE, type DType, type FloatDType, decodeToFloat32, encodeFromFloat32, isDType } from '../tensor/dtype.ts';
import { temporaryPathFor, unlinkQuietly } from './atomic.ts';

/** Largest header accepted (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  byteLength: number;
}

/** A readable set of named tensors: one file, a sharded folder, or a derived view. */
export interface TensorSource {
  readonly path: string;
  /** Tensor names, sorted. */
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** Exact little-endian bytes of one tensor (one positioned read). */
  readRaw(name: string, options?: RawReadOptions): Uint8Array;
  /** Bytes [from, from + into.byteLength) of one tensor into `into` (one positioned read). */
  readRawRange(name: string, from: number, into: Uint8Array): void;
  /** One tensor as float32 (exact for F32, F16, BF16); `shared` backs it by a SharedArrayBuffer. */
  readFloat32(name: string, options?: ReadOptions): Float32Array;
  close(): void;
}

export interface RawReadOptions {
  shared?: boolean;
  /** Read into this array (exactly the tensor's byte length) instead of allocating one. */
  into?: Uint8Array;
}

export interface ReadOptions {
  shared?: boolean;
  /**
   * Decode into this array (exactly the tensor's element count) instead of allocating one: a
   * caller that reuses its arrays allocates nothing per read (a fresh large array costs page
   * faults that measured several times the decode itself).
   */
  into?: Float32Array;
}

/**
 * Raw bytes of a non-F32 tensor read into `into` go through this buffer a piece at a time, each
 * piece decoded while it is still in cache: one pass over the float32 output instead of a
 * tensor-sized staging copy written, then read again (and 2 bytes per element less to hold).
 */
const PIECE_BYTES = 1 << 19;
let piece: Uint8Array | null = null;

export interface HeaderEntry extends TensorInfo {
  /** Offsets relative to the start of the data section. */
  begin: number;
  end: number;
}

export interface ParsedHeader {
  headerLength: number;
  /** Absolute file offset of the data section. */
  dataStart: number;
  /** Entries in data order. */
  entries: HeaderEntry[];
  metadata: Record<string, string> | null;
}

const fail = (file: string, code: string, message: string): never => {
  throw new CheckpointFormatError(code, file, message);
};

/**
 * Names of the members of the top-level JSON object, in order, duplicates included.
 * JSON.parse silently keeps the last of duplicate keys; a safetensors header with a duplicate
 * tensor name is ambiguous, so we list keys ourselves. `text` must already be valid JSON.
 */
export function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      i++;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) i += 2;
        else if (d === 0x22) break;
        else i++;
      }
      const end = i + 1;
      i++;
      if (depth === 1) {
        let j = i;
        while (j < n && (text[j] === ' ' || text[j] === '\n' || text[j] === '\r' || text[j] === '\t')) j++;
        if (text[j] === ':') keys.push(JSON.parse(text.slice(start, end)) as string);
      }
      continue;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) depth++;
    else if (c === 0x7d || c === 0x5d) depth--;
    i++;
  }
  return keys;
}

function isNonNegativeInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Validate a safetensors header. `headerBytes` are the N bytes after the length prefix and
 * `fileSize` the whole file's size. Throws a CheckpointFormatError naming the broken rule.
 */
export function parseHeader(file: string, headerBytes: Uint8Array, fileSize: number): ParsedHeader {
  const headerLength = headerBytes.byteLength;
  const dataStart = 8 + headerLength;
  const dataLength = fileSize - dataStart;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    return fail(file, 'E_ST_HEADER_UTF8', 'the safetensors header is not valid UTF-8; the file is corrupt or not a safetensors file');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return fail(file, 'E_ST_HEADER_JSON', `the safetensors header is not valid JSON (${(err as Error).message}); the file is corrupt or not a safetensors file`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    return fail(file, 'E_ST_HEADER_JSON', 'the safetensors header must be a JSON object mapping tensor names to {dtype, shape, data_offsets}');
  }
  const header = json as Record<string, unknown>;
  const keys = topLevelKeys(text);
  if (keys.length !== Object.keys(header).length) {
    const seen = new Set<string>();
    const dup = keys.find((k) => (seen.has(k) ? true : (seen.add(k), false)));
    fail(file, 'E_ST_DUPLICATE_NAME', `tensor name '${dup}' appears more than once in the header; the file is ambiguous, re-export it`);
  }

  let metadata: Record<string, string> | null = null;
  const entries: HeaderEntry[] = [];
  for (const name of keys) {
    const value = header[name];
    if (name === '__metadata__') {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        fail(file, 'E_ST_METADATA', '__metadata__ must be an object of string values');
      }
      for (const [k, v] of Object.entries(value as object)) {
        if (typeof v !== 'string') fail(file, 'E_ST_METADATA', `__metadata__.${k} is ${JSON.stringify(v)?.slice(0, 40)}, but metadata values must be strings`);
      }
      metadata = { ...(value as Record<string, string>) };
      continue;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      fail(file, 'E_ST_ENTRY', `tensor '${name}' must be an object {dtype, shape, data_offsets}`);
    }
    const entry = value as Record<string, unknown>;
    for (const k of Object.keys(entry)) {
      if (k !== 'dtype' && k !== 'shape' && k !== 'data_offsets') fail(file, 'E_ST_ENTRY', `tensor '${name}' has an unknown field '${k}' (expected dtype, shape, data_offsets)`);
    }
    for (const k of ['dtype', 'shape', 'data_offsets']) {
      if (!(k in entry)) fail(file, 'E_ST_ENTRY', `tensor '${name}' lacks the field '${k}'`);
    }
    const { dtype, shape, data_offsets: offsets } = entry;
    if (!isDType(dtype)) {
      fail(file, 'E_ST_DTYPE', `tensor '${name}' has dtype ${JSON.stringify(dtype)?.slice(0, 40)}; supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL`);
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) {
      fail(file, 'E_ST_SHAPE', `tensor '${name}' has shape ${JSON.stringify(shape)?.slice(0, 60)}; a shape is a list of non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger) || offsets[0] > offsets[1]) {
      fail(file, 'E_ST_OFFSETS', `tensor '${name}' has data_offsets ${JSON.stringify(offsets)?.slice(0, 60)}; expected [begin, end] with 0 <= begin <= end`);
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataLength) {
      fail(file, 'E_ST_OFFSETS', `tensor '${name}' ends at data byte ${end}, but the data section holds only ${dataLength} bytes; the file is truncated or its header is wrong`);
    }
    const dt = dtype as DType;
    let elements = 1;
    for (const d of shape as number[]) {
      elements *= d;
      if (!Number.isSafeInteger(elements)) fail(file, 'E_ST_SIZE', `tensor '${name}' has shape ${JSON.stringify(shape)} whose element count overflows`);
    }
    const byteLength = elements * DTYPE_SIZE[dt];
    if (byteLength !== end - begin) {
      fail(file, 'E_ST_SIZE', `tensor '${name}' is ${dt} ${JSON.stringify(shape)} = ${byteLength} bytes, but its data_offsets span ${end - begin} bytes`);
    }
    entries.push({ name, dtype: dt, shape: [...(shape as number[])], byteLength, begin, end });
  }

  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const e of entries) {
    if (e.begin !== expected) {
      const what = e.begin > expected ? `a gap of ${e.begin - expected} bytes before it` : `it overlaps the previous tensor by ${expected - e.begin} bytes`;
      fail(file, 'E_ST_LAYOUT', `tensor '${e.name}' starts at data byte ${e.begin} but the previous tensor ends at ${expected}: ${what}; the file is corrupt`);
    }
    expected = e.end;
  }
  if (expected !== dataLength) {
    fail(file, 'E_ST_LAYOUT', `the tensors cover ${expected} data bytes but the file has ${dataLength} after the header; the file has trailing bytes or was modified`);
  }
  return { headerLength, dataStart, entries, metadata };
}

function readFully(fd: number, target: Uint8Array, position: number, file: string): void {
  let off = 0;
  while (off < target.byteLength) {
    const n = readSync(fd, target, off, target.byteLength - off, position + off);
    if (n === 0) fail(file, 'E_ST_TRUNCATED', `unexpected end of file at byte ${position + off}; the file shrank or is truncated`);
    off += n;
  }
}

/** One safetensors file, opened for lazy positioned reads. */
export class SafetensorsFile implements TensorSource {
  readonly path: string;
  readonly header: ParsedHeader;
  private readonly byName: Map<string, HeaderEntry>;
  private fd: number | null;

  private constructor(path: string, fd: number, header: ParsedHeader) {
    this.path = path;
    this.fd = fd;
    this.header = header;
    this.byName = new Map(header.entries.map((e) => [e.name, e]));
  }

  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT') throw new InputError('E_NOT_FOUND', `${path}: no such file; check the path`);
      throw new RuntimeFailure('E_IO', `${path}: cannot open (${e.message})`, { cause: err });
    }
    try {
      const size = fstatSync(fd).size;
      if (size < 8) fail(path, 'E_ST_TRUNCATED', `the file is ${size} bytes, shorter than the 8-byte header length; it is not a safetensors file`);
      const prefix = new Uint8Array(8);
      readFully(fd, prefix, 0, path);
      const n = new DataView(prefix.buffer).getBigUint64(0, true);
      if (n > BigInt(MAX_HEADER_BYTES)) {
        fail(path, 'E_ST_HEADER_TOO_LARGE', `the header claims ${n} bytes, above the ${MAX_HEADER_BYTES}-byte limit; the file is corrupt or not a safetensors file`);
      }
      if (n > BigInt(size - 8)) {
        fail(path, 'E_ST_HEADER_TRUNCATED', `the header claims ${n} bytes but only ${size - 8} follow the length; the file is truncated or not a safetensors file`);
      }
      const headerBytes = new Uint8Array(Number(n));
      readFully(fd, headerBytes, 8, path);
      return new SafetensorsFile(path, fd, parseHeader(path, headerBytes, size));
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  get metadata(): Record<string, string> | null {
    return this.header.metadata;
  }

  names(): string[] {
    return [...this.byName.keys()].sort();
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    const e = this.entry(name);
    return { name: e.name, dtype: e.dtype, shape: [...e.shape], byteLength: e.byteLength };
  }

  private entry(name: string): HeaderEntry {
    const e = this.byName.get(name);
    if (!e) throw new MissingTensorError(`tensor '${name}' is not in ${this.path}`);
    return e;
  }

  private handle(): number {
    if (this.fd === null) throw new RuntimeFailure('E_CLOSED', `${this.path} was already closed`);
    return this.fd;
  }

  readRaw(name: string, options: RawReadOptions = {}): Uint8Array {
    const e = this.entry(name);
    if (options.into && options.into.byteLength !== e.byteLength) throw new RangeError(`readRaw: ${name} has ${e.byteLength} bytes, the target array ${options.into.byteLength}`);
    const buf = options.into ?? (options.shared ? new Uint8Array(new SharedArrayBuffer(e.byteLength)) : new Uint8Array(e.byteLength));
    readFully(this.handle(), buf, this.header.dataStart + e.begin, this.path);
    return buf;
  }

  readRawRange(name: string, from: number, into: Uint8Array): void {
    const e = this.entry(name);
    if (from < 0 || from + into.byteLength > e.byteLength) throw new RangeError(`readRawRange: bytes [${from}, ${from + into.byteLength}) are outside ${name}'s ${e.byteLength}`);
    readFully(this.handle(), into, this.header.dataStart + e.begin + from, this.path);
  }

  readFloat32(name: string, options: ReadOptions = {}): Float32Array {
    const e = this.entry(name);
    const count = e.byteLength / DTYPE_SIZE[e.dtype];
    if (options.into) {
      const into = options.into;
      if (into.length !== count) throw new RangeError(`readFloat32: ${name} has ${count} elements, the target array ${into.length}`);
      if (e.dtype === 'F32') {
        readFully(this.handle(), new Uint8Array(into.buffer, into.byteOffset, e.byteLength), this.header.dataStart + e.begin, this.path);
        return into;
      }
      piece ??= new Uint8Array(PIECE_BYTES);
      const size = DTYPE_SIZE[e.dtype];
      const step = PIECE_BYTES - (PIECE_BYTES % size);
      for (let off = 0; off < e.byteLength; off += step) {
        const n = Math.min(step, e.byteLength - off);
        const raw = piece.subarray(0, n);
        readFully(this.handle(), raw, this.header.dataStart + e.begin + off, this.path);
        decodeToFloat32(e.dtype, raw, into.subarray(off / size, (off + n) / size));
      }
      return into;
    }
    if (e.dtype === 'F32') {
      // read straight into the result's memory: no conversion, no copy
      const raw = this.readRaw(name, { shared: options.shared });
      return new Float32Array(raw.buffer, 0, count);
    }
    const out = options.shared ? new Float32Array(new SharedArrayBuffer(count * 4)) : new Float32Array(count);
    return decodeToFloat32(e.dtype, this.readRaw(name), out);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

// ---------------------------------------------------------------------------------------
// Writing

export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: number[];
}

export type TensorData = Float32Array | Uint8Array;

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Data layout order: larger element sizes first, then by name, as the reference Python
 * writer orders tensors (keeps every tensor aligned to its element size).
 */
export function layoutOrder(specs: readonly TensorSpec[]): TensorSpec[] {
  return [...specs].sort((a, b) => DTYPE_SIZE[b.dtype] - DTYPE_SIZE[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Where one declared tensor of an open SafetensorsWriter goes (see `placement`). */
export interface TensorPlacement {
  path: string;
  fd: number;
  /** Absolute offset of the tensor's bytes in the file. */
  offset: number;
  byteLength: number;
  name: string;
  dtype: DType;
  shape: number[];
}

function writeFullyAt(fd: number, bytes: Uint8Array, position: number): void {
  let off = 0;
  while (off < bytes.byteLength) off += writeSync(fd, bytes, off, bytes.byteLength - off, position + off);
}

/**
 * Write one tensor's data at its placement: float32 values converted to its dtype, or its raw
 * bytes. Half-precision output is encoded and written a piece at a time (PIECE_BYTES of output):
 * the encoded bytes are written while in cache, and nothing tensor-sized is allocated for them.
 */
export function writeTensorAt(place: TensorPlacement, data: TensorData): void {
  const { name, dtype, shape } = place;
  if (data instanceof Float32Array) {
    if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') {
      throw new InputError('E_DTYPE', `tensor '${name}' is declared ${dtype}; pass its raw bytes, float32 values convert only to F32, F16 or BF16`);
    }
    if (data.length !== elementCount(shape)) {
      throw new InputError('E_SHAPE_MISMATCH', `tensor '${name}' has ${data.length} values but its shape ${JSON.stringify(shape)} holds ${elementCount(shape)}`);
    }
    if (dtype !== 'F32') {
      if (data.length * 2 !== place.byteLength) throw new InputError('E_SHAPE_MISMATCH', `tensor '${name}' has ${data.length * 2} bytes but ${dtype} ${JSON.stringify(shape)} needs ${place.byteLength}`);
      piece ??= new Uint8Array(PIECE_BYTES);
      const per = PIECE_BYTES / 2;
      for (let i = 0; i < data.length; i += per) {
        const values = data.subarray(i, Math.min(data.length, i + per));
        writeFullyAt(place.fd, encodeFromFloat32(dtype, values, piece.subarray(0, values.length * 2)), place.offset + i * 2);
      }
      return;
    }
  }
  const bytes = data instanceof Float32Array ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : data;
  if (bytes.byteLength !== place.byteLength) {
    throw new InputError('E_SHAPE_MISMATCH', `tensor '${name}' has ${bytes.byteLength} bytes but ${dtype} ${JSON.stringify(shape)} needs ${place.byteLength}`);
  }
  writeFullyAt(place.fd, bytes, place.offset);
}

/**
 * Streaming writer of one safetensors file: the header is written first from the declared
 * specs, tensors are then written in any order with positioned writes; `close()` checks that
 * every tensor arrived and renames the temporary file into place.
 */
export class SafetensorsWriter {
  readonly path: string;
  private readonly tmp: string;
  private fd: number | null;
  private readonly slots = new Map<string, { spec: TensorSpec; offset: number; byteLength: number; written: boolean }>();

  /** Whether close() flushes the file to disk (fsync) before renaming it into place. */
  private readonly durable: boolean;

  constructor(path: string, specs: readonly TensorSpec[], metadata?: Record<string, string>, options: { durable?: boolean } = {}) {
    this.path = path;
    this.durable = options.durable ?? true;
    const header: Record<string, unknown> = {};
    if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
    let offset = 0;
    const seen = new Set<string>();
    for (const spec of specs) {
      if (seen.has(spec.name)) throw new InputError('E_DUPLICATE_TENSOR', `tensor '${spec.name}' is declared twice for ${path}`);
      if (spec.name === '__metadata__') throw new InputError('E_RESERVED_NAME', `'__metadata__' cannot be a tensor name (${path})`);
      seen.add(spec.name);
    }
    const entries: Array<[TensorSpec, number, number]> = [];
    for (const spec of layoutOrder(specs)) {
      const byteLength = elementCount(spec.shape) * DTYPE_SIZE[spec.dtype];
      entries.push([spec, offset, byteLength]);
      offset += byteLength;
    }
    for (const [spec, begin, byteLength] of entries) {
      header[spec.name] = { dtype: spec.dtype, shape: spec.shape, data_offsets: [begin, begin + byteLength] };
    }
    // pad the header with spaces so the data section starts 8-byte aligned (allowed by the format)
    let json = JSON.stringify(header);
    json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
    const headerBytes = Buffer.from(json, 'utf8');
    const dataStart = 8 + headerBytes.byteLength;
    for (const [spec, begin, byteLength] of entries) {
      this.slots.set(spec.name, { spec, offset: dataStart + begin, byteLength, written: false });
    }
    this.tmp = temporaryPathFor(path);
    this.fd = openSync(this.tmp, 'w');
    try {
      const prefix = Buffer.alloc(8);
      prefix.writeBigUInt64LE(BigInt(headerBytes.byteLength));
      this.writeAt(prefix, 0);
      this.writeAt(headerBytes, 8);
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  private writeAt(bytes: Uint8Array, position: number): void {
    writeFullyAt(this.fd!, bytes, position);
  }

  /** Write one declared tensor: float32 values (converted to its dtype) or its raw bytes. */
  write(name: string, data: TensorData): void {
    const place = this.placement(name);
    writeTensorAt(place, data);
    this.slots.get(name)!.written = true;
  }

  /**
   * Where a declared, not yet written tensor goes: this file's descriptor and the tensor's offset,
   * for a writer elsewhere (a worker thread of merge/parallel.ts) that then calls `markWritten`.
   */
  placement(name: string): TensorPlacement {
    const slot = this.slots.get(name);
    if (!slot) throw new InputError('E_UNDECLARED_TENSOR', `tensor '${name}' was not declared for ${this.path}`);
    if (slot.written) throw new InputError('E_DUPLICATE_TENSOR', `tensor '${name}' was already written to ${this.path}`);
    if (this.fd === null) throw new RuntimeFailure('E_CLOSED', `${this.path} writer is closed`);
    return { path: this.path, fd: this.fd, offset: slot.offset, byteLength: slot.byteLength, name, dtype: slot.spec.dtype, shape: slot.spec.shape };
  }

  /** Record that the tensor's bytes were written at its `placement`. */
  markWritten(name: string): void {
    this.placement(name);
    this.slots.get(name)!.written = true;
  }

  /** Names of declared tensors not written yet. */
  missing(): string[] {
    return [...this.slots.values()].filter((s) => !s.written).map((s) => s.spec.name);
  }

  /** Check completeness, flush, and rename into place. */
  close(): void {
    const missing = this.missing();
    if (missing.length > 0) {
      this.abort();
      throw new RuntimeFailure('E_INCOMPLETE_WRITE', `${this.path}: ${missing.length} declared tensors were never written (first: '${missing[0]}')`);
    }
    if (this.fd === null) return;
    if (this.durable) fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = null;
    renameSync(this.tmp, this.path);
  }

  /** Drop the temporary file; nothing appears under the final name. */
  abort(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    unlinkQuietly(this.tmp);
  }
}

/** Write a whole safetensors file at once (atomically). */
export function writeSafetensors(
  path: string,
  tensors: ReadonlyArray<TensorSpec & { data: TensorData }>,
  metadata?: Record<string, string>,
): void {
  const writer = new SafetensorsWriter(path, tensors, metadata);
  try {
    for (const t of tensors) writer.write(t.name, t.data);
  } catch (err) {
    writer.abort();
    throw err;
  }
  writer.close();
}
