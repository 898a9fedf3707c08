import { describe, expect, it } from 'vitest';
import { testGpu } from '../helpers/gpu.ts';
import { QUANT_CASES, runQuantCase } from './convrot-cases.ts';

describe('convrot_quant (Node, Dawn): rotate + quantize + pack rows bit for bit as the CPU reference', () => {
  for (const [i, c] of QUANT_CASES.entries()) {
    const name = `${c.role} ${c.rows} x ${c.cols} ${c.q.format} ${c.q.rotation} ${c.q.groupSize} from ${c.source}${c.zeroRows ? ' with zero rows' : ''}`;
    it(name, async () => {
      const r = await runQuantCase(await testGpu(), c, 1000 + i);
      expect(r).toEqual({ wordMismatches: 0, scaleMismatches: 0, sumMismatches: 0 });
    });
  }
});
