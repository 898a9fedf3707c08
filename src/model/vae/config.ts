/**
 * The FLUX autoencoder's decoder hyper-parameters, from a diffusers AutoencoderKL `config.json` (also the
 * format of the golden `vae_config.json`), or FLUX.1's values for a reference `ae.safetensors` alone.
 */
import { FluxError } from '../../errors.ts';

export interface VaeConfig {
  readonly latentChannels: number;
  /** Output channels of each level, level 0 (full resolution) first, as diffusers' block_out_channels. */
  readonly blockOutChannels: readonly number[];
  /** The decoder runs layersPerBlock + 1 resnets per level (diffusers layers_per_block, BFL num_res_blocks). */
  readonly layersPerBlock: number;
  readonly groups: number;
  readonly eps: number;
  /** Decode transform z / scalingFactor + shiftFactor. */
  readonly scalingFactor: number;
  readonly shiftFactor: number;
  readonly outChannels: number;
}

/** GroupNorm epsilon of every norm in the FLUX autoencoder (BFL and diffusers alike; not in the config). */
const VAE_GROUP_NORM_EPS = 1e-6;

/** FLUX.1's autoencoder (schnell and dev share it). */
export const FLUX1_VAE: VaeConfig = Object.freeze({
  latentChannels: 16,
  blockOutChannels: Object.freeze([128, 256, 512, 512]),
  layersPerBlock: 2,
  groups: 32,
  eps: VAE_GROUP_NORM_EPS,
  scalingFactor: 0.3611,
  shiftFactor: 0.1159,
  outChannels: 3,
});

function bad(problem: string): never {
  throw new FluxError('bad-format', `VAE config: ${problem}`);
}

function positiveInt(json: Record<string, unknown>, key: string, fallback: number): number {
  const v = json[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) bad(`${key} must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

function finite(json: Record<string, unknown>, key: string, fallback: number): number {
  const v = json[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) bad(`${key} must be a number, got ${JSON.stringify(v)}`);
  return v;
}

/** Reads a diffusers-style VAE config; fields it lacks take FLUX.1's values. */
export function vaeConfigFromJson(json: unknown): VaeConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) bad('not a JSON object');
  const j = json as Record<string, unknown>;
  const channels = j.block_out_channels ?? FLUX1_VAE.blockOutChannels;
  if (!Array.isArray(channels) || channels.length === 0 || channels.some((c) => !Number.isInteger(c) || c <= 0)) {
    bad(`block_out_channels must be a list of positive integers, got ${JSON.stringify(channels)}`);
  }
  const groups = positiveInt(j, 'norm_num_groups', FLUX1_VAE.groups);
  for (const c of channels as number[]) if (c % groups !== 0) bad(`block_out_channels ${c} is not a multiple of norm_num_groups ${groups}`);
  const scalingFactor = finite(j, 'scaling_factor', FLUX1_VAE.scalingFactor);
  if (scalingFactor === 0) bad('scaling_factor must not be 0');
  if (j.use_post_quant_conv === true) bad('post_quant_conv is not supported (FLUX autoencoders have none)');
  return Object.freeze({
    latentChannels: positiveInt(j, 'latent_channels', FLUX1_VAE.latentChannels),
    blockOutChannels: Object.freeze([...(channels as number[])]),
    layersPerBlock: positiveInt(j, 'layers_per_block', FLUX1_VAE.layersPerBlock),
    groups,
    eps: VAE_GROUP_NORM_EPS,
    scalingFactor,
    shiftFactor: finite(j, 'shift_factor', FLUX1_VAE.shiftFactor),
    outChannels: positiveInt(j, 'out_channels', FLUX1_VAE.outChannels),
  });
}

/** Image pixels per latent pixel along each axis: one 2× upsample between consecutive levels. */
export function vaeUpscale(config: VaeConfig): number {
  return 2 ** (config.blockOutChannels.length - 1);
}
