/** Shared by the weights tests: fixture paths and hand-made safetensors bytes. */
import { fileURLToPath } from 'node:url';
import type { ByteSource } from '../../src/platform/types.ts';

export const FIXTURES = fileURLToPath(new URL('../fixtures/flux-tiny-a/', import.meta.url));
export const TRANSFORMER = `${FIXTURES}transformer.safetensors`;
export const DIFFUSERS_TRANSFORMER = `${FIXTURES}transformer/diffusion_pytorch_model.safetensors`;
export const FORWARD = `${FIXTURES}forward.safetensors`;

/** A safetensors file from a raw header (object or any text) and data bytes, with no validation. */
export function rawSafetensors(header: unknown, data: Uint8Array = new Uint8Array(0), headerLength?: bigint): Uint8Array<ArrayBuffer> {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLength ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** An in-memory ByteSource that records every read, to check what the reader fetches. */
export function recordingSource(bytes: Uint8Array, name = 'memory.safetensors'): ByteSource & { reads: [number, number][] } {
  const reads: [number, number][] = [];
  return {
    name,
    size: bytes.length,
    reads,
    async read(offset: number, length: number) {
      reads.push([offset, length]);
      if (offset + length > bytes.length) throw new Error('test source: read past end');
      return bytes.slice(offset, offset + length);
    },
    async close() {},
  };
}

/** Byte equality; far faster than a deep toEqual on multi-100-KB arrays. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}
