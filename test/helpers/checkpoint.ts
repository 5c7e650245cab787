/** Reading a merged folder back in tests. */
import { openCheckpoint } from '../../src/checkpoint/index.ts';

/** One tensor of a Hugging Face folder (or safetensors file) as float32. */
export function readTensor(dir: string, name: string): Float32Array {
  const c = openCheckpoint(dir);
  try {
    return c.readFloat32(name);
  } finally {
    c.close();
  }
}
