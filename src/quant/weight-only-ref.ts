/**
 * CPU reference of a weight-only quantized linear (src/nn/weight-only-linear.ts): per-output-channel symmetric
 * quantization of W without rotation, float activations, y = s_n · Σ_k q[n, k] · x[k] + b[n] (f64 sums).
 */
import { quantFormat, quantizeWeightRows, type QuantFormatName, type QuantizedRows } from './quantize.ts';

export interface WeightOnlyRef extends QuantizedRows {
  readonly outFeatures: number;
  readonly inFeatures: number;
}

/** Quantizes w [out, in] as the GPU does (zero padding of K changes neither absmax nor q). */
export function quantizeWeightOnlyRef(w: Float32Array, outFeatures: number, inFeatures: number, format: QuantFormatName): WeightOnlyRef {
  return { ...quantizeWeightRows(w, outFeatures, inFeatures, quantFormat(format)), outFeatures, inFeatures };
}

/** y [rows, out] = x [rows, in] · dequant(W)ᵀ + b. */
export function weightOnlyLinearRef(layer: WeightOnlyRef, x: Float32Array, rows: number, bias?: Float32Array): Float32Array {
  const { outFeatures: n, inFeatures: k, q, scales } = layer;
  const y = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < n; o++) {
      let dot = 0;
      for (let i = 0; i < k; i++) dot += q[o * k + i]! * x[r * k + i]!;
      y[r * n + o] = dot * scales[o]! + (bias?.[o] ?? 0);
    }
  }
  return y;
}
