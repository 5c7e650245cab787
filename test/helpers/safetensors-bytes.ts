/** Hand-built safetensors bytes, so tests can break exactly one rule of the format. */
import { safetensorsFromHeaderBytes } from '../../src/bench/mutate.ts';

export { safetensorsFromHeaderBytes };

export function safetensorsBytes(header: object | string, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): Uint8Array {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  return safetensorsFromHeaderBytes(json, data, lengthOverride);
}
