import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { buildVisionPlusZoo } from '../src/zoo/vision-plus.ts';
import { digits8x8To28, loadSklearnDigits } from '../src/zoo/data/debian.ts';
import { tempDir } from './helpers/tmp.ts';

const dir = tempDir('evomerge-zoo-vplus-');

test('a missing Debian data package is named with the command that installs it', async () => {
  const empty = join(dir, 'empty-root');
  mkdirSync(empty);
  await assert.rejects(buildVisionPlusZoo(join(dir, 'none'), { seed: 0, small: true, dataRoot: empty }), (e: Error & { code?: string }) =>
    e.code === 'E_DEBIAN_PACKAGE_MISSING' && /apt-get install dataset-fashion-mnist/.test(e.message) && /--data-root/.test(e.message));
});

test('8x8 digits at 0..16 become centred 3x3 blocks at 0..255 in 28x28', () => {
  const img = new Uint8Array(64);
  img[0] = 16; // top-left source pixel
  img[63] = 8; // bottom-right
  const out = digits8x8To28(img, 1);
  // source (0,0) covers rows and columns 2..4; source (7,7) covers 23..25; 8/16 of 255 rounds to 128
  assert.equal(out[2 * 28 + 2], 255);
  assert.equal(out[4 * 28 + 4], 255);
  assert.equal(out[5 * 28 + 5], 0);
  assert.equal(out[25 * 28 + 25], 128);
  assert.equal(out[1 * 28 + 1], 0);
  assert.equal(out.reduce((a, b) => a + b, 0), 9 * 255 + 9 * 128);
});

test('the scikit-learn digits CSV is read with or without a header line', () => {
  for (const header of [true, false]) {
    const root = join(dir, `sk-${header}`);
    const data = join(root, 'usr/lib/python3/dist-packages/sklearn/datasets/data');
    mkdirSync(data, { recursive: true });
    const rows = [Array.from({ length: 64 }, (_, i) => i % 17).concat([3]), Array.from({ length: 64 }, () => 16).concat([9])];
    const csv = (header ? '2,64,0,1,2,3,4,5,6,7,8,9\n' : '') + rows.map((r) => r.join(',')).join('\n') + '\n';
    writeFileSync(join(data, 'digits.csv.gz'), gzipSync(csv));
    const d = loadSklearnDigits(root);
    assert.equal(d.n, 2);
    assert.deepEqual([...d.labels], [3, 9]);
    assert.equal(d.images[17], 0);
    assert.equal(d.images[64 + 5], 16);
    assert.match(d.source.version, /not installed/);
  }
});

const debianRoot = process.env.EVOMERGE_DEBIAN_ROOT ?? '/';
const haveDebian = existsSync(join(debianRoot, 'usr/share/datasets/fashion-mnist')) && existsSync(join(debianRoot, 'usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz'));

test('the reduced vision-plus zoo builds and its specialists beat the base', { skip: haveDebian || process.env.CI ? false : 'needs Debian dataset-fashion-mnist and python3-sklearn data (set EVOMERGE_DEBIAN_ROOT to a dpkg -x folder; .ci/run does)' }, async () => {
  const r = await buildVisionPlusZoo(join(dir, 'vp'), { seed: 0, small: true, dataRoot: debianRoot });
  assert.deepEqual(r.manifest.models.map((m) => m.name), ['digits', 'fashion', 'digits8x8']);
  for (const c of r.manifest.checks) assert.ok(c.beatsBase, `${c.task} ${c.split}`);
  assert.ok(r.manifest.sources.some((s) => s.package === 'debian:dataset-fashion-mnist'));
});
