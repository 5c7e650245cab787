import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EvomergeError } from '../src/errors.ts';
import { SafetensorsFile, writeSafetensors } from '../src/checkpoint/index.ts';
import { Rng } from '../src/tensor/rng.ts';
import { mutateSafetensors } from '../src/bench/mutate.ts';
import { tempDir } from './helpers/tmp.ts';

const dir = tempDir();

test('2,400 seeded mutations of a real file each give a valid read or a typed error, quickly', () => {
  const path = join(dir, 'seed.safetensors');
  writeSafetensors(path, [
    { name: 'model.embed_tokens.weight', dtype: 'F32', shape: [4, 3], data: new Float32Array(12).map((_, i) => i) },
    { name: 'model.layers.0.w', dtype: 'BF16', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
    { name: 'model.layers.0.ids', dtype: 'I64', shape: [2], data: new Uint8Array(16) },
    { name: 'model.norm.weight', dtype: 'F16', shape: [3], data: new Float32Array([1, 1, 1]) },
  ], { format: 'pt' });
  const original = new Uint8Array(readFileSync(path));
  const rng = Rng.seeded('checkpoint-fuzz');
  const outcomes = new Map<string, number>();
  const target = join(dir, 'mutant.safetensors');
  for (let i = 0; i < 2400; i++) {
    const { bytes, kind } = mutateSafetensors(original, rng);
    writeFileSync(target, bytes);
    const start = performance.now();
    let outcome: string;
    try {
      const file = SafetensorsFile.open(target);
      let total = 0;
      for (const name of file.names()) {
        const info = file.info(name);
        const raw = file.readRaw(name);
        assert.equal(raw.byteLength, info.byteLength);
        total += raw.byteLength;
        file.readFloat32(name);
      }
      assert.ok(total <= bytes.byteLength, 'never reads more bytes than the file holds');
      file.close();
      outcome = 'valid';
    } catch (err) {
      assert.ok(err instanceof EvomergeError, `mutation ${i} (${kind}) threw an untyped ${String(err)}`);
      assert.ok(err.message.length > 20 && err.message.includes(target), `mutation ${i}: the message names the file`);
      outcome = err.code;
    }
    const ms = performance.now() - start;
    assert.ok(ms < 1000, `mutation ${i} (${kind}) took ${ms} ms`);
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  }
  // the mutations must actually reach many different rules, or the test proves little
  assert.ok(outcomes.size >= 8, `outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`);
  assert.ok((outcomes.get('valid') ?? 0) > 0);
});
