/** Opening a FLUX transformer checkpoint and loading it onto the GPU at a chosen precision. */
import { FluxError } from '../errors.ts';
import type { GpuContext } from '../gpu/device.ts';
import { FluxCheckpoint } from '../model/checkpoint.ts';
import { configFromDiffusers } from '../model/config.ts';
import { makeQuantPlan, type QuantPlanOptions } from '../model/precision.ts';
import { FluxTransformer, type LoadProgress } from '../model/transformer.ts';
import { openCheckpoint, sibling, type ReaderOptions } from '../weights/safetensors.ts';
import { readJson } from '../weights/sources.ts';

const CONFIG_FILE = 'config.json';

function isFolder(location: string): boolean {
  return !location.endsWith('.safetensors') && !location.endsWith('.json');
}

/**
 * Opens a transformer checkpoint: a BFL single file, a diffusers `transformer/` folder (its config.json is
 * used when present), or a sharded index. `configLocation` names a diffusers config.json explicitly;
 * otherwise a single file's config is inferred from its tensor shapes.
 */
export async function openTransformerCheckpoint(location: string, configLocation?: string, options: ReaderOptions = {}): Promise<FluxCheckpoint> {
  let configJson: unknown;
  if (configLocation !== undefined) configJson = await readJson(configLocation);
  else if (isFolder(location)) {
    configJson = await readJson(sibling(location, CONFIG_FILE)).catch((e: unknown) => {
      if (e instanceof FluxError && e.code === 'io') return undefined;
      throw e;
    });
  }
  const reader = await openCheckpoint(location, options);
  try {
    return FluxCheckpoint.open(reader, configJson === undefined ? undefined : configFromDiffusers(configJson));
  } catch (e) {
    await reader.close();
    throw e;
  }
}

export interface LoadTransformerOptions extends QuantPlanOptions {
  readonly onProgress?: (p: LoadProgress) => void;
}

/** Loads the checkpoint's weights onto the GPU; the checkpoint can be closed afterwards. */
export function loadTransformer(ctx: GpuContext, checkpoint: FluxCheckpoint, options: LoadTransformerOptions): Promise<FluxTransformer> {
  const quant = makeQuantPlan(checkpoint.config, options);
  return FluxTransformer.load(ctx, checkpoint, { quant, onProgress: options.onProgress });
}
