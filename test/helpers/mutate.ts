/**
 * Seeded structural mutations of a safetensors file: the header length, the JSON text, its
 * values (huge, negative, fractional numbers; wrong types; other dtypes), and truncations.
 */
import type { Rng } from '../../src/tensor/rng.ts';
import { safetensorsFromHeaderBytes } from './safetensors-bytes.ts';

const HUGE = [2 ** 53, 2 ** 64, 1e300, -1, 0.5, 2 ** 31, 2 ** 32 - 1, Number.MAX_SAFE_INTEGER];
const DTYPE_NAMES = ['F32', 'F16', 'BF16', 'F64', 'I64', 'U8', 'BOOL', 'F8_E4M3', 'f32', '', 'U64'];

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.int(items.length)]!;
}

function mutateValue(rng: Rng, v: unknown): unknown {
  const r = rng.int(6);
  if (r === 0) return pick(rng, HUGE);
  if (r === 1) return pick(rng, DTYPE_NAMES);
  if (r === 2) return null;
  if (r === 3) return [pick(rng, HUGE)];
  if (r === 4) return typeof v === 'number' ? v + (rng.int(3) - 1) : {};
  return 'x';
}

export function mutateSafetensors(original: Uint8Array, rng: Rng): { bytes: Uint8Array; kind: string } {
  const n = Number(new DataView(original.buffer, original.byteOffset).getBigUint64(0, true));
  const headerText = Buffer.from(original.subarray(8, 8 + n)).toString('utf8');
  const data = original.subarray(8 + n);
  const kind = rng.int(7);
  switch (kind) {
    case 0: { // header length
      const len = rng.int(2) === 0 ? BigInt(n + rng.int(64) - 32) : BigInt(pick(rng, HUGE.filter((x) => x >= 0 && Number.isInteger(x))));
      return { bytes: safetensorsFromHeaderBytes(Buffer.from(headerText), data, len < 0n ? 0n : len & (2n ** 64n - 1n)), kind: 'length' };
    }
    case 1: { // truncate anywhere
      return { bytes: original.slice(0, rng.int(original.byteLength)), kind: 'truncate' };
    }
    case 2: { // flip bytes in the header
      const bytes = original.slice();
      for (let k = 0; k < 1 + rng.int(4); k++) bytes[8 + rng.int(n)] = rng.int(256);
      return { bytes, kind: 'flip' };
    }
    case 3: { // append bytes
      const extra = new Uint8Array(1 + rng.int(16));
      const bytes = new Uint8Array(original.byteLength + extra.byteLength);
      bytes.set(original);
      return { bytes, kind: 'append' };
    }
    default: { // structured JSON mutation
      const header = JSON.parse(headerText) as Record<string, Record<string, unknown>>;
      const names = Object.keys(header);
      const name = pick(rng, names);
      const entry = header[name]!;
      const fields = name === '__metadata__' ? Object.keys(entry) : ['dtype', 'shape', 'data_offsets'];
      const field = pick(rng, fields);
      const op = rng.int(4);
      if (op === 0) delete entry[field];
      else if (op === 1 && Array.isArray(entry[field])) {
        const arr = [...(entry[field] as unknown[])];
        arr[rng.int(arr.length + 1)] = mutateValue(rng, arr[0]);
        entry[field] = arr;
      } else if (op === 2) entry[`extra${rng.int(3)}`] = 1;
      else entry[field] = mutateValue(rng, entry[field]);
      return { bytes: safetensorsFromHeaderBytes(Buffer.from(JSON.stringify(header)), data), kind: `json:${field}` };
    }
  }
}
