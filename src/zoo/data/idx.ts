/**
 * The IDX format of MNIST and Fashion-MNIST (LeCun et al., http://yann.lecun.com/exdb/mnist/,
 * section "FILE FORMATS FOR THE MNIST DATABASE"): a big-endian header of a magic number whose
 * third byte is the element type (0x08 = unsigned byte) and fourth the number of dimensions,
 * then one u32 size per dimension, then the values. Images are 2051 (3 dims), labels 2049 (1).
 */
import { InputError } from '../../errors.ts';

export class IdxFormatError extends InputError {
  constructor(file: string, message: string) {
    super('E_IDX_FORMAT', `${file}: ${message}; is this an uncompressed IDX file (MNIST format)?`);
  }
}

export interface IdxArray {
  /** Sizes of each dimension, e.g. [60000, 28, 28]. */
  dims: number[];
  data: Uint8Array;
}

/** Parses an unsigned-byte IDX file; `file` names it in errors. */
export function parseIdx(bytes: Uint8Array, file: string): IdxArray {
  if (bytes.byteLength < 4) throw new IdxFormatError(file, `has ${bytes.byteLength} bytes, fewer than the 4-byte magic`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint16(0) !== 0) throw new IdxFormatError(file, 'the magic number does not start with two zero bytes');
  const type = bytes[2]!;
  if (type !== 0x08) throw new IdxFormatError(file, `element type 0x${type.toString(16)} is not unsigned byte (0x08)`);
  const ndim = bytes[3]!;
  const header = 4 + 4 * ndim;
  if (ndim < 1 || bytes.byteLength < header) throw new IdxFormatError(file, `header of ${ndim} dimensions is truncated`);
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(view.getUint32(4 + 4 * i));
  const n = dims.reduce((a, b) => a * b, 1);
  if (bytes.byteLength !== header + n) throw new IdxFormatError(file, `dimensions [${dims.join(',')}] need ${header + n} bytes but the file has ${bytes.byteLength}`);
  return { dims, data: bytes.subarray(header) };
}

/** Encodes an unsigned-byte IDX array (the inverse of parseIdx). */
export function encodeIdx(dims: readonly number[], data: Uint8Array): Uint8Array {
  const n = dims.reduce((a, b) => a * b, 1);
  if (n !== data.length) throw new RangeError(`IDX dims [${dims.join(',')}] need ${n} values, got ${data.length}`);
  const out = new Uint8Array(4 + 4 * dims.length + n);
  const view = new DataView(out.buffer);
  out[2] = 0x08;
  out[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d));
  out.set(data, 4 + 4 * dims.length);
  return out;
}
