import { describe, expect, it } from 'vitest';
import { testGpu } from '../helpers/gpu.ts';
import { ELEMENTWISE_CASES, ELEMENTWISE_TOLERANCE, elementwiseCaseName, runElementwiseCase } from './elementwise-cases.ts';

describe('elementwise (Node, Dawn)', () => {
  for (const [i, c] of ELEMENTWISE_CASES.entries()) {
    it(`${elementwiseCaseName(c)} matches the CPU reference and leaves other elements alone`, async () => {
      const r = await runElementwiseCase(await testGpu(), c, 300 + 10 * i);
      expect(r.maxRelError).toBeLessThan(ELEMENTWISE_TOLERANCE);
      expect(r.untouchedChanged).toBe(0);
    });
  }
});
