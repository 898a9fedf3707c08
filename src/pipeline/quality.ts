/**
 * What the quality tools need from a checkpoint location: its parameters in host memory, its calibration
 * file, and a checkpoint made from transformed parameters (smoothed weights), which the GPU loader reads like
 * any file.
 */
import { FluxError } from '../errors.ts';
import { FluxCheckpoint } from '../model/checkpoint.ts';
import type { FluxConfig } from '../model/config.ts';
import { encodeDiffusersCheckpoint, paramShapes, readCanonicalParams, type CanonicalParams } from '../model/params.ts';
import { defaultCalibrationPath, readCalibration, type Calibration } from '../model/quality/calibration.ts';
import { DTYPE_BYTES } from '../weights/dtypes.ts';
import { openCheckpoint, SafetensorsFile } from '../weights/safetensors.ts';
import { blobSource } from '../weights/sources.ts';
import { openTransformerCheckpoint } from './load.ts';

export interface HostModel {
  readonly config: FluxConfig;
  readonly params: Map<string, Float32Array>;
  readonly shapes: ReadonlyMap<string, readonly number[]>;
  /** Bytes per weight value in the file (2 for bf16): what float layers take on the GPU. */
  readonly floatValueBytes: number;
}

/** Every canonical parameter of the checkpoint at `location`, as float32. */
export async function loadHostModel(location: string, configLocation?: string): Promise<HostModel> {
  const checkpoint = await openTransformerCheckpoint(location, configLocation);
  try {
    const first = checkpoint.param(`${[...checkpoint.plan.params.keys()][0]}`).slices[0]!;
    return {
      config: checkpoint.config,
      params: await readCanonicalParams(checkpoint),
      shapes: paramShapes(checkpoint),
      floatValueBytes: DTYPE_BYTES[first.dtype],
    };
  } finally {
    await checkpoint.close();
  }
}

/** The calibration at `path`, or next to the model; a missing default file gives undefined. */
export async function findCalibration(modelLocation: string, config: FluxConfig, path?: string): Promise<Calibration | undefined> {
  let reader;
  try {
    reader = await openCheckpoint(path ?? defaultCalibrationPath(modelLocation));
  } catch (e) {
    if (path === undefined && e instanceof FluxError && e.code === 'io') return undefined;
    throw e;
  }
  try {
    return await readCalibration(reader, config);
  } finally {
    await reader.close();
  }
}

/** An in-memory checkpoint (diffusers layout, F32) holding `params`. */
export async function checkpointFromParams(params: CanonicalParams, model: HostModel, name: string): Promise<FluxCheckpoint> {
  const bytes = encodeDiffusersCheckpoint(params, model.shapes);
  return FluxCheckpoint.open(await SafetensorsFile.open(blobSource(new Blob([bytes]), name)), model.config);
}
