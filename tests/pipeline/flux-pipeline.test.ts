import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from 'fast-png';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyFlux } from '../../scripts/make-tiny-flux.ts';
import { encodePrecisionMap, makeQuantPlan, modulationLinearNames } from '../../src/model/precision.ts';
import { AUTO_PRECISION_FILE, FluxPipeline } from '../../src/pipeline/flux-pipeline.ts';
import { encodePng, imageToRgba } from '../../src/pipeline/image.ts';
import { testGpu } from '../helpers/gpu.ts';

/** Loading compiles every kernel once on SwiftShader with shared cores. */
const SLOW = 400_000;

describe('FluxPipeline on a generated tiny diffusers folder', () => {
  let dir: string;
  let pipe: FluxPipeline;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tiny-flux-'));
    await makeTinyFlux(dir);
    pipe = await FluxPipeline.load(dir, { gpu: await testGpu(), precision: 'float' });
  }, SLOW);
  afterAll(async () => {
    pipe?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('takes dev defaults from the model and generation_defaults.json from the folder', async () => {
    expect(pipe.defaults).toMatchObject({ steps: 28, guidance: 3.5, width: 1024, height: 1024, trueCfgScale: 1 });
    expect(pipe.shift).toBe(true);
    await writeFile(join(dir, 'generation_defaults.json'), JSON.stringify({ num_inference_steps: 2, width: 32, height: 48, guidance_scale: 2 }));
    const other = await FluxPipeline.load(dir, { gpu: await testGpu(), precision: 'float' });
    try {
      expect(other.defaults).toMatchObject({ steps: 2, width: 32, height: 48, guidance: 2 });
    } finally {
      other.destroy();
      await rm(join(dir, 'generation_defaults.json'));
    }
  }, SLOW);

  it("reads the folder's calibrated precision map (the demo's auto preset), and names a bad one", async () => {
    expect(pipe.autoPrecision).toBeUndefined();
    const config = pipe.transformer.config;
    const plan = makeQuantPlan(config, { preset: 'w4a4', overrides: [{ pattern: 'single_transformer_blocks.*.proj_out', precision: 'int8' }] });
    const path = join(dir, AUTO_PRECISION_FILE);
    await writeFile(path, encodePrecisionMap(plan, config));
    try {
      const other = await FluxPipeline.load(dir, { gpu: await testGpu(), precision: 'float' });
      try {
        expect(other.autoPrecision).toEqual(plan.layers);
        expect(other.autoPrecision!.get('single_transformer_blocks.0.proj_out')).toBe('int8');
        expect(other.autoPrecision!.get('transformer_blocks.0.attn.to_q')).toBe('int4');
      } finally {
        other.destroy();
      }
      await writeFile(path, JSON.stringify({ format: 'flux-w4a4-precision-map', layers: { 'transformer_blocks.9.attn.to_q': 'int8' } }));
      await expect(FluxPipeline.load(dir, { gpu: await testGpu(), precision: 'float' })).rejects.toThrow(/transformer_blocks\.9\.attn\.to_q/);
    } finally {
      await rm(path);
    }
  }, SLOW);

  it('generates RGBA pixels, reports every phase, and writes a PNG with its settings', async () => {
    const phases: string[] = [];
    const result = await pipe.generate({ prompt: 'a red fox in the snow', width: 32, height: 48, steps: 2, seed: 7, onProgress: (p) => phases.push(p.step ? `${p.phase} ${p.step}/${p.steps}` : p.phase) });
    expect([result.width, result.height, result.rgba.length, result.latent.length]).toEqual([32, 48, 32 * 48 * 4, 16 * 4 * 6]);
    expect(result.timings.stepMs).toHaveLength(2);
    expect(new Set(phases)).toEqual(new Set(['encode', 'step 1/2', 'step 2/2', 'decode', 'done']));
    // Not a flat image, and fully opaque.
    expect(new Set(result.rgba.filter((_, i) => i % 4 === 0)).size).toBeGreaterThan(10);
    expect(result.rgba.filter((_, i) => i % 4 === 3).every((a) => a === 255)).toBe(true);
    const png = decode(encodePng(result.rgba, result.width, result.height, { prompt: 'a red fox in the snow', seed: 7 }));
    expect(png.text).toMatchObject({ prompt: 'a red fox in the snow', seed: '7' });
    expect(Uint8Array.from(png.data)).toEqual(Uint8Array.from(result.rgba));
  }, SLOW);

  it('with releaseModulation and releaseVae frees those weights between uses and draws the same pixels, twice', async () => {
    const settings = { prompt: 'a lighthouse', width: 32, height: 32, steps: 2, seed: 5 } as const;
    const expected = await pipe.generate(settings);
    const lean = await FluxPipeline.load(dir, { gpu: await testGpu(), precision: 'w4a4', releaseModulation: true, releaseVae: true });
    const full = await FluxPipeline.load(dir, { gpu: await testGpu(), precision: 'w4a4' });
    try {
      const modulation = modulationLinearNames(lean.transformer.config);
      const bytes = (p: FluxPipeline) => modulation.reduce((n, name) => n + p.layerSlots().get(name)!.weightBytes, 0);
      expect(bytes(lean)).toBeGreaterThan(0);
      const reference = await full.generate(settings);
      const first = await lean.generate(settings);
      // Released after the first generation's conditioning, so the transformer holds only the block weights.
      expect(bytes(lean)).toBe(0);
      expect(lean.transformer.weightBytes).toBe(full.transformer.weightBytes - bytes(full));
      expect(lean.vaeWeightBytes).toBe(0);
      expect(full.vaeWeightBytes).toBeGreaterThan(0);
      const second = await lean.generate(settings);
      expect(Array.from(first.rgba)).toEqual(Array.from(reference.rgba));
      expect(Array.from(second.rgba)).toEqual(Array.from(reference.rgba));
      // Quantized, so not the float pipeline's pixels.
      expect(Array.from(first.rgba)).not.toEqual(Array.from(expected.rgba));
    } finally {
      lean.destroy();
      full.destroy();
    }
  }, SLOW);

  it('stops between steps when cancelled and releases every pooled buffer', async () => {
    const ctx = await testGpu();
    const start = ctx.pool.liveBytes;
    const controller = new AbortController();
    const run = pipe.generate({ prompt: 'cancel me', width: 32, height: 32, steps: 3, seed: 1, signal: controller.signal, onStep: (k) => k === 1 && controller.abort() });
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    expect(ctx.pool.liveBytes).toBe(start);
  }, SLOW);

  it('lists the transformer layers and rebuilds one at another precision in place', async () => {
    const name = 'single_transformer_blocks.0.attn.to_v';
    const slot = pipe.layerSlots().get(name)!;
    expect(slot.precision).toBe('float');
    await pipe.setPrecision([name], 'int8');
    expect(pipe.layerSlots().get(name)!.precision).toBe('int8');
    await pipe.setPrecision([name], 'float');
    await expect(pipe.setPrecision(['no.such.layer'], 'int4')).rejects.toMatchObject({ code: 'bad-argument' });
  }, SLOW);

  it('rejects sizes that are not multiples of 16', async () => {
    await expect(pipe.generate({ prompt: 'x', width: 40, height: 32, steps: 1 })).rejects.toMatchObject({ code: 'bad-argument' });
  });
});

describe('image output', () => {
  it('clamps to [-1, 1] and maps to 0..255 with rounding', () => {
    // 6 pixels: channel-major [3, 1, 6]
    const chw = new Float32Array(18);
    [-2, -1, 0, 1, 2, 0.5].forEach((v, p) => [0, 1, 2].forEach((c) => (chw[c * 6 + p] = v)));
    expect(Array.from(imageToRgba(chw, 6, 1).filter((_, i) => i % 4 === 0))).toEqual([0, 0, 128, 255, 255, 191]);
  });
});
