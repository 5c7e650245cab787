/**
 * Atomic file output: everything evomerge writes goes to a temporary name in the same folder
 * and is renamed into place when complete, so a process killed mid-write never leaves a
 * half-written file under its final name (rename within one filesystem is atomic on POSIX).
 * Whole folders (a zoo, a fusion's output) are built the same way (`buildAtomically`).
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';

/** A hidden temporary name beside `path`, unique to this process and call. */
export function temporaryPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** Write `data` to `path` atomically (temporary file, fsync, rename). */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = temporaryPathFor(path);
  const fd = openSync(tmp, 'w');
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < bytes.byteLength) off += writeSync(fd, bytes, off, bytes.byteLength - off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkQuietly(tmp);
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

export function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/**
 * Runs `fill(tmp)` on a fresh temporary folder beside `dir` and renames it into place; the old
 * folder, if any, is replaced only once the new one is complete. A failure leaves `dir` as it was.
 */
export async function buildAtomically<T>(dir: string, fill: (tmp: string) => Promise<T>): Promise<T> {
  const target = resolve(dir);
  mkdirSync(dirname(target), { recursive: true });
  const tmp = temporaryPathFor(target);
  mkdirSync(tmp);
  try {
    const out = await fill(tmp);
    if (existsSync(target)) {
      const old = join(dirname(target), `.${basename(target)}.old-${process.pid}-${randomBytes(4).toString('hex')}`);
      renameSync(target, old);
      renameSync(tmp, target);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(tmp, target);
    }
    return out;
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}
