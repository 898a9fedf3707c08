import { describe, expect, it } from 'vitest';
import { FluxError } from '../../src/errors.ts';
import { configFromDiffusers, FLUX1_DEFAULTS, inferConfig, validateConfig } from '../../src/model/config.ts';
import { detectLayout } from '../../src/model/layout.ts';
import { BFL_TRANSFORMER, DIFFUSERS_TRANSFORMER, openSafetensors, readConfigJson, tensorList } from './helpers.ts';

const TINY_A = {
  hiddenSize: 256,
  numHeads: 4,
  headDim: 64,
  mlpHidden: 1024,
  depthDouble: 2,
  depthSingle: 4,
  inChannels: 64,
  outChannels: 64,
  contextDim: 128,
  vecDim: 64,
  axesDim: [8, 28, 28],
  theta: 10000,
  guidanceEmbed: true,
};

async function inferFrom(path: string) {
  const file = await openSafetensors(path);
  try {
    const tensors = tensorList(file);
    return inferConfig(tensors, detectLayout(tensors.map((t) => t.name)));
  } finally {
    await file.close();
  }
}

describe('model config', () => {
  it('reads the diffusers config.json of flux-tiny-a', async () => {
    expect(configFromDiffusers(await readConfigJson())).toEqual(TINY_A);
  });

  it('infers the same config from the shapes of both checkpoint layouts', async () => {
    const fromJson = configFromDiffusers(await readConfigJson());
    expect(await inferFrom(BFL_TRANSFORMER)).toEqual(fromJson);
    expect(await inferFrom(DIFFUSERS_TRANSFORMER)).toEqual(fromJson);
  });

  it('infers a schnell-like config when there is no guidance embedder', async () => {
    const file = await openSafetensors(BFL_TRANSFORMER);
    const tensors = tensorList(file).filter((t) => !t.name.startsWith('guidance_in.'));
    await file.close();
    expect(inferConfig(tensors, { kind: 'bfl', prefix: '' }).guidanceEmbed).toBe(false);
  });

  it('knows the real FLUX.1 values', () => {
    expect(validateConfig(FLUX1_DEFAULTS)).toBe(FLUX1_DEFAULTS);
    expect(FLUX1_DEFAULTS.hiddenSize).toBe(3072);
    expect(FLUX1_DEFAULTS.axesDim).toEqual([16, 56, 56]);
    const fullSize = { attention_head_dim: 128, num_attention_heads: 24, num_layers: 19, num_single_layers: 38, in_channels: 64, out_channels: null, joint_attention_dim: 4096, pooled_projection_dim: 768, guidance_embeds: true, axes_dims_rope: [16, 56, 56] };
    expect(configFromDiffusers(fullSize)).toEqual(FLUX1_DEFAULTS);
  });

  it('rejects inconsistent configs with a message naming the problem', () => {
    const bad = (patch: object) => {
      try {
        validateConfig({ ...FLUX1_DEFAULTS, ...patch });
      } catch (e) {
        expect(e).toBeInstanceOf(FluxError);
        return (e as FluxError).message;
      }
      throw new Error('expected a FluxError');
    };
    expect(bad({ axesDim: [16, 56, 48] })).toBe('axesDim [16, 56, 48] sums to 120, not headDim 128');
    expect(bad({ numHeads: 20 })).toBe('hiddenSize 3072 != numHeads 20 × headDim 128');
    expect(bad({ axesDim: [15, 57, 56] })).toMatch(/even/);
    expect(bad({ depthDouble: -1 })).toMatch(/depthDouble/);
  });

  it('names the missing or mistyped config.json field', async () => {
    const json = (await readConfigJson()) as Record<string, unknown>;
    expect(() => configFromDiffusers({ ...json, num_layers: undefined })).toThrow(/"num_layers"/);
    expect(() => configFromDiffusers({ ...json, guidance_embeds: 'yes' })).toThrow(/"guidance_embeds"/);
    expect(() => configFromDiffusers(null)).toThrow(FluxError);
  });
});
