/** Hand-built safetensors bytes, so tests can break exactly one rule of the format. */
export function safetensorsBytes(header: object | string, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): Uint8Array {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  return safetensorsFromHeaderBytes(json, data, lengthOverride);
}

export function safetensorsFromHeaderBytes(json: Uint8Array, data: Uint8Array, lengthOverride?: bigint): Uint8Array {
  const out = new Uint8Array(8 + json.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.byteLength), true);
  out.set(json, 8);
  out.set(data, 8 + json.byteLength);
  return out;
}
