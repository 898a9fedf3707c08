/**
 * One double and one single block at FLUX.1's real width (hidden 3072, 24 heads x 128, MLP 12288; random
 * weights, a few tokens) at W4A4 on the GPU against the CPU fake-quant reference of the same method: every
 * kernel at the shapes the real model runs (K = 3072, 12288, 15360; the fused linear1 of 21 504 outputs).
 */
import { describe, expect, it } from 'vitest';
import { FluxCheckpoint } from '../../src/model/checkpoint.ts';
import { validateConfig, type FluxConfig } from '../../src/model/config.ts';
import { makeQuantPlan } from '../../src/model/precision.ts';
import { fluxForward, floatLinear, type LinearHook } from '../../src/model/reference/flux-ref.ts';
import { FluxTransformer } from '../../src/model/transformer.ts';
import { TransformerRunner } from '../../src/pipeline/transformer-runner.ts';
import { fakeQuantLinearRef } from '../../src/quant/conv-linear-ref.ts';
import { SafetensorsFile } from '../../src/weights/safetensors.ts';
import { blobSource } from '../../src/weights/sources.ts';
import { generatedInputs, randomBflCheckpoint } from '../helpers/flux-checkpoints.ts';
import { testGpu } from '../helpers/gpu.ts';
import { relativeL2Error } from '../helpers/random.ts';

/** FLUX.1's block widths; one block of each kind, small embedder inputs (they are float layers). */
const REAL_WIDTH: FluxConfig = validateConfig({
  hiddenSize: 3072,
  numHeads: 24,
  headDim: 128,
  mlpHidden: 12288,
  depthDouble: 1,
  depthSingle: 1,
  inChannels: 64,
  outChannels: 64,
  contextDim: 64,
  vecDim: 32,
  axesDim: [16, 56, 56],
  theta: 10_000,
  guidanceEmbed: false,
});

/**
 * Relative L2 distance of each block stream and of the output from the CPU fake-quant reference. Both compute
 * the same quantizers; they differ in float summation order (the reference dequantizes and multiplies in
 * float, ~1e-6 relative per layer) and in WGSL's 2.5-ULP division, so only values within ~1e-6 of a rounding
 * boundary can land one step apart. Another group size, rotation or bit width moves the streams by the W4A4
 * error itself (0.1 and more).
 */
const SAME_METHOD_LIMIT = 0.01;
/** Two full-width blocks on a CPU rasterizer (SwiftShader) plus their CPU reference take about a minute idle. */
const REAL_WIDTH_TIMEOUT_MS = 600_000;

describe('W4A4 blocks at FLUX.1 width (3072, 24 x 128, MLP 12288) vs the CPU fake-quant reference', () => {
  it('double block 0, single block 0 and the output agree with the reference', async () => {
    const t0 = performance.now();
    const bytes = randomBflCheckpoint(REAL_WIDTH, 4242);
    const open = () => SafetensorsFile.open(blobSource(new Blob([bytes as Uint8Array<ArrayBuffer>]), 'real-width.safetensors'));
    // 3 x 2 image tokens and 3 text tokens.
    const inputs = generatedInputs(REAL_WIDTH, [3, 2], 3, 77);
    // Modulation linears stay float: the reference below quantizes ConvRot layers only (weight-only modulation
    // layers have their own tests).
    const plan = makeQuantPlan(REAL_WIDTH, { preset: 'w4a4', modulation: 'float' });

    const model = await FluxTransformer.load(await testGpu(), FluxCheckpoint.open(await open(), REAL_WIDTH), { quant: plan });
    const runner = new TransformerRunner(model);
    let gpu;
    try {
      gpu = await runner.forward(inputs, { intermediates: true });
    } finally {
      runner.dispose();
      model.destroy();
    }
    const t1 = performance.now();

    const checkpoint = FluxCheckpoint.open(await open(), REAL_WIDTH);
    const params = new Map<string, Float32Array>();
    for (const name of checkpoint.plan.params.keys()) params.set(name, await checkpoint.readFloat32(name));
    const param = (name: string) => params.get(name)!;
    const float = floatLinear(param);
    const hook: LinearHook = (name, x, rows) => {
      const precision = plan.layers.get(name) ?? 'float';
      if (precision === 'float') return float(name, x, rows);
      const w = param(`${name}.weight`);
      const b = param(`${name}.bias`);
      return fakeQuantLinearRef(x, w, b, rows, w.length / b.length, b.length, { rotation: plan.rotation, groupSize: plan.groupSize, format: precision });
    };
    const cpu = fluxForward(REAL_WIDTH, param, inputs, hook);
    const t2 = performance.now();
    console.log(`real width: GPU load + forward ${((t1 - t0) / 1000).toFixed(1)} s, CPU reference ${((t2 - t1) / 1000).toFixed(1)} s`);

    expect([...gpu.streams.keys()].sort()).toEqual([...cpu.streams.keys()].sort());
    for (const [name, stream] of gpu.streams) {
      const distance = relativeL2Error(stream, cpu.streams.get(name)!);
      console.log(`${name}: ${distance.toExponential(2)}`);
      expect(distance, name).toBeLessThan(SAME_METHOD_LIMIT);
    }
    const outDistance = relativeL2Error(gpu.out, cpu.out);
    console.log(`out: ${outDistance.toExponential(2)}`);
    expect(outDistance).toBeLessThan(SAME_METHOD_LIMIT);
  }, REAL_WIDTH_TIMEOUT_MS);
});
