/** Opening a FLUX autoencoder (reference `ae.safetensors` or a diffusers `vae/` folder) and loading its decoder. */
import { FluxError } from '../errors.ts';
import type { GpuContext } from '../gpu/device.ts';
import { FLUX1_VAE, vaeConfigFromJson, type VaeConfig } from '../model/vae/config.ts';
import { VaeDecoder } from '../model/vae/decoder.ts';
import { openCheckpoint, sibling, type ReaderOptions } from '../weights/safetensors.ts';
import { readJson } from '../weights/sources.ts';

const CONFIG_FILE = 'config.json';

async function optionalJson(location: string): Promise<unknown> {
  return readJson(location).catch((e: unknown) => {
    if (e instanceof FluxError && e.code === 'io') return undefined;
    throw e;
  });
}

/**
 * The decoder config: `configLocation` when given, else a folder's config.json, else FLUX.1's autoencoder
 * (a reference `ae.safetensors` comes without a config).
 */
export async function vaeConfigFor(location: string, configLocation?: string): Promise<VaeConfig> {
  if (configLocation !== undefined) return vaeConfigFromJson(await readJson(configLocation));
  if (!location.endsWith('.safetensors')) {
    const json = await optionalJson(sibling(location, CONFIG_FILE));
    if (json !== undefined) return vaeConfigFromJson(json);
  }
  return FLUX1_VAE;
}

export async function loadVaeDecoder(ctx: GpuContext, location: string, configLocation?: string, options: ReaderOptions = {}): Promise<VaeDecoder> {
  const config = await vaeConfigFor(location, configLocation);
  const reader = await openCheckpoint(location, options);
  try {
    return await VaeDecoder.load(ctx, reader, config);
  } finally {
    await reader.close();
  }
}
