/** The weight-only INT4/INT8 linear (modulation layers) on the GPU against its CPU reference. */
import { describe, expect, it } from 'vitest';
import { CommandBatch } from '../../src/gpu/batch.ts';
import { uploadBuffer } from '../../src/gpu/buffers.ts';
import { buildLinear, createLinear } from '../../src/nn/factory.ts';
import { encodeLinear } from '../../src/nn/linear.ts';
import { WeightOnlyLinear } from '../../src/nn/weight-only-linear.ts';
import { unpackSigned } from '../../src/quant/pack.ts';
import { quantizeWeightOnlyRef, weightOnlyLinearRef } from '../../src/quant/weight-only-ref.ts';
import { fromFloat32 } from '../../src/weights/dtypes.ts';
import { readColumnRange, testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/random.ts';

describe('WeightOnlyLinear (INT4/INT8 weights, float activations)', () => {
  // Awkward shapes: K not a multiple of a word's values nor of the 256-value group, one row and a few rows.
  for (const [format, rows, inF, out, weightDtype] of [
    ['int4', 1, 70, 33, 'f32'],
    ['int8', 3, 300, 17, 'f32'],
    ['int4', 2, 256, 40, 'bf16'],
  ] as const) {
    it(`${format}, ${rows}×${inF} -> ${out} from ${weightDtype}: packed weights equal the reference's, y within 1e-5 of it, in a column range`, async () => {
      const ctx = await testGpu();
      const wide = out + 9;
      const col0 = 4;
      const w = randn(out * inF, inF, 0.1);
      for (let o = 0; o < out; o++) w[o * inF + ((o * 7) % inF)]! += 0.9; // one outlier per channel
      const b = randn(out, 2);
      const x = randn(rows * inF, 3);
      // The GPU quantizes bf16 weights as stored, so the reference sees the same bf16-rounded values.
      const wBytes = fromFloat32(w, weightDtype === 'bf16' ? 'BF16' : 'F32');
      const wRef = weightDtype === 'bf16' ? new Float32Array(new Uint32Array(Array.from(new Uint16Array(wBytes.buffer), (h) => h << 16)).buffer) : w;
      const weight = { buffer: await uploadBuffer(ctx, wBytes, 'w'), offset: 0, shape: [out, inF], dtype: weightDtype } as const;
      const bias = { buffer: await uploadBuffer(ctx, b, 'b'), offset: 0, shape: [out], dtype: 'f32' } as const;
      const layer = await createLinear(ctx, { precision: format, weightOnly: true, label: 'mod' }, weight, bias);
      expect(layer).toBeInstanceOf(WeightOnlyLinear);
      const xt = { buffer: await uploadBuffer(ctx, x, 'x'), offset: 0, shape: [rows, inF], dtype: 'f32' } as const;
      const yt = { buffer: await uploadBuffer(ctx, new Float32Array(rows * wide).fill(5), 'y'), offset: 0, shape: [rows, wide], dtype: 'f32' } as const;
      try {
        const ref = quantizeWeightOnlyRef(wRef, out, inF, format);
        const packed = await (layer as WeightOnlyLinear).exportPacked();
        expect(packed.quantization.rotation).toBe('none');
        const bits = format === 'int4' ? 4 : 8;
        const paddedK = (packed.wordsPerRow * 32) / bits;
        const q = unpackSigned(packed.packed, out, paddedK, bits);
        const gotQ = Int8Array.from({ length: out * inF }, (_, i) => q[Math.floor(i / inF) * paddedK + (i % inF)]!);
        expect(gotQ).toEqual(ref.q);
        expect(new Float32Array(packed.meta.buffer).filter((_, i) => i % 2 === 0)).toEqual(ref.scales);

        const batch = new CommandBatch(ctx, 'weight-only test');
        await encodeLinear(batch, layer, { tensor: xt }, { tensor: yt, col0, cols: out });
        await batch.submit();
        const got = await readColumnRange(ctx, yt.buffer, rows, wide, col0, out, 5);
        const expected = weightOnlyLinearRef(ref, x, rows, b);
        expect(maxRelError(got, expected)).toBeLessThan(1e-5);
        // The other format's reference is far off: a swapped format cannot pass.
        const other = weightOnlyLinearRef(quantizeWeightOnlyRef(wRef, out, inF, format === 'int4' ? 'int8' : 'int4'), x, rows, b);
        expect(maxRelError(got, other)).toBeGreaterThan(1e-3);

        // Rebuilt from its packed rows (the packed format / cache path): the same output.
        const again = await buildLinear(ctx, { precision: format, weightOnly: true }, { kind: 'packed', packed });
        const batch2 = new CommandBatch(ctx, 'weight-only from packed');
        await encodeLinear(batch2, again, { tensor: xt }, { tensor: yt, col0, cols: out });
        await batch2.submit();
        expect(await readColumnRange(ctx, yt.buffer, rows, wide, col0, out, 5)).toEqual(got);
        expect(again.weightBytes).toBe(layer.weightBytes);
        expect(layer.weightBytes).toBe(out * packed.wordsPerRow * 4 + out * 8 + out * 4);
        again.destroy();
      } finally {
        layer.destroy();
        xt.buffer.destroy();
        yt.buffer.destroy();
      }
    });
  }
});
