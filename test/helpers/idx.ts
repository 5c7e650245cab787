/**
 * An IDX file written by hand from the format's definition (LeCun et al.: two zero bytes, the
 * type byte, the number of dimensions, each dimension as a big-endian u32, then the values),
 * independent of the zoo's own encoder that the evaluators' readers are tested against.
 */
export function idx(type: number, dims: number[], values: number[]): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = type;
  head[3] = dims.length;
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, Buffer.from(values)]);
}
