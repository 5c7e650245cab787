/**
 * Stored distributions. FuseLLM computes each model's top-k distributions once, aligns them once
 * and saves them with the dataset (forward_for_logits.py, then the token-alignment script), so
 * training reads them every epoch without running the source models again. We keep one
 * safetensors file per source (or per fused set):
 *   ids     I32 [N, T, k]  token ids in the pivot vocabulary, -1 in padding slots
 *   probs   F32 [N, T, k]  probabilities, 0 in padding slots
 *   lengths I32 [N]        positions of each sequence (T = the largest)
 * and `__metadata__` strings from the caller (source name, pivot vocab size, mapping kind, text
 * hash, ...) plus `k`, written by us. Writing goes through the project's atomic safetensors
 * writer: a crash leaves the old file or none, never half of one.
 */
import { CheckpointFormatError, InputError } from '../errors.ts';
import { SafetensorsFile, writeSafetensors } from '../checkpoint/safetensors.ts';
import { type TopK, checkTopK } from './distributions.ts';

const bytesOf = (a: Int32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * Write the distributions of N sequences (all with the same k) to `file`, atomically.
 * `metadata.k`, when given, must equal that k; it is written in any case.
 */
export function writeDistributions(file: string, seqs: readonly TopK[], metadata: Record<string, string>): void {
  if (seqs.length === 0) throw new InputError('E_FUSE_EMPTY', `writeDistributions: no sequences to write to ${file}; compute the distributions of at least one text first`);
  const k = seqs[0]!.k;
  let T = 0;
  seqs.forEach((d, n) => {
    checkTopK(d, `writeDistributions: sequence ${n}`);
    if (d.k !== k) throw new InputError('E_FUSE_K', `writeDistributions: sequence ${n} has k = ${d.k}, sequence 0 has k = ${k}; every sequence of one file has the same k`);
    T = Math.max(T, d.length);
  });
  if (metadata.k !== undefined && metadata.k !== String(k)) {
    throw new InputError('E_FUSE_K', `writeDistributions: metadata says k = ${metadata.k} but the sequences have k = ${k}`);
  }
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string') throw new InputError('E_FUSE_METADATA', `writeDistributions: metadata '${key}' is ${typeof value}; safetensors metadata values are strings`);
  }
  const N = seqs.length;
  const ids = new Int32Array(N * T * k).fill(-1);
  const probs = new Float32Array(N * T * k);
  const lengths = new Int32Array(N);
  seqs.forEach((d, n) => {
    ids.set(d.ids, n * T * k);
    probs.set(d.probs, n * T * k);
    lengths[n] = d.length;
  });
  writeSafetensors(
    file,
    [
      { name: 'ids', dtype: 'I32', shape: [N, T, k], data: bytesOf(ids) },
      { name: 'probs', dtype: 'F32', shape: [N, T, k], data: probs },
      { name: 'lengths', dtype: 'I32', shape: [N], data: bytesOf(lengths) },
    ],
    { ...metadata, k: String(k) },
  );
}

/** Read a file written by `writeDistributions`; every sequence comes back at its own length. */
export function readDistributions(file: string): { seqs: TopK[]; metadata: Record<string, string> } {
  const st = SafetensorsFile.open(file);
  try {
    const bad = (message: string): never => {
      throw new CheckpointFormatError('E_FUSE_STORE', file, `${message}; it is not a distributions file of evomerge fuse (rewrite it with writeDistributions)`);
    };
    for (const [name, dtype] of [['ids', 'I32'], ['probs', 'F32'], ['lengths', 'I32']] as const) {
      if (!st.has(name)) bad(`tensor '${name}' is missing`);
      if (st.info(name).dtype !== dtype) bad(`tensor '${name}' is ${st.info(name).dtype}, not ${dtype}`);
    }
    const shape = st.info('ids').shape;
    if (shape.length !== 3) bad(`tensor 'ids' has shape ${JSON.stringify(shape)}, not [N, T, k]`);
    const [N, T, k] = shape as [number, number, number];
    if (JSON.stringify(st.info('probs').shape) !== JSON.stringify(shape)) bad(`tensor 'probs' has shape ${JSON.stringify(st.info('probs').shape)}, 'ids' ${JSON.stringify(shape)}`);
    if (JSON.stringify(st.info('lengths').shape) !== JSON.stringify([N])) bad(`tensor 'lengths' has shape ${JSON.stringify(st.info('lengths').shape)}, not [${N}]`);
    const metadata = { ...(st.metadata ?? {}) };
    if (metadata.k !== String(k)) bad(`metadata k = ${metadata.k ?? '(none)'} disagrees with the tensors' k = ${k}`);
    const rawIds = st.readRaw('ids');
    const ids = new Int32Array(rawIds.buffer, rawIds.byteOffset, N * T * k);
    const probs = st.readFloat32('probs');
    const rawLengths = st.readRaw('lengths');
    const lengths = new Int32Array(rawLengths.buffer, rawLengths.byteOffset, N);
    const seqs: TopK[] = [];
    for (let n = 0; n < N; n++) {
      const length = lengths[n]!;
      if (!(length >= 0 && length <= T)) bad(`sequence ${n} has length ${length}, outside 0..${T}`);
      const from = n * T * k;
      seqs.push({ length, k, ids: ids.slice(from, from + length * k), probs: probs.slice(from, from + length * k) });
    }
    return { seqs, metadata };
  } finally {
    st.close();
  }
}
