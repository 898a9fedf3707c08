import { describe, expect, it } from 'vitest';
import { testGpu } from '../helpers/gpu.ts';
import { CONV_CASES, CONV_TOLERANCE, GROUP_NORM_CASES, convCaseName, groupNormCaseName, runConvCase, runGroupNormCase } from './conv-cases.ts';

describe('VAE kernels (Node, Dawn)', () => {
  for (const [i, c] of CONV_CASES.entries()) {
    it(`${convCaseName(c)} matches the CPU reference`, async () => {
      const r = await runConvCase(await testGpu(), c, 900 + 10 * i);
      expect(r.maxRelError).toBeLessThan(CONV_TOLERANCE);
    });
  }
  for (const [i, c] of GROUP_NORM_CASES.entries()) {
    it(`${groupNormCaseName(c)} matches the CPU statistics`, async () => {
      const r = await runGroupNormCase(await testGpu(), c, 950 + 10 * i);
      expect(r.maxRelError).toBeLessThan(CONV_TOLERANCE);
    });
  }
});
