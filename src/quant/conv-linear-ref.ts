/**
 * CPU reference of a ConvRot linear layer y = x·Wᵀ + b (docs/convrot-method.md §3), in the integer form the GPU
 * kernels run and in the float ("fake-quantized") form the golden outputs were computed with.
 *
 * Integer path:
 *   offline  W_rot = W·R (rows padded to K_p);   s_w, q_w per output channel;   q_w packed
 *   online   x_rot = x·R;                        s_x, q_x per token;            q_x packed
 *            acc[t,o] = Σ_k q_x[t,k]·q_w[o,k]                     exact integer (i32)
 *            y[t,o]   = f32( f32( f32(s_x[t]·s_w[o]) · f32(acc[t,o]) ) + b[o] )
 * Dequant order, which the GPU epilogue must follow to match within 1e-6 relative: first the product of the two
 * scales, then times the accumulator converted to f32, then plus the bias, each step rounded to f32. f32(acc)
 * is exact while |acc| < 2^24: always for INT4 at FLUX sizes (|acc| ≤ 8·7·K); for INT8 it can exceed that past
 * K ≈ 1040 in the worst case, and is then rounded (nearest-even here). Fusing the last two steps into one FMA
 * changes the result by at most 1 ULP.
 * Scales and dequantization stay in f32 (not fp16 as in the original kernels, see §2.4 hazards).
 */
import { blockRotateRows, type RotationKind } from './hadamard.ts';
import { packSigned, unpackSigned } from './pack.ts';
import {
  dequantizeRows,
  quantFormat,
  quantizeActivationRows,
  quantizeWeightRows,
  type QuantFormatName,
  type QuantizedRows,
} from './quantize.ts';
import { assertMatrix } from './shape.ts';

export interface ConvRotOptions {
  readonly rotation: RotationKind;
  /** Rotation group size N0 (256 in ConvRot); rows are zero-padded to a multiple of it. */
  readonly groupSize: number;
  readonly format: QuantFormatName;
}

/** A quantized, rotated, padded matrix: weights [out, K_p] or activations [tokens, K_p]. */
export interface QuantizedMatrixRef extends QuantizedRows {
  /** q packed K-contiguous (see pack.ts), [rows, paddedK / valuesPerWord]. */
  readonly packed: Uint32Array<ArrayBuffer>;
  /** Inner dimension after padding to a multiple of the group size. */
  readonly paddedK: number;
}

function quantizeRotated(
  v: Float32Array,
  rows: number,
  cols: number,
  opts: ConvRotOptions,
  quantizeRows: typeof quantizeWeightRows,
): QuantizedMatrixRef {
  const format = quantFormat(opts.format);
  const { data, paddedCols } = blockRotateRows(opts.rotation, opts.groupSize, v, rows, cols);
  const quantized = quantizeRows(data, rows, paddedCols, format);
  const packed = packSigned(quantized.q, rows, paddedCols, format.bits);
  return { ...quantized, packed, paddedK: paddedCols };
}

/** Offline weight conversion of W [outFeatures, inFeatures]: rotate, quantize per output channel, pack. */
export function quantizeWeightsRef(
  w: Float32Array,
  outFeatures: number,
  inFeatures: number,
  opts: ConvRotOptions,
): QuantizedMatrixRef {
  return quantizeRotated(w, outFeatures, inFeatures, opts, quantizeWeightRows);
}

/** Online activation quantization of x [tokens, inFeatures]: rotate, quantize per token, pack. */
export function quantizeActivationsRef(
  x: Float32Array,
  tokens: number,
  inFeatures: number,
  opts: ConvRotOptions,
): QuantizedMatrixRef {
  return quantizeRotated(x, tokens, inFeatures, opts, quantizeActivationRows);
}

/** Exact integer GEMM acc[t,o] = Σ_k q_x[t,k]·q_w[o,k] on packed operands (as the GPU reads them). */
export function integerGemmRef(
  actPacked: Uint32Array,
  weightPacked: Uint32Array,
  tokens: number,
  outFeatures: number,
  paddedK: number,
  format: QuantFormatName,
): Int32Array<ArrayBuffer> {
  const { bits } = quantFormat(format);
  const a = unpackSigned(actPacked, tokens, paddedK, bits);
  const b = unpackSigned(weightPacked, outFeatures, paddedK, bits);
  const acc = new Int32Array(tokens * outFeatures);
  for (let t = 0; t < tokens; t++) {
    for (let o = 0; o < outFeatures; o++) {
      let sum = 0;
      for (let k = 0; k < paddedK; k++) sum += a[t * paddedK + k] * b[o * paddedK + k];
      acc[t * outFeatures + o] = sum;
    }
  }
  return acc;
}

/** y[t,o] = f32(f32(f32(s_x[t]·s_w[o])·f32(acc[t,o])) + b[o]) over [tokens = s_x.length, out = s_w.length]. */
export function dequantRef(
  acc: Int32Array,
  actScales: Float32Array,
  weightScales: Float32Array,
  bias?: Float32Array,
): Float32Array<ArrayBuffer> {
  const tokens = actScales.length;
  const outFeatures = weightScales.length;
  assertMatrix('accumulator', acc.length, tokens, outFeatures);
  if (bias !== undefined) assertMatrix('bias', bias.length, 1, outFeatures);
  const f = Math.fround;
  const y = new Float32Array(tokens * outFeatures);
  for (let t = 0; t < tokens; t++) {
    for (let o = 0; o < outFeatures; o++) {
      const scaled = f(f(actScales[t] * weightScales[o]) * f(acc[t * outFeatures + o]));
      y[t * outFeatures + o] = bias === undefined ? scaled : f(scaled + bias[o]);
    }
  }
  return y;
}

/** A ConvRot layer prepared offline: quantized weights, float bias, and the options it was quantized with. */
export interface ConvLinearLayerRef {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly options: ConvRotOptions;
  readonly weights: QuantizedMatrixRef;
  readonly bias?: Float32Array;
}

/** Prepares a layer from float W [outFeatures, inFeatures] and optional bias [outFeatures]. */
export function makeConvLinearRef(
  w: Float32Array,
  bias: Float32Array | undefined,
  outFeatures: number,
  inFeatures: number,
  options: ConvRotOptions,
): ConvLinearLayerRef {
  if (bias !== undefined) assertMatrix('bias', bias.length, 1, outFeatures);
  const weights = quantizeWeightsRef(w, outFeatures, inFeatures, options);
  return { inFeatures, outFeatures, options, weights, bias };
}

/** The whole integer path for x [tokens, inFeatures] → y [tokens, outFeatures]. */
export function convLinearRef(
  x: Float32Array,
  tokens: number,
  layer: ConvLinearLayerRef,
): Float32Array<ArrayBuffer> {
  const act = quantizeActivationsRef(x, tokens, layer.inFeatures, layer.options);
  const acc = integerGemmRef(
    act.packed,
    layer.weights.packed,
    tokens,
    layer.outFeatures,
    act.paddedK,
    layer.options.format,
  );
  return dequantRef(acc, act.scales, layer.weights.scales, layer.bias);
}

/** Plain float linear y = x·Wᵀ + b with f64 accumulation, rounded to f32 once per output. */
export function linearRef(
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array | undefined,
  tokens: number,
  inFeatures: number,
  outFeatures: number,
): Float32Array<ArrayBuffer> {
  assertMatrix('linear input', x.length, tokens, inFeatures);
  assertMatrix('linear weight', w.length, outFeatures, inFeatures);
  if (bias !== undefined) assertMatrix('bias', bias.length, 1, outFeatures);
  const y = new Float32Array(tokens * outFeatures);
  // Two tokens per pass share each weight load (the quality tools run whole models through this); each
  // output still sums bias, then its products in order, as the one-token loop does.
  let t = 0;
  for (; t + 2 <= tokens; t += 2) {
    const x0 = t * inFeatures;
    const x1 = x0 + inFeatures;
    for (let o = 0; o < outFeatures; o++) {
      const w0 = o * inFeatures;
      let sum0 = bias === undefined ? 0 : bias[o];
      let sum1 = sum0;
      for (let k = 0; k < inFeatures; k++) {
        const wk = w[w0 + k];
        sum0 += x[x0 + k] * wk;
        sum1 += x[x1 + k] * wk;
      }
      y[t * outFeatures + o] = sum0;
      y[(t + 1) * outFeatures + o] = sum1;
    }
  }
  for (; t < tokens; t++) {
    for (let o = 0; o < outFeatures; o++) {
      let sum = bias === undefined ? 0 : bias[o];
      for (let k = 0; k < inFeatures; k++) sum += x[t * inFeatures + k] * w[o * inFeatures + k];
      y[t * outFeatures + o] = sum;
    }
  }
  return y;
}

export interface FakeQuantOptions extends ConvRotOptions {
  /** false: rotation only, quantization switched off (checks that the rotation cancels). Default true. */
  readonly quantizeLinear?: boolean;
}

/**
 * The float path of the golden references: rotate x and W, quantize-dequantize both (f32 values q·s), then a
 * plain float matmul plus bias. Mathematically the integer path; it differs only by float rounding.
 */
export function fakeQuantLinearRef(
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array | undefined,
  tokens: number,
  inFeatures: number,
  outFeatures: number,
  opts: FakeQuantOptions,
): Float32Array<ArrayBuffer> {
  const xRot = blockRotateRows(opts.rotation, opts.groupSize, x, tokens, inFeatures);
  const wRot = blockRotateRows(opts.rotation, opts.groupSize, w, outFeatures, inFeatures);
  const k = xRot.paddedCols;
  if (opts.quantizeLinear === false) return linearRef(xRot.data, wRot.data, bias, tokens, k, outFeatures);
  const format = quantFormat(opts.format);
  const xq = quantizeActivationRows(xRot.data, tokens, k, format);
  const wq = quantizeWeightRows(wRot.data, outFeatures, k, format);
  const xHat = dequantizeRows(xq.q, xq.scales, tokens, k);
  const wHat = dequantizeRows(wq.q, wq.scales, outFeatures, k);
  return linearRef(xHat, wHat, bias, tokens, k, outFeatures);
}
