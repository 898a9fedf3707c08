/**
 * Calibration as SmoothQuant does it: run the float model on a few inputs and record, for the input of every
 * quantizable linear (the block linears, precision.ts), the largest |x| each input channel takes over all
 * tokens and calls. Smoothing (smoothing.ts) needs these maxima; automatic mixed precision
 * (auto-precision.ts) stores its per-layer sensitivities in the same file.
 *
 * File format (safetensors, F32): `<layer>.input_absmax` [inFeatures] for every block linear, and, once
 * measured, `<layer>.int4_sensitivity` [1]. Metadata: format, calls, what the inputs were.
 */
import { FluxError } from '../../errors.ts';
import { encodeSafetensors, type TensorToWrite } from '../../weights/safetensors-writer.ts';
import type { TensorReader } from '../../weights/safetensors.ts';
import type { FluxConfig } from '../config.ts';
import type { FluxInputs } from '../inputs.ts';
import { paramGetter, type CanonicalParams } from '../params.ts';
import { canonicalLinears, type CanonicalLinear } from '../layout.ts';
import { floatLinear, fluxForward } from '../reference/flux-ref.ts';

export interface Calibration {
  /** Block linear name → max |x| per input channel. */
  readonly inputAbsMax: ReadonlyMap<string, Float32Array>;
  /** Block linear name → output error when only this layer is INT4 (the rest INT8); see auto-precision.ts. */
  readonly sensitivity?: ReadonlyMap<string, number>;
  /** Transformer calls the maxima were taken over. */
  readonly calls: number;
  /** Where the inputs came from (a file name, `random:N:seed`). */
  readonly source: string;
}

export const CALIBRATION_FORMAT = 'flux-w4a4-calibration';
const ABSMAX_SUFFIX = '.input_absmax';
const SENSITIVITY_SUFFIX = '.int4_sensitivity';

/** The linears calibration covers: every block linear (the ones a precision map may quantize). */
function quantizableLinears(config: FluxConfig): CanonicalLinear[] {
  return canonicalLinears(config).filter((l) => l.role === 'block');
}

/** Runs the float CPU reference on every input and records the per-channel input maxima of the block linears. */
export function calibrate(
  config: FluxConfig,
  params: CanonicalParams,
  inputs: readonly FluxInputs[],
  source: string,
  onProgress?: (done: number, total: number) => void,
  signal?: AbortSignal,
): Calibration {
  if (inputs.length === 0) throw new FluxError('bad-argument', 'calibration needs at least one input');
  const getParam = paramGetter(params);
  const float = floatLinear(getParam);
  const maxima = new Map<string, Float32Array>(quantizableLinears(config).map((l) => [l.name, new Float32Array(l.inFeatures)]));
  const record = (name: string, x: Float32Array, rows: number): Float32Array => {
    const m = maxima.get(name);
    if (m) {
      const cols = m.length;
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) m[c] = Math.max(m[c]!, Math.abs(x[r * cols + c]!));
      }
    }
    return float(name, x, rows);
  };
  for (const [i, call] of inputs.entries()) {
    signal?.throwIfAborted();
    fluxForward(config, getParam, call, record);
    onProgress?.(i + 1, inputs.length);
  }
  return { inputAbsMax: maxima, calls: inputs.length, source };
}

export function encodeCalibration(calibration: Calibration): Uint8Array<ArrayBuffer> {
  const tensors: TensorToWrite[] = [];
  const f32 = (values: Float32Array): Uint8Array => new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  for (const [name, m] of calibration.inputAbsMax) tensors.push({ name: name + ABSMAX_SUFFIX, dtype: 'F32', shape: [m.length], data: f32(m) });
  for (const [name, s] of calibration.sensitivity ?? []) tensors.push({ name: name + SENSITIVITY_SUFFIX, dtype: 'F32', shape: [1], data: f32(Float32Array.of(s)) });
  return encodeSafetensors(tensors, { format: CALIBRATION_FORMAT, calls: String(calibration.calls), source: calibration.source });
}

/** Reads a calibration file; checks it covers every block linear of `config` with the right widths. */
export async function readCalibration(reader: TensorReader, config: FluxConfig): Promise<Calibration> {
  if (reader.metadata['format'] !== CALIBRATION_FORMAT) {
    throw new FluxError('bad-format', `${reader.name}: not a calibration file (metadata format is not "${CALIBRATION_FORMAT}"; make one with 'flux-w4a4 calibrate')`);
  }
  const inputAbsMax = new Map<string, Float32Array>();
  const sensitivity = new Map<string, number>();
  for (const { name, inFeatures } of quantizableLinears(config)) {
    const key = name + ABSMAX_SUFFIX;
    if (!reader.has(key) || reader.info(key).shape[0] !== inFeatures) {
      throw new FluxError('bad-format', `${reader.name}: no "${key}" of ${inFeatures} values (calibrated for another model?)`);
    }
    inputAbsMax.set(name, await reader.readFloat32(key));
    if (reader.has(name + SENSITIVITY_SUFFIX)) sensitivity.set(name, (await reader.readFloat32(name + SENSITIVITY_SUFFIX))[0]!);
  }
  const complete = sensitivity.size === inputAbsMax.size;
  return { inputAbsMax, sensitivity: complete ? sensitivity : undefined, calls: Number(reader.metadata['calls'] ?? 0), source: reader.metadata['source'] ?? '' };
}

/** Where `calibrate` puts its file by default: next to a single-file model, or inside a model folder. */
export function defaultCalibrationPath(modelLocation: string): string {
  const file = /\.safetensors(\.index\.json)?$/;
  if (file.test(modelLocation)) return modelLocation.replace(file, '.calibration.safetensors');
  return `${modelLocation.replace(/[/\\]+$/, '')}/calibration.safetensors`;
}
