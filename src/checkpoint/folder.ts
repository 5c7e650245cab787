/**
 * Hugging Face checkpoint folders: `config.json`, `model.safetensors` or shards listed in
 * `model.safetensors.index.json` (`weight_map`: tensor -> shard file, `metadata.total_size`),
 * and tokenizer files, which are copied through to every output folder.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { CheckpointFormatError, InputError, MissingTensorError, RuntimeFailure } from '../errors.ts';
import { DTYPE_SIZE, type DType } from '../tensor/dtype.ts';
import { temporaryPathFor, unlinkQuietly, writeFileAtomic } from './atomic.ts';
import { SafetensorsFile, SafetensorsWriter, type RawReadOptions, type ReadOptions, type TensorData, type TensorInfo, type TensorPlacement, type TensorSource, type TensorSpec } from './safetensors.ts';

export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model', 'vocab.json', 'merges.txt', 'added_tokens.json', 'generation_config.json', 'chat_template.jinja', 'chat_template.json'] as const;
export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

export interface LayerInfo {
  /** Number of layers: `num_hidden_layers` from the config, else the largest index found + 1. */
  count: number;
  /** The name prefix before the layer index, e.g. `model.layers.`; null when none is found. */
  prefix: string | null;
  /** Layer indices found in tensor names, ascending. */
  indices: number[];
}

export type CheckpointFormat = 'safetensors' | 'hf-folder' | 'lora-adapter';

export interface Checkpoint extends TensorSource {
  readonly format: CheckpointFormat;
  readonly config: Record<string, unknown> | null;
  readonly layers: LayerInfo;
  /** Safetensors files read, in order. */
  readonly files: readonly string[];
  /** Inconsistencies that do not stop reading (shown by `evomerge inspect`). */
  readonly warnings: readonly string[];
  tokenizerFiles(): string[];
}

const LAYER_PATTERN = /^(.*?(?:^|\.)(?:layers|h|blocks|block|layer)\.)(\d+)\./;

/** The index of the layer a tensor belongs to, with its prefix, or null for non-layer tensors. */
export function layerOf(name: string): { prefix: string; index: number } | null {
  const m = LAYER_PATTERN.exec(name);
  return m ? { prefix: m[1]!, index: Number(m[2]) } : null;
}

/** Detect the layer structure from tensor names and the config's layer count. */
export function detectLayers(names: readonly string[], config: Record<string, unknown> | null, warnings: string[]): LayerInfo {
  const byPrefix = new Map<string, Set<number>>();
  for (const n of names) {
    const l = layerOf(n);
    if (!l) continue;
    let set = byPrefix.get(l.prefix);
    if (!set) byPrefix.set(l.prefix, (set = new Set()));
    set.add(l.index);
  }
  let prefix: string | null = null;
  let indices: number[] = [];
  for (const [p, set] of byPrefix) {
    if (set.size > indices.length) {
      prefix = p;
      indices = [...set].sort((a, b) => a - b);
    }
  }
  const configured = config ? [config.num_hidden_layers, config.n_layer, config.num_layers].find((v) => typeof v === 'number') : undefined;
  const found = indices.length > 0 ? indices[indices.length - 1]! + 1 : 0;
  if (typeof configured === 'number' && indices.length > 0 && configured !== found) {
    warnings.push(`config.json says ${configured} layers but tensor names under '${prefix}' go up to layer ${found - 1}`);
  }
  if (indices.length > 0 && indices.length !== found) {
    warnings.push(`layer indices under '${prefix}' are not contiguous: ${indices.length} layers found, highest ${found - 1}`);
  }
  return { count: typeof configured === 'number' ? configured : found, prefix, indices };
}

function readJson(file: string, code: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CheckpointFormatError(code, file, `cannot read (${(err as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CheckpointFormatError(code, file, `not valid JSON (${(err as Error).message})`);
  }
}

/** Parse a JSON object file of a folder (`config.json` by default); null when absent. */
export function readConfig(dir: string, name = 'config.json'): Record<string, unknown> | null {
  const file = join(dir, name);
  if (!existsSync(file)) return null;
  const json = readJson(file, 'E_CONFIG_JSON');
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new CheckpointFormatError('E_CONFIG_JSON', file, `${name} must be a JSON object`);
  }
  return json as Record<string, unknown>;
}

/** Tensors spread over several safetensors files, each tensor in exactly one. */
class ShardedSource implements TensorSource {
  readonly path: string;
  readonly shards: SafetensorsFile[];
  private readonly where = new Map<string, SafetensorsFile>();

  constructor(path: string, shards: SafetensorsFile[], where: Map<string, SafetensorsFile>) {
    this.path = path;
    this.shards = shards;
    this.where = where;
  }

  private shard(name: string): SafetensorsFile {
    const s = this.where.get(name);
    if (!s) throw new MissingTensorError(`tensor '${name}' is not in ${this.path}`);
    return s;
  }

  names(): string[] {
    return [...this.where.keys()].sort();
  }
  has(name: string): boolean {
    return this.where.has(name);
  }
  info(name: string): TensorInfo {
    return this.shard(name).info(name);
  }
  readRaw(name: string, options?: RawReadOptions): Uint8Array {
    return this.shard(name).readRaw(name, options);
  }
  readRawRange(name: string, from: number, into: Uint8Array): void {
    this.shard(name).readRawRange(name, from, into);
  }
  readFloat32(name: string, options?: ReadOptions): Float32Array {
    return this.shard(name).readFloat32(name, options);
  }
  close(): void {
    for (const s of this.shards) s.close();
  }
}

function safeShardName(indexFile: string, value: unknown, tensor: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.includes('/') || value.includes('\\') || value === '..' || value === '.') {
    throw new CheckpointFormatError('E_INDEX', indexFile, `weight_map['${tensor}'] is ${JSON.stringify(value)}; it must be a file name in the same folder`);
  }
  return value;
}

function openSharded(dir: string, warnings: string[]): ShardedSource {
  const indexFile = join(dir, INDEX_FILE);
  const index = readJson(indexFile, 'E_INDEX');
  if (index === null || typeof index !== 'object' || Array.isArray(index)) {
    throw new CheckpointFormatError('E_INDEX', indexFile, 'the index must be a JSON object with a weight_map');
  }
  const { weight_map: weightMap, metadata } = index as { weight_map?: unknown; metadata?: unknown };
  if (weightMap === null || typeof weightMap !== 'object' || Array.isArray(weightMap)) {
    throw new CheckpointFormatError('E_INDEX', indexFile, 'weight_map is missing or not an object of tensor name -> shard file');
  }
  const files = new Map<string, SafetensorsFile>();
  const where = new Map<string, SafetensorsFile>();
  try {
    for (const [tensor, value] of Object.entries(weightMap as Record<string, unknown>)) {
      const shardName = safeShardName(indexFile, value, tensor);
      let shard = files.get(shardName);
      if (!shard) {
        const shardPath = join(dir, shardName);
        if (!existsSync(shardPath)) throw new CheckpointFormatError('E_INDEX', indexFile, `weight_map names shard '${shardName}' (for '${tensor}'), which is not in ${dir}`);
        shard = SafetensorsFile.open(shardPath);
        files.set(shardName, shard);
      }
      if (!shard.has(tensor)) throw new CheckpointFormatError('E_INDEX', indexFile, `weight_map puts '${tensor}' in ${shardName}, but that shard does not contain it`);
      where.set(tensor, shard);
    }
    let total = 0;
    for (const [shardName, shard] of files) {
      for (const name of shard.names()) {
        const listed = where.get(name);
        if (listed !== shard) {
          throw new CheckpointFormatError('E_INDEX', indexFile, listed
            ? `tensor '${name}' is in ${shardName} and in ${basename(listed.path)}; a tensor must be in one shard`
            : `tensor '${name}' is in ${shardName} but not in weight_map; the index is stale, regenerate it`);
        }
        total += shard.info(name).byteLength;
      }
    }
    const declared = metadata && typeof metadata === 'object' ? (metadata as Record<string, unknown>).total_size : undefined;
    if (declared !== undefined && declared !== total) {
      warnings.push(`${INDEX_FILE} declares metadata.total_size ${String(declared)} but the tensors hold ${total} bytes`);
    }
  } catch (err) {
    for (const f of files.values()) f.close();
    throw err;
  }
  return new ShardedSource(dir, [...files.values()], where);
}

class OpenCheckpoint implements Checkpoint {
  readonly format: CheckpointFormat;
  readonly config: Record<string, unknown> | null;
  readonly layers: LayerInfo;
  readonly files: readonly string[];
  readonly warnings: readonly string[];
  readonly path: string;
  private readonly source: TensorSource;
  private readonly dir: string | null;

  constructor(format: CheckpointFormat, source: TensorSource, files: string[], config: Record<string, unknown> | null, dir: string | null, warnings: string[]) {
    this.path = dir ?? source.path;
    this.format = format;
    this.source = source;
    this.files = files;
    this.config = config;
    this.dir = dir;
    this.layers = detectLayers(source.names(), config, warnings);
    this.warnings = warnings;
  }
  names(): string[] {
    return this.source.names();
  }
  has(name: string): boolean {
    return this.source.has(name);
  }
  info(name: string): TensorInfo {
    return this.source.info(name);
  }
  readRaw(name: string, options?: RawReadOptions): Uint8Array {
    return this.source.readRaw(name, options);
  }
  readRawRange(name: string, from: number, into: Uint8Array): void {
    this.source.readRawRange(name, from, into);
  }
  readFloat32(name: string, options?: ReadOptions): Float32Array {
    return this.source.readFloat32(name, options);
  }
  close(): void {
    this.source.close();
  }
  tokenizerFiles(): string[] {
    if (!this.dir) return [];
    return TOKENIZER_FILES.map((f) => join(this.dir!, f)).filter((p) => existsSync(p));
  }
}

/**
 * Open a checkpoint: a `.safetensors` file, a Hugging Face folder (single file or sharded),
 * or a PEFT LoRA adapter folder (its raw lora_A / lora_B tensors; see `openLoraAdapter` for
 * the materialised updates).
 */
export function openCheckpoint(path: string): Checkpoint {
  const abs = resolve(path);
  let st;
  try {
    st = statSync(abs);
  } catch {
    throw new InputError('E_NOT_FOUND', `${path}: no such file or folder; check the path`);
  }
  const warnings: string[] = [];
  if (st.isFile()) {
    const file = SafetensorsFile.open(abs);
    return new OpenCheckpoint('safetensors', file, [abs], null, null, warnings);
  }
  if (!st.isDirectory()) throw new InputError('E_NOT_FOUND', `${path} is neither a file nor a folder`);
  if (existsSync(join(abs, 'adapter_config.json'))) {
    const file = join(abs, 'adapter_model.safetensors');
    if (!existsSync(file)) throw new CheckpointFormatError('E_LORA', abs, 'adapter_config.json is here but adapter_model.safetensors is not (evomerge reads safetensors adapters only)');
    return new OpenCheckpoint('lora-adapter', SafetensorsFile.open(file), [file], readConfig(abs), abs, warnings);
  }
  const config = readConfig(abs);
  if (existsSync(join(abs, INDEX_FILE))) {
    const source = openSharded(abs, warnings);
    return new OpenCheckpoint('hf-folder', source, source.shards.map((s) => s.path), config, abs, warnings);
  }
  if (existsSync(join(abs, SINGLE_FILE))) {
    const file = join(abs, SINGLE_FILE);
    return new OpenCheckpoint('hf-folder', SafetensorsFile.open(file), [file], config, abs, warnings);
  }
  const entries = readdirSync(abs);
  const others = entries.filter((f) => f.endsWith('.safetensors'));
  if (others.length === 1) {
    const file = join(abs, others[0]!);
    return new OpenCheckpoint('hf-folder', SafetensorsFile.open(file), [file], config, abs, warnings);
  }
  const hint = entries.some((f) => f.endsWith('.bin') || f.endsWith('.pt'))
    ? ' It holds PyTorch pickle files: convert them to safetensors first (e.g. with the safetensors convert script), since evomerge never unpickles.'
    : '';
  throw new InputError('E_NO_WEIGHTS', `${path}: no ${SINGLE_FILE}, no ${INDEX_FILE} and no single *.safetensors file.${hint}`);
}

// ---------------------------------------------------------------------------------------
// Writing a folder

export interface CheckpointWriterOptions {
  tensors: readonly TensorSpec[];
  /** Largest shard in bytes; a tensor larger than this gets a shard of its own. Default 5 GB. */
  maxShardBytes?: number;
  metadata?: Record<string, string>;
  /**
   * Flush every shard to disk before it is renamed into place (default true). A folder that is
   * read once and deleted (a search candidate for a command evaluator) skips it: measured, the
   * flush of a 2.2 GB candidate took as long as writing it.
   */
  durable?: boolean;
}

export interface FinishOptions {
  config?: object;
  /** Copy tokenizer files from this checkpoint (or folder path). */
  tokenizerFrom?: Checkpoint | string;
  /** Tokenizer files (names) not to copy, e.g. those an output vocabulary replaces. */
  tokenizerSkip?: readonly string[];
  /** Further text files to write (name -> content), e.g. README.md. */
  files?: Record<string, string>;
}

const DEFAULT_SHARD_BYTES = 5_000_000_000;

/**
 * Streaming writer of a Hugging Face folder. Every tensor is declared up front (so headers
 * can be written first); tensors then arrive one at a time in any order, and memory holds
 * only the one being written. Shards, index, config and tokenizer files are each written
 * under a temporary name and renamed when complete; the index is written last.
 */
export class CheckpointWriter {
  readonly dir: string;
  private readonly writers: SafetensorsWriter[] = [];
  private readonly shardOf = new Map<string, SafetensorsWriter>();
  private readonly weightMap: Record<string, string> = {};
  private readonly totalSize: number;
  private readonly sharded: boolean;
  private finished = false;

  constructor(dir: string, options: CheckpointWriterOptions) {
    this.dir = resolve(dir);
    const max = options.maxShardBytes ?? DEFAULT_SHARD_BYTES;
    if (!(max > 0)) throw new InputError('E_SHARD_SIZE', `the shard size must be positive, got ${max}`);
    const groups: TensorSpec[][] = [];
    let current: TensorSpec[] = [];
    let bytes = 0;
    let total = 0;
    for (const spec of options.tensors) {
      const size = spec.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[spec.dtype as DType];
      if (current.length > 0 && bytes + size > max) {
        groups.push(current);
        current = [];
        bytes = 0;
      }
      current.push(spec);
      bytes += size;
      total += size;
    }
    if (current.length > 0 || groups.length === 0) groups.push(current);
    this.totalSize = total;
    this.sharded = groups.length > 1;
    mkdirSync(this.dir, { recursive: true });
    const width = String(groups.length).padStart(5, '0');
    try {
      groups.forEach((group, i) => {
        const file = this.sharded ? `model-${String(i + 1).padStart(5, '0')}-of-${width}.safetensors` : SINGLE_FILE;
        const writer = new SafetensorsWriter(join(this.dir, file), group, options.metadata ?? { format: 'pt' }, { durable: options.durable });
        this.writers.push(writer);
        for (const spec of group) {
          this.shardOf.set(spec.name, writer);
          this.weightMap[spec.name] = file;
        }
      });
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  get shardCount(): number {
    return this.writers.length;
  }

  write(name: string, data: TensorData): void {
    const w = this.shardOf.get(name);
    if (!w) throw new InputError('E_UNDECLARED_TENSOR', `tensor '${name}' was not declared for ${this.dir}`);
    w.write(name, data);
  }

  /** Where a declared tensor goes (its shard's descriptor and offset), for a write from a worker thread (SafetensorsWriter.placement). */
  placement(name: string): TensorPlacement {
    const w = this.shardOf.get(name);
    if (!w) throw new InputError('E_UNDECLARED_TENSOR', `tensor '${name}' was not declared for ${this.dir}`);
    return w.placement(name);
  }

  /** Record that a tensor's bytes were written at its `placement`. */
  markWritten(name: string): void {
    const w = this.shardOf.get(name);
    if (!w) throw new InputError('E_UNDECLARED_TENSOR', `tensor '${name}' was not declared for ${this.dir}`);
    w.markWritten(name);
  }

  finish(extra: FinishOptions = {}): void {
    if (this.finished) return;
    // every shard must be complete before any is renamed into place
    const missing = this.writers.flatMap((w) => w.missing());
    if (missing.length > 0) {
      this.abort();
      throw new RuntimeFailure('E_INCOMPLETE_WRITE', `${this.dir}: ${missing.length} declared tensors were never written (first: '${missing[0]}')`);
    }
    try {
      for (const w of this.writers) w.close();
    } catch (err) {
      this.abort();
      throw err;
    }
    if (extra.config) writeFileAtomic(join(this.dir, 'config.json'), `${JSON.stringify(extra.config, null, 2)}\n`);
    const from = extra.tokenizerFrom;
    if (from) {
      const files = typeof from === 'string' ? TOKENIZER_FILES.map((f) => join(from, f)).filter((p) => existsSync(p)) : from.tokenizerFiles();
      for (const src of files) {
        if (extra.tokenizerSkip?.includes(basename(src))) continue;
        const dst = join(this.dir, basename(src));
        const tmp = temporaryPathFor(dst);
        copyFileSync(src, tmp);
        renameAtomic(tmp, dst);
      }
    }
    for (const [name, content] of Object.entries(extra.files ?? {})) writeFileAtomic(join(this.dir, name), content);
    if (this.sharded) {
      const index = { metadata: { total_size: this.totalSize }, weight_map: sortedObject(this.weightMap) };
      writeFileAtomic(join(this.dir, INDEX_FILE), `${JSON.stringify(index, null, 2)}\n`);
    }
    this.finished = true;
  }

  /** Remove every temporary file; no shard appears under its final name. */
  abort(): void {
    for (const w of this.writers) w.abort();
  }
}

function renameAtomic(tmp: string, dst: string): void {
  try {
    renameSync(tmp, dst);
  } catch (err) {
    unlinkQuietly(tmp);
    throw err;
  }
}

function sortedObject(obj: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(obj).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
