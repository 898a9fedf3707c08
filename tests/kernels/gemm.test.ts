import { describe, expect, it } from 'vitest';
import { testGpu } from '../helpers/gpu.ts';
import { GEMM_REAL_K_SHAPES, GEMM_REAL_K_TOLERANCE, GEMM_SHAPES, GEMM_TOLERANCE, runGemmBlockCase, runGemmCase } from './gemm-cases.ts';

describe('gemm_f32 (Node, Dawn)', () => {
  for (const [i, shape] of GEMM_SHAPES.entries()) {
    for (const bias of [true, false]) {
      it(`M,K,N = ${shape.join(',')} ${bias ? 'with' : 'without'} bias matches the CPU reference`, async () => {
        const r = await runGemmCase(await testGpu(), shape, bias, 10 * i + (bias ? 1 : 0));
        expect(r.maxRelError).toBeLessThan(GEMM_TOLERANCE);
      });
    }
  }
});

describe("gemm_f32 at FLUX.1's inner dimensions", () => {
  for (const [i, shape] of GEMM_REAL_K_SHAPES.entries()) {
    it(`M,K,N = ${shape.join(',')} with bias matches the CPU reference`, async () => {
      const r = await runGemmCase(await testGpu(), shape, true, 500 + i);
      expect(r.maxRelError).toBeLessThan(GEMM_REAL_K_TOLERANCE);
    });
  }
});

describe('gemm_f32 on views of wider matrices', () => {
  it('reads a row range of x and writes only its column range of y', async () => {
    const r = await runGemmBlockCase(await testGpu());
    expect(r.maxRelError).toBeLessThan(GEMM_TOLERANCE);
    expect(r.untouchedChanged).toBe(0);
  });

  it('adds into its column range of y when accumulating, and only there', async () => {
    const r = await runGemmBlockCase(await testGpu(), true);
    expect(r.maxRelError).toBeLessThan(GEMM_TOLERANCE);
    expect(r.untouchedChanged).toBe(0);
  });
});
