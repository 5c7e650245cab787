import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointFormatError } from '../src/errors.ts';
import { SafetensorsFile, SafetensorsWriter, topLevelKeys, writeSafetensors } from '../src/checkpoint/index.ts';
import { DTYPES, DTYPE_SIZE } from '../src/tensor/dtype.ts';
import { safetensorsBytes } from './helpers/safetensors-bytes.ts';
import { tempDir } from './helpers/tmp.ts';

const dir = tempDir();
let counter = 0;
function fileWith(bytes: Uint8Array): string {
  const path = join(dir, `case-${counter++}.safetensors`);
  writeFileSync(path, bytes);
  return path;
}

function assertRejects(bytes: Uint8Array, code: string, messagePart?: RegExp): void {
  const path = fileWith(bytes);
  assert.throws(() => SafetensorsFile.open(path), (err: unknown) => {
    assert.ok(err instanceof CheckpointFormatError, `expected CheckpointFormatError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.ok(err.message.includes(path), 'the message names the file');
    if (messagePart) assert.match(err.message, messagePart);
    return true;
  });
}

const f32 = (n: number) => ({ dtype: 'F32', shape: [n], data_offsets: [0, 4 * n] });

test('a valid hand-built file reads back exactly', () => {
  const data = new Uint8Array(new Float32Array([1, 2, 3]).buffer);
  const file = SafetensorsFile.open(fileWith(safetensorsBytes({ __metadata__: { format: 'pt' }, x: f32(3) }, data)));
  assert.deepEqual(file.names(), ['x']);
  assert.deepEqual(file.metadata, { format: 'pt' });
  assert.deepEqual(Array.from(file.readFloat32('x')), [1, 2, 3]);
  file.close();
});

test('a file shorter than the 8-byte length prefix is rejected', () => {
  assertRejects(new Uint8Array(5), 'E_ST_TRUNCATED');
});

test('a header length above the 100 MB cap is rejected before any allocation', () => {
  assertRejects(safetensorsBytes({}, new Uint8Array(0), 2n ** 62n), 'E_ST_HEADER_TOO_LARGE');
  assertRejects(safetensorsBytes({}, new Uint8Array(0), 100_000_001n), 'E_ST_HEADER_TOO_LARGE');
});

test('a header length beyond the end of the file is rejected', () => {
  assertRejects(safetensorsBytes({}, new Uint8Array(0), 1000n), 'E_ST_HEADER_TRUNCATED');
});

test('a header that is not valid UTF-8 is rejected', () => {
  const bytes = safetensorsBytes('{"x":1}');
  bytes[10] = 0xff;
  assertRejects(bytes, 'E_ST_HEADER_UTF8');
});

test('a header that is not a JSON object is rejected', () => {
  assertRejects(safetensorsBytes('{"x": '), 'E_ST_HEADER_JSON');
  assertRejects(safetensorsBytes('[1,2]'), 'E_ST_HEADER_JSON');
  assertRejects(safetensorsBytes('null'), 'E_ST_HEADER_JSON');
});

test('__metadata__ with a non-string value is rejected', () => {
  assertRejects(safetensorsBytes({ __metadata__: { step: 3 } }), 'E_ST_METADATA', /step/);
  assertRejects(safetensorsBytes({ __metadata__: ['a'] }), 'E_ST_METADATA');
});

test('an unknown dtype is rejected and the supported ones are listed', () => {
  assertRejects(safetensorsBytes({ x: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)), 'E_ST_DTYPE', /BF16/);
});

test('a shape with a negative or fractional entry is rejected', () => {
  assertRejects(safetensorsBytes({ x: { dtype: 'U8', shape: [-1], data_offsets: [0, 1] } }, new Uint8Array(1)), 'E_ST_SHAPE');
  assertRejects(safetensorsBytes({ x: { dtype: 'U8', shape: [1.5], data_offsets: [0, 1] } }, new Uint8Array(1)), 'E_ST_SHAPE');
  assertRejects(safetensorsBytes({ x: { dtype: 'U8', shape: 'big', data_offsets: [0, 1] } }, new Uint8Array(1)), 'E_ST_SHAPE');
});

test('data_offsets beyond the data section or reversed are rejected', () => {
  assertRejects(safetensorsBytes({ x: f32(4) }, new Uint8Array(8)), 'E_ST_OFFSETS', /truncated/);
  assertRejects(safetensorsBytes({ x: { dtype: 'U8', shape: [0], data_offsets: [2, 1] } }, new Uint8Array(2)), 'E_ST_OFFSETS');
  assertRejects(safetensorsBytes({ x: { dtype: 'U8', shape: [1], data_offsets: [0] } }, new Uint8Array(1)), 'E_ST_OFFSETS');
});

test('a byte size that differs from shape times dtype size is rejected', () => {
  assertRejects(safetensorsBytes({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)), 'E_ST_SIZE', /12 bytes/);
});

test('a shape whose element count overflows is rejected', () => {
  assertRejects(safetensorsBytes({ x: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 4] } }, new Uint8Array(4)), 'E_ST_SIZE', /overflow/);
});

test('a gap between tensors is rejected', () => {
  const h = { a: { dtype: 'U8', shape: [2], data_offsets: [0, 2] }, b: { dtype: 'U8', shape: [2], data_offsets: [3, 5] } };
  assertRejects(safetensorsBytes(h, new Uint8Array(5)), 'E_ST_LAYOUT', /gap/);
});

test('overlapping tensors are rejected', () => {
  const h = { a: { dtype: 'U8', shape: [3], data_offsets: [0, 3] }, b: { dtype: 'U8', shape: [2], data_offsets: [2, 4] } };
  assertRejects(safetensorsBytes(h, new Uint8Array(4)), 'E_ST_LAYOUT', /overlaps/);
});

test('data that does not start at the beginning of the data section is rejected', () => {
  assertRejects(safetensorsBytes({ a: { dtype: 'U8', shape: [2], data_offsets: [1, 3] } }, new Uint8Array(3)), 'E_ST_LAYOUT');
});

test('trailing bytes after the last tensor are rejected', () => {
  assertRejects(safetensorsBytes({ x: f32(1) }, new Uint8Array(8)), 'E_ST_LAYOUT', /trailing/);
});

test('a duplicate tensor name is rejected even though JSON.parse would keep one', () => {
  const text = '{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}';
  assertRejects(safetensorsBytes(text, new Uint8Array(1)), 'E_ST_DUPLICATE_NAME', /'x'/);
});

test('an entry with a missing or unknown field is rejected', () => {
  assertRejects(safetensorsBytes({ x: { dtype: 'U8', shape: [1] } }, new Uint8Array(1)), 'E_ST_ENTRY', /data_offsets/);
  assertRejects(safetensorsBytes({ x: { dtype: 'U8', shape: [1], data_offsets: [0, 1], extra: 1 } }, new Uint8Array(1)), 'E_ST_ENTRY', /extra/);
  assertRejects(safetensorsBytes({ x: 5 }), 'E_ST_ENTRY');
});

test('top-level keys are listed with duplicates, skipping nested objects and escaped quotes', () => {
  assert.deepEqual(topLevelKeys('{"a":{"b":1,"c":[{"d":2}]},"e\\"f":"x:y","a":3}'), ['a', 'e"f', 'a']);
});

test('every dtype round-trips through the writer byte for byte', () => {
  const tensors = DTYPES.map((dtype, i) => {
    const shape = [2, 3];
    const data = new Uint8Array(6 * DTYPE_SIZE[dtype]);
    for (let b = 0; b < data.length; b++) data[b] = (b * 37 + i * 11) & (dtype === 'BOOL' ? 1 : 0xff);
    return { name: `t_${dtype.toLowerCase()}`, dtype, shape, data };
  });
  const path = join(dir, 'all-dtypes.safetensors');
  writeSafetensors(path, tensors, { note: 'round trip' });
  const file = SafetensorsFile.open(path);
  for (const t of tensors) {
    assert.deepEqual(file.info(t.name), { name: t.name, dtype: t.dtype, shape: t.shape, byteLength: t.data.byteLength });
    assert.deepEqual(file.readRaw(t.name), t.data, t.dtype);
  }
  // integer tensors convert to float32 by value
  const i16 = file.readFloat32('t_i16');
  const expected = new Int16Array(tensors.find((t) => t.dtype === 'I16')!.data.buffer);
  assert.deepEqual(Array.from(i16), Array.from(expected));
  file.close();
});

test('written files follow the format: aligned data start, larger dtypes first, then by name', () => {
  const path = join(dir, 'layout.safetensors');
  writeSafetensors(path, [
    { name: 'b', dtype: 'F16', shape: [1], data: new Float32Array([1]) },
    { name: 'a', dtype: 'F16', shape: [3], data: new Float32Array([1, 2, 3]) },
    { name: 'z', dtype: 'F32', shape: [1], data: new Float32Array([5]) },
  ]);
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  assert.equal((8 + n) % 8, 0);
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  assert.deepEqual(header.z.data_offsets, [0, 4]);
  assert.deepEqual(header.a.data_offsets, [4, 10]);
  assert.deepEqual(header.b.data_offsets, [10, 12]);
  assert.equal(bytes.readUInt16LE(8 + n + 4), 0x3c00, 'a[0] = 1.0 as binary16');
});

test('reading F16 and BF16 tensors as float32 is exact, and shared reads use a SharedArrayBuffer', () => {
  const path = join(dir, 'halves.safetensors');
  const values = new Float32Array([1, -0.5, 0.1, 3]);
  writeSafetensors(path, [
    { name: 'h', dtype: 'F16', shape: [4], data: values },
    { name: 'b', dtype: 'BF16', shape: [2, 2], data: values },
    { name: 'f', dtype: 'F32', shape: [4], data: values },
  ]);
  const file = SafetensorsFile.open(path);
  assert.deepEqual(Array.from(file.readFloat32('h')), [1, -0.5, 0.0999755859375, 3]);
  assert.deepEqual(Array.from(file.readFloat32('b')), [1, -0.5, 0.10009765625, 3]);
  const shared = file.readFloat32('f', { shared: true });
  assert.ok(shared.buffer instanceof SharedArrayBuffer);
  assert.deepEqual(Array.from(shared), Array.from(values));
  assert.ok(file.readFloat32('b', { shared: true }).buffer instanceof SharedArrayBuffer);
  file.close();
});

test('an aborted or incomplete write leaves nothing under the final name', () => {
  const sub = tempDir();
  const path = join(sub, 'out.safetensors');
  const w = new SafetensorsWriter(path, [{ name: 'a', dtype: 'F32', shape: [1] }, { name: 'b', dtype: 'F32', shape: [1] }]);
  w.write('a', new Float32Array([1]));
  assert.throws(() => w.close(), /never written/);
  assert.deepEqual(readdirSync(sub), []);
  const w2 = new SafetensorsWriter(path, [{ name: 'a', dtype: 'F32', shape: [2] }]);
  assert.throws(() => w2.write('a', new Float32Array([1])), /2/);
  w2.abort();
  assert.deepEqual(readdirSync(sub), []);
});
