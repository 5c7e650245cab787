/**
 * Data from Debian packages, read as files (no Python needed): Fashion-MNIST (`dataset-fashion-mnist`,
 * gzip IDX under /usr/share/datasets/fashion-mnist/) and scikit-learn's 8x8 digits
 * (`python3-sklearn`, sklearn/datasets/data/digits.csv.gz). `root` is `/` for installed packages,
 * or the folder a package was extracted into with `dpkg -x`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { InputError } from '../../errors.ts';
import { readImageSet, sha256, type ImageSet, type SourceFile } from './mnist.ts';

export class DebianPackageMissingError extends InputError {
  constructor(pkg: string, path: string) {
    super('E_DEBIAN_PACKAGE_MISSING', `${path} is missing: install the Debian package '${pkg}' (sudo apt-get install ${pkg}), or extract it without installing (apt-get download ${pkg} && dpkg -x ${pkg}_*.deb DIR) and pass --data-root DIR`);
  }
}

/** The installed version from dpkg's database, or a note that the files were extracted. */
function debianVersion(pkg: string, root: string): string {
  const status = join(root, 'var/lib/dpkg/status');
  if (existsSync(status)) {
    for (const block of readFileSync(status, 'utf8').split('\n\n')) {
      if (new RegExp(`^Package: ${pkg.replace(/[.+]/g, '\\$&')}$`, 'm').test(block) && /^Status: .* installed$/m.test(block)) {
        const v = /^Version: (.+)$/m.exec(block);
        if (v) return v[1]!;
      }
    }
  }
  return `not installed (files under ${root})`;
}

export function loadFashionMnist(root = '/'): { train: ImageSet; test: ImageSet; sources: SourceFile[] } {
  const pkg = 'dataset-fashion-mnist';
  const dir = join(root, 'usr/share/datasets/fashion-mnist');
  const version = debianVersion(pkg, root);
  const sources: SourceFile[] = [];
  const read = (file: string): Uint8Array => {
    const path = join(dir, `${file}.gz`);
    if (!existsSync(path)) throw new DebianPackageMissingError(pkg, path);
    const gz = readFileSync(path);
    sources.push({ package: `debian:${pkg}`, version, file: `/usr/share/datasets/fashion-mnist/${file}.gz`, bytes: gz.byteLength, sha256: sha256(gz) });
    return gunzipSync(gz);
  };
  return {
    train: readImageSet('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', read),
    test: readImageSet('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte', read),
    sources,
  };
}

/**
 * scikit-learn's digits (UCI optical recognition of handwritten digits, test part): 8x8 images
 * with intensities 0..16 and a label, one CSV row each. A first line that is not 65 numbers is a
 * header and skipped (some releases write `n,features,...` there).
 */
export function loadSklearnDigits(root = '/'): { images: Uint8Array; labels: Uint8Array; n: number; source: SourceFile } {
  const pkg = 'python3-sklearn';
  const rel = 'usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz';
  const path = join(root, rel);
  if (!existsSync(path)) throw new DebianPackageMissingError(pkg, path);
  const gz = readFileSync(path);
  const rows = gunzipSync(gz).toString('utf8').split('\n').filter((l) => l.trim().length > 0).map((l) => l.split(',').map(Number));
  const data = rows.filter((r) => r.length === 65 && r.every((v) => Number.isInteger(v) && v >= 0));
  if (data.length === 0 || rows.length - data.length > 1) throw new InputError('E_DATA_FORMAT', `${path}: expected rows of 64 pixel values and a label, found ${rows.length - data.length} other rows`);
  const images = new Uint8Array(data.length * 64);
  const labels = new Uint8Array(data.length);
  data.forEach((r, i) => {
    for (let k = 0; k < 64; k++) images[i * 64 + k] = r[k]!;
    labels[i] = r[64]!;
  });
  return { images, labels, n: data.length, source: { package: `debian:${pkg}`, version: debianVersion(pkg, root), file: `/${rel}`, bytes: gz.byteLength, sha256: sha256(gz) } };
}

/**
 * 8x8 images at intensities 0..16 to MNIST's 28x28 at 0..255: each pixel becomes a 3x3 block of
 * the centred 24x24 square (a 2-pixel margin, as MNIST centres its 20x20 digits in 28x28).
 */
export function digits8x8To28(images: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(n * 784);
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < 24; r++) {
      for (let c = 0; c < 24; c++) {
        const v = images[i * 64 + Math.floor(r / 3) * 8 + Math.floor(c / 3)]!;
        out[i * 784 + (r + 2) * 28 + (c + 2)] = Math.round((v * 255) / 16);
      }
    }
  }
  return out;
}
