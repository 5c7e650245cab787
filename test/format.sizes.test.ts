import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes, formatCount } from '../src/format.ts';

test('sizes below 1 KiB are whole bytes', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1), '1 B');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1023), '1023 B');
  assert.equal(formatBytes(1023.4), '1023 B');
});

test('sizes from 1 KiB have binary units and 3 significant digits', () => {
  assert.equal(formatBytes(1024), '1.00 KiB');
  assert.equal(formatBytes(1536), '1.50 KiB');
  // 817,780 B / 1024 = 798.6 KiB
  assert.equal(formatBytes(817_780), '799 KiB');
  assert.equal(formatBytes(12.34 * 2 ** 20), '12.3 MiB');
  assert.equal(formatBytes(0.8 * 2 ** 20), '819 KiB');
  assert.equal(formatBytes(6.74 * 2 ** 30), '6.74 GiB');
  assert.equal(formatBytes(3 * 2 ** 40), '3.00 TiB');
});

test('a size that rounds up to the next unit is written in it, never as 1024 of a unit', () => {
  assert.equal(formatBytes(1023.6), '1.00 KiB');
  // 10,237 B = 9.997 KiB: three digits give 10.0, not 10.00
  assert.equal(formatBytes(10_237), '10.0 KiB');
  assert.equal(formatBytes(1023.6 * 1024), '1.00 MiB');
  assert.equal(formatBytes(2 ** 30 - 1), '1.00 GiB');
  // from 1000 to 1023 of a unit the integer is written
  assert.equal(formatBytes(1010 * 1024), '1010 KiB');
});

test('negative and non-finite sizes are written, not thrown', () => {
  assert.equal(formatBytes(-2048), '-2.00 KiB');
  assert.equal(formatBytes(Infinity), 'Infinity B');
});

test('counts below 1000 are written as they are, larger ones with k, M, B, T and 3 significant digits', () => {
  assert.equal(formatCount(0), '0');
  assert.equal(formatCount(999), '999');
  assert.equal(formatCount(1000), '1.00k');
  assert.equal(formatCount(12_345), '12.3k');
  assert.equal(formatCount(1_100_000), '1.10M');
  assert.equal(formatCount(6_738_415_616), '6.74B');
  assert.equal(formatCount(1.2e12), '1.20T');
});

test('a count that rounds up to 1000 of a unit is written in the next unit', () => {
  assert.equal(formatCount(999.7), '1.00k');
  assert.equal(formatCount(999_950), '1.00M');
  assert.equal(formatCount(999_499), '999k');
});
