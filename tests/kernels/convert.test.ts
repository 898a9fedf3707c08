import { describe, expect, it } from 'vitest';
import { CommandBatch } from '../../src/gpu/batch.ts';
import { createBuffer, readFloat32, uploadBuffer } from '../../src/gpu/buffers.ts';
import { widenToF32 } from '../../src/kernels/convert.ts';
import { bf16ToF32, f16ToF32, f8e4m3ToF32, f8e5m2ToF32 } from '../../src/weights/dtypes.ts';
import { testGpu } from '../helpers/gpu.ts';
import { rng } from '../helpers/random.ts';

/** Random non-NaN 16-bit patterns, after edge patterns: zeros, subnormals, largest, infinities, NaNs. */
function patterns(n: number, seed: number, accept: (bits: number) => boolean): Uint16Array {
  const edge = [0x0000, 0x8000, 0x0001, 0x8001, 0x03ff, 0x7bff, 0x7c00, 0xfc00, 0x7f7f, 0xff80, 0x7f80, 0x3f80];
  const u = rng(seed);
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    if (i < edge.length) {
      out[i] = edge[i]!;
      continue;
    }
    let bits = Math.floor(u() * 0x10000);
    while (!accept(bits)) bits = Math.floor(u() * 0x10000);
    out[i] = bits;
  }
  return out;
}

/** Indices where two decodings differ in bits, NaN matching any NaN (payloads may differ). */
function bitMismatches(got: Float32Array, expected: Float32Array): number[] {
  const gotBits = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const expectedBits = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  return [...gotBits.keys()].filter((i) => gotBits[i] !== expectedBits[i] && !(Number.isNaN(got[i]) && Number.isNaN(expected[i])));
}

async function widenOnGpu(data: Uint8Array | Uint16Array, n: number, dtype: 'bf16' | 'f16' | 'f8e4m3' | 'f8e5m2'): Promise<Float32Array> {
  const ctx = await testGpu();
  const src = await uploadBuffer(ctx, data, 'src');
  const dst = await createBuffer(ctx, n * 4, 'dst');
  try {
    const batch = new CommandBatch(ctx);
    await widenToF32(batch, { buffer: src, offset: 0, shape: [n], dtype }, { buffer: dst, offset: 0, shape: [n], dtype: 'f32' });
    await batch.submit();
    return await readFloat32(ctx, dst, 0, n);
  } finally {
    src.destroy();
    dst.destroy();
  }
}

describe('convert (FP8 -> f32 on the GPU)', () => {
  for (const [dtype, toF32] of [['f8e4m3', f8e4m3ToF32], ['f8e5m2', f8e5m2ToF32]] as const) {
    // All 256 codes, then a tail of 1-3 extra codes so the last word is partial.
    for (const n of [256, 257, 259]) {
      it(`${dtype}, ${n} elements (all 256 codes): bit-identical to the CPU reference, NaN for NaN`, async () => {
        const codes = Uint8Array.from({ length: n }, (_, i) => (i * 167 + 3) % 256); // a permutation of 0..255 first
        expect(new Set(codes.subarray(0, 256)).size).toBe(256);
        const got = await widenOnGpu(codes, n, dtype);
        const expected = Float32Array.from(codes, toF32);
        expect(bitMismatches(got, expected).map((i) => codes[i]!.toString(16))).toEqual([]);
        expect(got.filter(Number.isNaN).length).toBe(expected.filter(Number.isNaN).length);
      });
    }
  }
});

describe('convert (bf16/f16 -> f32 on the GPU)', () => {
  for (const [dtype, toF32] of [['bf16', bf16ToF32], ['f16', f16ToF32]] as const) {
    for (const n of [1, 3, 1001, 70_001]) {
      it(`${dtype}, ${n} elements: bit-identical to the CPU conversion`, async () => {
        const bits = patterns(n, n, (b) => !Number.isNaN(toF32(b)));
        const got = await widenOnGpu(bits, n, dtype);
        // NaN payloads may differ (the CPU decoder returns the canonical NaN); every other pattern is exact.
        expect(bitMismatches(got, Float32Array.from(bits, toF32)).map((i) => bits[i]!.toString(16))).toEqual([]);
      });
    }
  }
});
