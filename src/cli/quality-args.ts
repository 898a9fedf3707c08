/** Flags the quality commands share: precision specs, smoothing strength, the calibration file. */
import { FluxError, isFluxError } from '../errors.ts';
import type { FluxConfig } from '../model/config.ts';
import { parsePrecisionSpec, type PrecisionSpec } from '../model/quality/auto-precision.ts';
import { defaultCalibrationPath, type Calibration } from '../model/quality/calibration.ts';
import { findCalibration } from '../pipeline/quality.ts';
import { UsageError } from './args.ts';

/** `--precision`: a preset or auto[:fraction]; a bad value is a usage error. */
export function precisionSpec(text: string): PrecisionSpec {
  try {
    return parsePrecisionSpec(text);
  } catch (e) {
    if (isFluxError(e)) throw new UsageError(`--precision: ${e.message}`);
    throw e;
  }
}

export function parseAlpha(value: unknown): number {
  const alpha = Number(value);
  if (typeof value !== 'string' || value === '' || !(alpha >= 0 && alpha <= 1)) throw new UsageError(`--alpha must be a number in [0, 1] (got "${String(value)}")`);
  return alpha;
}

/** The calibration `--calib` names, or the one next to the model; its absence is an error naming the fix. */
export async function calibrationFor(model: string, config: FluxConfig, path: string | undefined): Promise<Calibration> {
  const calibration = await findCalibration(model, config, path);
  if (!calibration) throw new FluxError('io', `no calibration at ${defaultCalibrationPath(model)}: run 'flux-w4a4 calibrate --model ${model}' or pass --calib`);
  return calibration;
}
