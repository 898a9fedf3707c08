/**
 * The GPU transformer on generated models with FLUX.1's real head geometry (head dim 128, RoPE axes
 * [16, 56, 56]), odd token counts and no guidance embedding, against the CPU reference; and the same
 * model in both key layouts.
 */
import { describe, expect, it } from 'vitest';
import { FluxCheckpoint } from '../../src/model/checkpoint.ts';
import { validateConfig, type FluxConfig } from '../../src/model/config.ts';
import { makeQuantPlan } from '../../src/model/precision.ts';
import type { FluxInputs } from '../../src/model/inputs.ts';
import { fluxForward } from '../../src/model/reference/flux-ref.ts';
import { FluxTransformer } from '../../src/model/transformer.ts';
import { TransformerRunner } from '../../src/pipeline/transformer-runner.ts';
import { SafetensorsFile } from '../../src/weights/safetensors.ts';
import { blobSource } from '../../src/weights/sources.ts';
import { bflToDiffusers, generatedInputs, randomBflCheckpoint } from '../helpers/flux-checkpoints.ts';
import { testGpu } from '../helpers/gpu.ts';
import { maxRelError } from '../helpers/random.ts';
import { BFL_TRANSFORMER, DIFFUSERS_TRANSFORMER, FLOAT_MATCH_TOLERANCE, openSafetensors, readConfigJson } from '../model/helpers.ts';
import { configFromDiffusers } from '../../src/model/config.ts';

/** FLUX.1's head geometry with 2 heads, a schnell-like model (no guidance embedding). */
const SCHNELL_LIKE: FluxConfig = validateConfig({
  hiddenSize: 256,
  numHeads: 2,
  headDim: 128,
  mlpHidden: 1024,
  depthDouble: 1,
  depthSingle: 2,
  inChannels: 64,
  outChannels: 64,
  contextDim: 96,
  vecDim: 48,
  axesDim: [16, 56, 56],
  theta: 10_000,
  guidanceEmbed: false,
});

function openBytes(bytes: Uint8Array, name: string): Promise<SafetensorsFile> {
  return SafetensorsFile.open(blobSource(new Blob([bytes as Uint8Array<ArrayBuffer>]), name));
}

async function gpuForward(file: SafetensorsFile, config: FluxConfig, inputs: FluxInputs) {
  const checkpoint = FluxCheckpoint.open(file, config);
  const model = await FluxTransformer.load(await testGpu(), checkpoint, { quant: makeQuantPlan(config, { preset: 'float' }) });
  const runner = new TransformerRunner(model);
  try {
    return await runner.forward(inputs, { intermediates: true });
  } finally {
    runner.dispose();
    model.destroy();
  }
}

describe('GPU transformer on a generated model (head dim 128, axes [16, 56, 56], no guidance, 96 + 20 tokens)', () => {
  const bfl = randomBflCheckpoint(SCHNELL_LIKE, 1234);
  const inputs = generatedInputs(SCHNELL_LIKE, [8, 12], 20, 99);

  it('matches the CPU reference forward within 1e-4, out and every block stream', async () => {
    const gpu = await gpuForward(await openBytes(bfl, 'generated.safetensors'), SCHNELL_LIKE, inputs);
    const checkpoint = FluxCheckpoint.open(await openBytes(bfl, 'generated.safetensors'), SCHNELL_LIKE);
    const params = new Map<string, Float32Array>();
    for (const name of checkpoint.plan.params.keys()) params.set(name, await checkpoint.readFloat32(name));
    const cpu = fluxForward(SCHNELL_LIKE, (n) => params.get(n)!, inputs);
    expect(maxRelError(gpu.out, cpu.out)).toBeLessThanOrEqual(FLOAT_MATCH_TOLERANCE);
    expect(gpu.streams.size).toBe(2 * SCHNELL_LIKE.depthDouble + SCHNELL_LIKE.depthSingle);
    for (const [name, stream] of gpu.streams) expect(maxRelError(stream, cpu.streams.get(name)!), name).toBeLessThanOrEqual(FLOAT_MATCH_TOLERANCE);
  });

  it('gives the identical output from the model converted to the diffusers layout', async () => {
    const fromBfl = await gpuForward(await openBytes(bfl, 'generated.safetensors'), SCHNELL_LIKE, inputs);
    const diffusers = await bflToDiffusers(await openBytes(bfl, 'generated.safetensors'), SCHNELL_LIKE);
    const fromDiffusers = await gpuForward(await openBytes(diffusers, 'generated-diffusers.safetensors'), SCHNELL_LIKE, inputs);
    expect(fromDiffusers.out).toEqual(fromBfl.out);
  });
});

describe('the test converter agrees with diffusers’ own conversion', () => {
  it('turns flux-tiny-a (BFL) into the same tensors as the shipped diffusers file', async () => {
    const config = configFromDiffusers(await readConfigJson());
    const converted = await openBytes(await bflToDiffusers(await openSafetensors(BFL_TRANSFORMER), config), 'converted');
    const shipped = await openSafetensors(DIFFUSERS_TRANSFORMER);
    expect(converted.names().sort()).toEqual(shipped.names().sort());
    for (const name of shipped.names()) {
      expect(Buffer.from((await converted.readTensor(name)).data).equals(Buffer.from((await shipped.readTensor(name)).data)), name).toBe(true);
    }
    await shipped.close();
  });
});
