import { describe, expect, it } from 'vitest';
import { testGpu } from '../helpers/gpu.ts';
import {
  LAYER_NORM_CASES,
  NORM_TOLERANCE,
  QK_NORM_ROPE_CASES,
  ROW_NORM_CASES,
  layerNormCaseName,
  qkNormRopeCaseName,
  rowNormCaseName,
  runLayerNormCase,
  runQkNormRopeCase,
  runRowNormCase,
} from './norm-cases.ts';

describe('norm kernels (Node, Dawn)', () => {
  for (const [i, c] of LAYER_NORM_CASES.entries()) {
    it(`${layerNormCaseName(c)} matches the CPU reference`, async () => {
      const r = await runLayerNormCase(await testGpu(), c, 500 + 10 * i);
      expect(r.maxRelError).toBeLessThan(NORM_TOLERANCE);
      expect(r.untouchedChanged).toBe(0);
    });
  }
  for (const [i, c] of QK_NORM_ROPE_CASES.entries()) {
    it(`${qkNormRopeCaseName(c)} matches RMSNorm then RoPE on the CPU`, async () => {
      const r = await runQkNormRopeCase(await testGpu(), c, 600 + 10 * i);
      expect(r.maxRelError).toBeLessThan(NORM_TOLERANCE);
      expect(r.untouchedChanged).toBe(0);
    });
  }
  for (const [i, c] of ROW_NORM_CASES.entries()) {
    it(`${rowNormCaseName(c)} matches the CPU reference`, async () => {
      const r = await runRowNormCase(await testGpu(), c, 650 + 10 * i);
      expect(r.maxRelError).toBeLessThan(NORM_TOLERANCE);
      expect(r.untouchedChanged).toBe(0);
    });
  }
});
