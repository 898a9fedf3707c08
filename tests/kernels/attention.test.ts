import { describe, expect, it } from 'vitest';
import { testGpu } from '../helpers/gpu.ts';
import { ATTENTION_CASES, ATTENTION_TOLERANCE, attentionCaseName, runAttentionCase } from './attention-cases.ts';

describe('attention (Node, Dawn)', () => {
  for (const [i, c] of ATTENTION_CASES.entries()) {
    it(`${attentionCaseName(c)} matches the CPU reference`, async () => {
      const r = await runAttentionCase(await testGpu(), c, 700 + 10 * i);
      expect(r.maxRelError).toBeLessThan(ATTENTION_TOLERANCE);
      expect(r.untouchedChanged).toBe(0);
    });
  }
});
