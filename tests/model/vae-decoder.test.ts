import { describe, expect, it } from 'vitest';
import { planVaeDecode } from '../../src/model/vae/decoder.ts';
import { loadVaeDecoder } from '../../src/pipeline/load-vae.ts';
import { openCheckpoint } from '../../src/weights/safetensors.ts';
import { testGpu } from '../helpers/gpu.ts';
import { maxRelError } from '../helpers/random.ts';

const FIXTURE = 'tests/fixtures/flux-tiny-a';
/** The golden README's float32 match. */
const GOLDEN_TOLERANCE = 1e-4;

async function goldenDecode(): Promise<{ z: Float32Array; image: Float32Array }> {
  const file = await openCheckpoint(`${FIXTURE}/decode.safetensors`);
  try {
    return { z: await file.readFloat32('z'), image: await file.readFloat32('image') };
  } finally {
    await file.close();
  }
}

describe('VAE decoder (flux-tiny-a)', () => {
  it('decodes the golden latent from the reference layout (ae-style file + vae_config.json)', async () => {
    const ctx = await testGpu();
    const { z, image } = await goldenDecode();
    const vae = await loadVaeDecoder(ctx, `${FIXTURE}/vae.safetensors`, `${FIXTURE}/vae_config.json`);
    try {
      expect(vae.layout).toBe('bfl');
      const out = await vae.decode(z, 16, 16);
      expect([out.height, out.width]).toEqual([128, 128]);
      expect(maxRelError(out.image, image)).toBeLessThan(GOLDEN_TOLERANCE);
    } finally {
      vae.destroy();
    }
  });

  it('decodes the same from the diffusers vae/ folder; banded decoding equals unbanded; the planner states the measured peak', async () => {
    const ctx = await testGpu();
    const { z, image } = await goldenDecode();
    const vae = await loadVaeDecoder(ctx, `${FIXTURE}/vae`);
    try {
      expect(vae.layout).toBe('diffusers');
      ctx.pool.resetPeak();
      const start = ctx.pool.liveBytes;
      const whole = await vae.decode(z, 16, 16, { bandRows: 16 });
      const wholePeak = ctx.pool.peakBytes - start;
      expect(maxRelError(whole.image, image)).toBeLessThan(GOLDEN_TOLERANCE);
      ctx.pool.resetPeak();
      // Bands of 5, 5, 5 and 1 latent rows: a one-row band and uneven halos.
      const banded = await vae.decode(z, 16, 16, { bandRows: 5 });
      const bandedPeak = ctx.pool.peakBytes - start;
      expect(ctx.pool.liveBytes).toBe(start);
      expect(maxRelError(banded.image, whole.image)).toBeLessThan(GOLDEN_TOLERANCE);
      expect(banded.image).not.toEqual(whole.image); // a different summation order, not the same code path
      const planWhole = await planVaeDecode(ctx, vae.config, 16, 16, { bandRows: 16 });
      const planBanded = await planVaeDecode(ctx, vae.config, 16, 16, { bandRows: 5 });
      expect(planWhole.peakActivationBytes).toBe(wholePeak);
      expect(planBanded.peakActivationBytes).toBe(bandedPeak);
      expect(planBanded.bands).toBe(4);
      expect(planWhole.weightBytes).toBe(vae.weightBytes);
    } finally {
      vae.destroy();
    }
  });
});
