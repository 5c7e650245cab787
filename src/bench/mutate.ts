/**
 * Seeded mutations of evomerge's inputs, for the fuzz benchmark and the fuzz tests: structural
 * mutations of a safetensors file (the header length, the JSON text, its values: huge, negative,
 * fractional numbers, wrong types, other dtypes; truncations) and of parsed documents (search
 * spaces, recipes, evaluator manifests: wrong types, missing fields, unknown keys).
 */
import type { Rng } from '../tensor/rng.ts';

/** Safetensors bytes around a header given as raw bytes, with an optional false length. */
export function safetensorsFromHeaderBytes(json: Uint8Array, data: Uint8Array, lengthOverride?: bigint): Uint8Array {
  const out = new Uint8Array(8 + json.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.byteLength), true);
  out.set(json, 8);
  out.set(data, 8 + json.byteLength);
  return out;
}

export const HUGE_NUMBERS = [2 ** 53, 2 ** 64, 1e300, -1, 0.5, 2 ** 31, 2 ** 32 - 1, Number.MAX_SAFE_INTEGER];
const DTYPE_NAMES = ['F32', 'F16', 'BF16', 'F64', 'I64', 'U8', 'BOOL', 'F8_E4M3', 'f32', '', 'U64'];

export function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.int(items.length)]!;
}

function mutateValue(rng: Rng, v: unknown): unknown {
  const r = rng.int(6);
  if (r === 0) return pick(rng, HUGE_NUMBERS);
  if (r === 1) return pick(rng, DTYPE_NAMES);
  if (r === 2) return null;
  if (r === 3) return [pick(rng, HUGE_NUMBERS)];
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
      const len = rng.int(2) === 0 ? BigInt(n + rng.int(64) - 32) : BigInt(pick(rng, HUGE_NUMBERS.filter((x) => x >= 0 && Number.isInteger(x))));
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

const WRONG_VALUES: unknown[] = [null, true, 'x', '', -1, 0, 0.5, 1e300, 2 ** 53, -(2 ** 31), [], {}, [1, 'a'], { x: 1 }, '../../outside', '/etc/passwd', 'NaN', Number.MAX_SAFE_INTEGER];

/** Every path (array of keys and indices) of a JSON-like document, the root included. */
function paths(doc: unknown, prefix: Array<string | number> = [], out: Array<Array<string | number>> = []): Array<Array<string | number>> {
  out.push(prefix);
  if (Array.isArray(doc)) doc.forEach((v, i) => paths(v, [...prefix, i], out));
  else if (doc && typeof doc === 'object') for (const [k, v] of Object.entries(doc)) paths(v, [...prefix, k], out);
  return out;
}

/**
 * A seeded structural mutation of a parsed document (a search space, a recipe, a manifest):
 * one to three edits, each deleting a field, giving it a value of another type or an extreme
 * number, adding an unknown key, or emptying or growing an array.
 */
export function mutateDocument(doc: unknown, rng: Rng): { doc: unknown; kind: string } {
  const copy = structuredClone(doc) as unknown;
  const kinds: string[] = [];
  let root = copy;
  for (let k = 0, n = 1 + rng.int(3); k < n; k++) {
    const all = paths(root);
    const path = pick(rng, all);
    if (path.length === 0) {
      const op = rng.int(3);
      kinds.push('root');
      root = op === 0 ? pick(rng, WRONG_VALUES) : op === 1 ? [root] : {};
      continue;
    }
    const parentPath = path.slice(0, -1);
    const key = path[path.length - 1]!;
    const parent = parentPath.reduce<unknown>((o, p) => (o as Record<string | number, unknown>)[p], root) as Record<string | number, unknown>;
    const op = rng.int(5);
    const name = String(path.filter((p) => typeof p === 'string').pop() ?? 'item');
    if (op === 0) {
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
      kinds.push(`delete:${name}`);
    } else if (op === 1) {
      parent[key] = pick(rng, WRONG_VALUES);
      kinds.push(`type:${name}`);
    } else if (op === 2) {
      const v = parent[key];
      parent[key] = typeof v === 'number' ? pick(rng, [v * 1e9, -v, v + 0.5, 2 ** 53, 1e300, -1, 0]) : pick(rng, HUGE_NUMBERS);
      kinds.push(`number:${name}`);
    } else if (op === 3) {
      const target = parent[key];
      if (target && typeof target === 'object' && !Array.isArray(target)) (target as Record<string, unknown>)[`unknown_${rng.int(3)}`] = pick(rng, WRONG_VALUES);
      else if (!Array.isArray(parent)) parent[`unknown_${rng.int(3)}`] = 1;
      kinds.push(`unknown-key:${name}`);
    } else {
      const v = parent[key];
      if (Array.isArray(v)) parent[key] = rng.int(2) === 0 ? [] : [...v, ...v, pick(rng, WRONG_VALUES)];
      else parent[key] = [v];
      kinds.push(`array:${name}`);
    }
  }
  return { doc: root, kind: kinds.join('+') };
}
