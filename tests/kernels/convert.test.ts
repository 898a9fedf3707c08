import { describe, expect, it } from 'vitest';
import { CommandBatch } from '../../src/gpu/batch.ts';
import { createBuffer, readFloat32, uploadBuffer } from '../../src/gpu/buffers.ts';
import { widenToF32 } from '../../src/kernels/convert.ts';
import { bf16ToF32, f16ToF32 } from '../../src/weights/dtypes.ts';
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

describe('convert (bf16/f16 -> f32 on the GPU)', () => {
  for (const [dtype, toF32] of [['bf16', bf16ToF32], ['f16', f16ToF32]] as const) {
    for (const n of [1, 3, 1001, 70_001]) {
      it(`${dtype}, ${n} elements: bit-identical to the CPU conversion`, async () => {
        const ctx = await testGpu();
        const bits = patterns(n, n, (b) => !Number.isNaN(toF32(b)));
        const src = await uploadBuffer(ctx, bits, 'src');
        const dst = await createBuffer(ctx, n * 4, 'dst');
        const batch = new CommandBatch(ctx);
        await widenToF32(batch, { buffer: src, offset: 0, shape: [n], dtype }, { buffer: dst, offset: 0, shape: [n], dtype: 'f32' });
        await batch.submit();
        const got = await readFloat32(ctx, dst, 0, n);
        const expected = Float32Array.from(bits, toF32);
        // NaN payloads may differ (the CPU decoder returns the canonical NaN); every other pattern is exact.
        const gotBits = new Uint32Array(got.buffer);
        const expectedBits = new Uint32Array(expected.buffer);
        const mismatches = [...gotBits.keys()].filter((i) => gotBits[i] !== expectedBits[i] && !(Number.isNaN(got[i]) && Number.isNaN(expected[i])));
        expect(mismatches.map((i) => bits[i]!.toString(16))).toEqual([]);
        src.destroy();
        dst.destroy();
      });
    }
  }
});
