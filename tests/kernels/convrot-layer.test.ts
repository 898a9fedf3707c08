import { describe, expect, it, onTestFinished } from 'vitest';
import { FluxError } from '../../src/errors.ts';
import { uploadBuffer } from '../../src/gpu/buffers.ts';
import { GpuContext } from '../../src/gpu/device.ts';
import { prefersDot4 } from '../../src/kernels/convrot.ts';
import { ConvLinear } from '../../src/quant/conv-linear.ts';
import type { QuantFormatName } from '../../src/quant/quantize.ts';
import { testGpu } from '../helpers/gpu.ts';
import { GELU_TOLERANCE, LAYER_TOLERANCE, runLayerCase, runSharedInputCase, type LayerCase } from './convrot-cases.ts';

const regular = (format: QuantFormatName, groupSize = 256) => ({ format, rotation: 'regular' as const, groupSize });

const LAYER_CASES: readonly LayerCase[] = [
  { m: 1, k: 64, n: 40, q: regular('int4'), bias: true, dot4: false, epilogue: 'none' },
  { m: 77, k: 320, n: 65, q: { format: 'int8', rotation: 'sylvester', groupSize: 64 }, bias: false, dot4: true, epilogue: 'gelu-tanh' },
  { m: 333, k: 3072, n: 24, q: regular('int4'), bias: true, dot4: false, epilogue: 'gated-residual' },
  { m: 77, k: 3072, n: 40, q: regular('int4', 1024), bias: true, dot4: false, epilogue: 'none', zeroToken: true },
  { m: 33, k: 320, n: 70, q: { format: 'int4', rotation: 'none', groupSize: 256 }, bias: true, dot4: false, epilogue: 'none', zeroToken: true },
  { m: 77, k: 320, n: 65, q: regular('int8'), bias: true, dot4: false, epilogue: 'none', zeroToken: true },
];

describe('ConvLinear (Node, Dawn) against the CPU reference layer', () => {
  for (const [i, c] of LAYER_CASES.entries()) {
    const name = `M,K,N = ${c.m},${c.k},${c.n} ${c.q.format} ${c.q.rotation} ${c.q.groupSize}${c.bias ? ' bias' : ''} ${c.dot4 ? 'dot4' : 'plain'} epilogue ${c.epilogue}${c.zeroToken ? ', a zero token gives the bias' : ''}`;
    it(name, async () => {
      const r = await runLayerCase(await testGpu(), c, 100 + 10 * i);
      expect({ ...r, maxRelError: 0 }).toEqual({ wordMismatches: 0, scaleMismatches: 0, sumMismatches: 0, weightMismatches: 0, maxRelError: 0, zeroTokenMismatches: 0 });
      expect(r.maxRelError).toBeLessThan(c.epilogue === 'gelu-tanh' ? GELU_TOLERANCE : LAYER_TOLERANCE);
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
