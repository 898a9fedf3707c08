/**
 * ConvRot's symmetric absmax quantizers (docs/convrot-method.md §2): one scale per row of an already
 * rotated matrix, per output channel for weights and per token for activations. No zero point, no clipping
 * search, no calibration.
 *
 * Exact f32 recipe for a row r (the GPU quantize kernel must reproduce it):
 *   absmax = max_k |v[r,k]|                                  (exact: a max of f32 values)
 *   s[r]   = max(f32(absmax / qmax), SCALE_FLOOR)            (f32 division, then the floor)
 *   q[r,k] = clamp(roundHalfEven(f32(v[r,k] / s[r])), qmin, qmax)
 * Division, not multiplication by 1/s, as in the original kernels. WGSL `round` is round-half-to-even.
 * Caveat for GPU tests: WGSL only bounds f32 division to 2.5 ULP (×, +, − are correctly rounded), so a GPU
 * quotient that lands within a few ULP of a .5 boundary may round to the neighbouring integer.
 */
import { QUANT_FORMATS, quantFormat, SCALE_FLOOR, type QuantFormat, type QuantFormatName } from '../format/quant-format.ts';
import { assertMatrix } from './shape.ts';

export { QUANT_FORMATS, quantFormat, SCALE_FLOOR, type QuantFormat, type QuantFormatName };

/** Rounds to the nearest integer, ties to even (torch.round, WGSL round, CUDA __half2int_rn). */
export function roundHalfEven(v: number): number {
  const r = Math.round(v); // ties toward +∞
  // r − v is exact here; a tie rounded up to an odd integer goes back down to the even one. `+ 0` turns the
  // −0 that Math.round gives for (−0.5, −0] into 0: integers have no signed zero.
  return (r - v === 0.5 && r % 2 !== 0 ? r - 1 : r) + 0;
}

export interface QuantizedRows {
  /** Row-major [rows, cols] integers. */
  readonly q: Int8Array<ArrayBuffer>;
  /** One f32 scale per row. */
  readonly scales: Float32Array<ArrayBuffer>;
  /** Σ_k q[r,k] per row, for GEMM kernels that dot unsigned-offset values: Σ(a+c)(b+d) needs Σa and Σb. */
  readonly rowSums: Int32Array<ArrayBuffer>;
}

function quantizeRows(v: Float32Array, rows: number, cols: number, qmin: number, qmax: number): QuantizedRows {
  assertMatrix('quantizer input', v.length, rows, cols);
  const f = Math.fround;
  const q = new Int8Array(rows * cols);
  const scales = new Float32Array(rows);
  const rowSums = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let absmax = 0;
    for (let k = 0; k < cols; k++) absmax = Math.max(absmax, Math.abs(v[base + k]));
    const s = Math.max(f(absmax / qmax), SCALE_FLOOR);
    let sum = 0;
    for (let k = 0; k < cols; k++) {
      const qk = Math.min(qmax, Math.max(qmin, roundHalfEven(f(v[base + k] / s))));
      q[base + k] = qk;
      sum += qk;
    }
    scales[r] = s;
    rowSums[r] = sum;
  }
  return { q, scales, rowSums };
}

/** Per-output-channel weight quantization of rotated weights [rows = out, cols = K]. */
export function quantizeWeightRows(
  w: Float32Array,
  rows: number,
  cols: number,
  format: QuantFormat,
): QuantizedRows {
  return quantizeRows(w, rows, cols, -format.qmaxWeight, format.qmaxWeight);
}

/** Per-token activation quantization of rotated activations [rows = tokens, cols = K]. */
export function quantizeActivationRows(
  x: Float32Array,
  rows: number,
  cols: number,
  format: QuantFormat,
): QuantizedRows {
  return quantizeRows(x, rows, cols, format.qminAct, format.qmaxAct);
}

/** Float dequantization v̂[r,k] = f32(q[r,k] · s[r]) of row-major [rows, cols]. */
export function dequantizeRows(
  q: Int8Array,
  scales: Float32Array,
  rows: number,
  cols: number,
): Float32Array<ArrayBuffer> {
  assertMatrix('quantized rows', q.length, rows, cols);
  assertMatrix('row scales', scales.length, rows, 1);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const s = scales[r];
    for (let k = 0; k < cols; k++) out[r * cols + k] = q[r * cols + k] * s;
  }
  return out;
}
