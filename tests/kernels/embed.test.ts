import { describe, expect, it } from 'vitest';
import { testGpu } from '../helpers/gpu.ts';
import { EMBED_CASES, EMBED_TOLERANCE, embedCaseName, runEmbedCase } from './embed-cases.ts';

describe('timestep embedding (Node, Dawn)', () => {
  for (const c of EMBED_CASES) {
    it(`${embedCaseName(c)} matches the f64 CPU reference`, async () => {
      const r = await runEmbedCase(await testGpu(), c);
      expect(r.maxRelError).toBeLessThan(EMBED_TOLERANCE);
    });
  }
});
