import { describe, expect, it, onTestFinished } from 'vitest';
import { FluxError } from '../../src/errors.ts';
import { uploadBuffer } from '../../src/gpu/buffers.ts';
import { GpuContext } from '../../src/gpu/device.ts';
import { prefersDot4 } from '../../src/kernels/convrot.ts';
import { ConvLinear } from '../../src/nn/conv-linear.ts';
import type { QuantFormatName } from '../../src/quant/quantize.ts';
import { testGpu } from '../helpers/gpu.ts';
import { LAYER_CASES, LAYER_TOLERANCE, layerCaseName, runLayerCase, runSharedInputCase } from './convrot-cases.ts';

const regular = (format: QuantFormatName, groupSize = 256) => ({ format, rotation: 'regular' as const, groupSize });

describe('ConvLinear (Node, Dawn) against the CPU reference layer', () => {
  for (const [i, c] of LAYER_CASES.entries()) {
    it(layerCaseName(c), async () => {
      const r = await runLayerCase(await testGpu(), c, 100 + 10 * i);
      expect({ ...r, maxRelError: 0 }).toEqual({ wordMismatches: 0, scaleMismatches: 0, sumMismatches: 0, weightMismatches: 0, maxRelError: 0, zeroTokenMismatches: 0 });
      expect(r.maxRelError).toBeLessThan(LAYER_TOLERANCE);
    });
  }

  it('q/k/v share one quantized activation and write column ranges of one output', async () => {
    expect(await runSharedInputCase(await testGpu(), 77, 320, 40, regular('int4'), 500)).toBeLessThan(LAYER_TOLERANCE);
  });

  it('takes the plain integer path on a CPU device or without dot4, and refuses dot4 where it is missing', async () => {
    const ctx = await testGpu();
    expect(prefersDot4(ctx)).toBe(ctx.caps.dot4 && !ctx.adapter.isFallbackAdapter);
    const plain = await GpuContext.create({ disable: ['dot4'] });
    onTestFinished(() => plain.destroy());
    expect(prefersDot4(plain)).toBe(false);
    const w = await uploadBuffer(plain, new Float32Array(64 * 8), 'w');
    const tensor = { buffer: w, offset: 0, shape: [8, 64], dtype: 'f32' as const };
    try {
      const layer = await ConvLinear.fromFloat(plain, tensor, undefined, { precision: 'int4' });
      expect(layer.dot4).toBe(false);
      layer.destroy();
      await expect(ConvLinear.fromFloat(plain, tensor, undefined, { precision: 'int4', dot4: true })).rejects.toThrow(FluxError);
    } finally {
      w.destroy();
    }
  });
});
