/** Opening a FLUX transformer checkpoint and loading it onto the GPU at a chosen precision. */
import { FluxError } from '../errors.ts';
import type { GpuContext } from '../gpu/device.ts';
import { FluxCheckpoint } from '../model/checkpoint.ts';
import { configFromDiffusers } from '../model/config.ts';
import type { OpenedWeights } from '../model/cached-weights.ts';
import { isPackedTransformer, PackedTransformer } from '../model/packed-transformer.ts';
import { makeQuantPlan, type PrecisionPreset, type QuantPlan, type QuantPlanOptions } from '../model/precision.ts';
import { checkpointSource } from '../model/weight-loader.ts';
import { FluxTransformer, type LoadProgress } from '../model/transformer.ts';
import { openCheckpoint, sibling } from '../weights/safetensors.ts';
import { readJson } from '../weights/sources.ts';

const CONFIG_FILE = 'config.json';
/** W4A4 with INT8 where the preset says (docs/convrot.md §3). */
export const DEFAULT_PRESET: PrecisionPreset = 'mixed';

function isFolder(location: string): boolean {
  return !location.endsWith('.safetensors') && !location.endsWith('.json');
}

/** The diffusers config.json named, or next to a folder's weights; undefined when a folder has none. */
async function transformerConfigJson(location: string, configLocation: string | undefined): Promise<unknown> {
  if (configLocation !== undefined) return readJson(configLocation);
  if (!isFolder(location)) return undefined;
  return readJson(sibling(location, CONFIG_FILE)).catch((e: unknown) => {
    if (e instanceof FluxError && e.code === 'io') return undefined;
    throw e;
  });
}

/**
 * Opens a transformer checkpoint: a BFL single file, a diffusers `transformer/` folder (its config.json is
 * used when present), or a sharded index. `configLocation` names a diffusers config.json explicitly;
 * otherwise a single file's config is inferred from its tensor shapes.
 */
export async function openTransformerCheckpoint(location: string, configLocation?: string): Promise<FluxCheckpoint> {
  const configJson = await transformerConfigJson(location, configLocation);
  const reader = await openCheckpoint(location);
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

/** An opened transformer: a source checkpoint to quantize, or a packed model with its own plan. */
export interface OpenedTransformer extends OpenedWeights {
  /** The plan the weights load at: the packed file's, or the requested one over the checkpoint. */
  readonly plan: QuantPlan;
  readonly packed: boolean;
}

function samePlan(a: QuantPlan, b: QuantPlan): boolean {
  return a.rotation === b.rotation && a.groupSize === b.groupSize && a.layers.size === b.layers.size && [...a.layers].every(([n, p]) => b.layers.get(n) === p);
}

/**
 * Opens a transformer's weights: a source checkpoint (quantized while loading, at `plan`, default 'mixed') or
 * a packed model (`flux-w4a4 quantize`), which loads at its own plan; asking a packed model for a different
 * plan is an error, since that needs the source weights (`packedAtOwnPlan` loads it at its own instead).
 */
export async function openTransformerWeights(
  ctx: GpuContext,
  location: string,
  configLocation?: string,
  plan?: QuantPlanOptions,
  options: { readonly packedAtOwnPlan?: boolean } = {},
): Promise<OpenedTransformer> {
  const reader = await openCheckpoint(location);
  try {
    if (isPackedTransformer(reader)) {
      const packed = PackedTransformer.open(ctx, reader);
      if (plan && !options.packedAtOwnPlan && !samePlan(makeQuantPlan(packed.config, plan), packed.plan)) {
        throw new FluxError('bad-argument', `${reader.name}: this packed model was quantized at another precision than requested; load it without a precision, or quantize the source again`);
      }
      return { source: packed, plan: packed.plan, packed: true, close: () => reader.close() };
    }
    const configJson = await transformerConfigJson(location, configLocation);
    const checkpoint = FluxCheckpoint.open(reader, configJson === undefined ? undefined : configFromDiffusers(configJson));
    const quant = makeQuantPlan(checkpoint.config, plan ?? { preset: DEFAULT_PRESET });
    return { source: checkpointSource(ctx, checkpoint, (name) => quant.ranks?.get(name) ?? 0), plan: quant, packed: false, close: () => checkpoint.close() };
  } catch (e) {
    await reader.close();
    throw e;
  }
}
