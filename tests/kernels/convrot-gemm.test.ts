import { afterAll, describe, expect, it } from 'vitest';
import { GpuContext } from '../../src/gpu/device.ts';
import type { QuantFormatName } from '../../src/quant/quantize.ts';
import { testGpu } from '../helpers/gpu.ts';
import { GEMM_SHAPES, runGemmCase } from './convrot-cases.ts';

/** A second device without the dot4 built-ins, for the plain integer path as devices without them get it. */
let noDot4: Promise<GpuContext> | undefined;
const withoutDot4 = () => (noDot4 ??= GpuContext.create({ disable: ['dot4'] }));
afterAll(async () => (await noDot4)?.destroy());

const FORMATS: readonly QuantFormatName[] = ['int4', 'int8'];

describe('gemm_int (Node, Dawn): exact int32 accumulators', () => {
  for (const [i, [m, k, n]] of GEMM_SHAPES.entries()) {
    for (const format of FORMATS) {
      it(`M,K,N = ${m},${k},${n} ${format} with dot4`, async () => {
        expect(await runGemmCase(await testGpu(), { m, k, n, format, dot4: true }, 10 * i)).toBe(0);
      });
      it(`M,K,N = ${m},${k},${n} ${format} without dot4 (device without the feature)`, async () => {
        expect(await runGemmCase(await withoutDot4(), { m, k, n, format, dot4: false }, 10 * i + 1)).toBe(0);
      });
    }
  }
});

