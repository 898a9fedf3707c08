import { describe, expect, it } from 'vitest';
import { planVaeDecode } from '../../src/model/vae/decoder.ts';
import { loadVaeDecoder } from '../../src/pipeline/load-vae.ts';
import { openCheckpoint } from '../../src/weights/safetensors.ts';
import { testGpu } from '../helpers/gpu.ts';
import { maxRelError } from '../helpers/random.ts';

const FIXTURE = 'tests/fixtures/flux-tiny-a';
/** The golden README's float32 match. */
const GOLDEN_TOLERANCE = 1e-4;
/** A decode takes ~10-25 s on SwiftShader with shared cores. */
const DECODE_TIMEOUT = 240_000;

async function goldenDecode(): Promise<{ z: Float32Array; image: Float32Array }> {
  const file = await openCheckpoint(`${FIXTURE}/decode.safetensors`);
  try {
    return { z: await file.readFloat32('z'), image: await file.readFloat32('image') };
  } finally {
    await file.close();
  }
}

describe('VAE decoder (flux-tiny-a)', () => {
  it(
    'decodes the golden latent from both layouts, unbanded (reference file) and in bands (diffusers folder), as the planner predicts',
    async () => {
      const ctx = await testGpu();
      const { z, image } = await goldenDecode();
      const reference = await loadVaeDecoder(ctx, `${FIXTURE}/vae.safetensors`, `${FIXTURE}/vae_config.json`);
      let whole;
      try {
        expect(reference.layout).toBe('bfl');
        whole = await reference.decode(z, 16, 16, { bandRows: 16 });
        expect([whole.height, whole.width]).toEqual([128, 128]);
        expect(maxRelError(whole.image, image)).toBeLessThan(GOLDEN_TOLERANCE);
      } finally {
        reference.destroy();
      }
      const diffusers = await loadVaeDecoder(ctx, `${FIXTURE}/vae`);
      try {
        expect(diffusers.layout).toBe('diffusers');
        ctx.pool.resetPeak();
        const start = ctx.pool.liveBytes;
        // Bands of 5, 5, 5 and 1 latent rows: a one-row band and halos on both sides.
        const banded = await diffusers.decode(z, 16, 16, { bandRows: 5 });
        const bandedPeak = ctx.pool.peakBytes - start;
        expect(ctx.pool.liveBytes).toBe(start);
        expect(maxRelError(banded.image, image)).toBeLessThan(GOLDEN_TOLERANCE);
        // Same weights in both files: banded equals unbanded.
        expect(maxRelError(banded.image, whole.image)).toBeLessThan(GOLDEN_TOLERANCE);
        const plan = await planVaeDecode(ctx, diffusers.config, 16, 16, { bandRows: 5 });
        expect(plan.bands).toBe(4);
        expect(plan.peakActivationBytes).toBe(bandedPeak);
        expect(plan.weightBytes).toBe(diffusers.weightBytes);
        const unbandedPlan = await planVaeDecode(ctx, diffusers.config, 16, 16, { bandRows: 16 });
        expect(unbandedPlan.largestBandBytes).toBeGreaterThan(plan.largestBandBytes);
      } finally {
        diffusers.destroy();
      }
    },
    DECODE_TIMEOUT,
  );
});
