import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TextEncoders } from '../../src/pipeline/text-encoders.ts';
import { testGpu } from '../helpers/gpu.ts';
import { maxRelError, relativeL2Error } from '../helpers/random.ts';
import { CLIP_DIR, loadTextGolden, T5_DIR, type TextGolden } from '../helpers/text-golden.ts';

/** The golden README's float32 match. */
const FLOAT_TOLERANCE = 1e-4;

let golden: TextGolden;
beforeAll(async () => {
  golden = await loadTextGolden();
});

describe('text encoders on the GPU vs the text-tiny-a golden (float32)', () => {
  let encoders: TextEncoders;
  beforeAll(async () => {
    encoders = await TextEncoders.load(await testGpu(), { clip: CLIP_DIR, t5: T5_DIR }, { precision: 'fp32' });
  });
  afterAll(() => encoders?.destroy());

  it('t5_hidden, clip_hidden and clip_pooled within 1e-4', async () => {
    const out = await encoders.encodeIds({ t5: golden.t5Ids, clip: golden.clipIds });
    expect(maxRelError(out.t5Hidden!, golden.t5Hidden)).toBeLessThan(FLOAT_TOLERANCE);
    expect(maxRelError(out.clipHidden!, golden.clipHidden)).toBeLessThan(FLOAT_TOLERANCE);
    expect(maxRelError(out.clipPooled!, golden.clipPooled)).toBeLessThan(FLOAT_TOLERANCE);
  });
});

describe('quantized text encoders vs float (golden model)', () => {
  for (const precision of ['w8a8', 'w4a4'] as const) {
    it(`${precision}`, async () => {
      const encoders = await TextEncoders.load(await testGpu(), { clip: CLIP_DIR, t5: T5_DIR }, { precision });
      try {
        const out = await encoders.encodeIds({ t5: golden.t5Ids, clip: golden.clipIds });
        const t5 = relativeL2Error(out.t5Hidden!, golden.t5Hidden);
        const pooled = relativeL2Error(out.clipPooled!, golden.clipPooled);
        console.log(precision, 't5', t5, 'pooled', pooled, 'clip hidden', relativeL2Error(out.clipHidden!, golden.clipHidden));
      } finally {
        encoders.destroy();
      }
    });
  }
});
