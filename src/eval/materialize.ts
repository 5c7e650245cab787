/**
 * A candidate written as a Hugging Face folder for `command` evaluators (the only kind that
 * needs the model on disk). The folder lives under the system's temporary directory unless told
 * otherwise, and `cleanup()` removes it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointWriter } from '../checkpoint/index.ts';
import type { FloatDType } from '../tensor/dtype.ts';

export interface TemporaryModel {
  dir: string;
  cleanup(): void;
}

/** A fresh temporary folder `<root>/model` that `write` fills; removed whole if `write` throws. */
export function temporaryModelFolder(write: (dir: string) => void, parent?: string, prefix = 'evomerge-candidate-'): TemporaryModel {
  const root = mkdtempSync(join(parent ?? tmpdir(), prefix));
  const dir = join(root, 'model');
  try {
    write(dir);
  } catch (err) {
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
  return { dir, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

/** Tensors already in memory written as a temporary folder (tests and tools; the search streams its candidates). */
export function writeTemporaryModel(options: {
  config: object;
  tensors: ReadonlyArray<{ name: string; shape: readonly number[]; data: Float32Array }>;
  /** A model folder whose tokenizer files are copied (the base model's). */
  tokenizerFrom?: string;
  dtype?: FloatDType;
  parent?: string;
}): TemporaryModel {
  return temporaryModelFolder((dir) => {
    const dtype = options.dtype ?? 'F32';
    const writer = new CheckpointWriter(dir, { tensors: options.tensors.map((t) => ({ name: t.name, dtype, shape: [...t.shape] })) });
    try {
      for (const t of options.tensors) writer.write(t.name, t.data);
    } catch (err) {
      writer.abort();
      throw err;
    }
    writer.finish({ config: options.config, ...(options.tokenizerFrom ? { tokenizerFrom: options.tokenizerFrom } : {}) });
  }, options.parent);
}
