import { describe, expect, it } from 'vitest';
import { gaussianNoise } from '../../src/pipeline/noise.ts';
import { loadTransformer, openTransformerCheckpoint } from '../../src/pipeline/load.ts';
import { loadVaeDecoder } from '../../src/pipeline/load-vae.ts';
import { denoise, flowSchedule, imagePositionIds, packLatent, unpackLatent } from '../../src/pipeline/sampler.ts';
import { TransformerRunner } from '../../src/pipeline/transformer-runner.ts';
import { openCheckpoint } from '../../src/weights/safetensors.ts';
import { testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/random.ts';

const FIXTURE = 'tests/fixtures/flux-tiny-a';
/** The match for a whole sampling run in fp32. */
const SAMPLE_TOLERANCE = 1e-3;

describe('sampler pieces', () => {
  it('schedules as the reference: plain linspace for schnell, shifted by mu(tokens) for dev', () => {
    expect(flowSchedule(4, 4096, false)).toEqual([1, 0.75, 0.5, 0.25, 0]);
    const dev = flowSchedule(4, 4096, true);
    [1, 0.904531, 0.759511, 0.512844, 0].forEach((t, i) => expect(dev[i]).toBeCloseTo(t, 6));
  });

  it('packs 2x2 patches channel-major and unpacks exactly', () => {
    const z = randn(16 * 6 * 4, 1);
    const packed = packLatent(z, 16, 6, 4);
    // token (r=1, q=0), feature c*4 + dy*2 + dx = z[c, 2 + dy, dx]
    expect(packed[(1 * 2 + 0) * 64 + 5 * 4 + 1 * 2 + 1]).toBe(z[(5 * 6 + 3) * 4 + 1]);
    expect(unpackLatent(packed, 16, 6, 4)).toEqual(z);
    expect(Array.from(imagePositionIds(4, 6).subarray(3 * 4, 3 * 6))).toEqual([0, 1, 1, 0, 1, 2]);
  });

  it('draws reproducible standard normal noise from a seed', () => {
    const a = gaussianNoise(42, 100_001);
    expect(gaussianNoise(42, 100_001)).toEqual(a);
    expect(gaussianNoise(43, 16)).not.toEqual(a.subarray(0, 16));
    // The first values are pinned: a change to the generator changes every seed's image.
    expect(Array.from(a.subarray(0, 3)).map((v) => v.toFixed(6))).toMatchSnapshot();
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    const variance = a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length;
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(Math.abs(variance - 1)).toBeLessThan(0.02);
    // Seeds past 2^32 differ from their low 32 bits.
    expect(gaussianNoise(2 ** 32 + 42, 4)).not.toEqual(a.subarray(0, 4));
  });
});

describe('sampling flux-tiny-a (4 steps, shifted, guidance 3.5, fp32)', () => {
  it('reproduces the golden latent and image', async () => {
    const ctx = await testGpu();
    const file = await openCheckpoint(`${FIXTURE}/sample.safetensors`);
    const g = Object.fromEntries(await Promise.all(file.names().map(async (n) => [n, await file.readFloat32(n)] as const)));
    await file.close();
    const timesteps = flowSchedule(4, 64, true);
    expect(maxRelError(timesteps, g.timesteps!)).toBeLessThan(1e-6);
    expect(imagePositionIds(16, 16)).toEqual(g.img_ids);

    const checkpoint = await openTransformerCheckpoint(`${FIXTURE}/transformer.safetensors`);
    const transformer = await loadTransformer(ctx, checkpoint, { preset: 'float' });
    await checkpoint.close();
    const runner = new TransformerRunner(transformer);
    const vae = await loadVaeDecoder(ctx, `${FIXTURE}/vae`);
    try {
      const steps: number[] = [];
      const packed = await denoise(runner, {
        img: packLatent(g.noise!, 16, 16, 16),
        imgIds: g.img_ids!,
        positive: { txt: g.txt!, pooled: g.y!, txtIds: g.txt_ids },
        timesteps,
        guidance: 3.5,
        onStep: (k) => steps.push(k),
      });
      expect(steps).toEqual([1, 2, 3, 4]);
      const latent = unpackLatent(packed, 16, 16, 16);
      expect(maxRelError(latent, g.latent!)).toBeLessThan(SAMPLE_TOLERANCE);
      const { image } = await vae.decode(latent, 16, 16);
      expect(maxRelError(image, g.image!)).toBeLessThan(SAMPLE_TOLERANCE);
    } finally {
      vae.destroy();
      runner.dispose();
      transformer.destroy();
    }
  }, 300_000);
});
