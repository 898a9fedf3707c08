/**
 * A fake-quantized ConvRot layer prepared once and applied many times (the quality tools run whole models
 * through it): the weights are rotated, quantized and dequantized at construction, so a call only rotates and
 * quantizes its input. Same math, same float operations, as fakeQuantLinearRef (conv-linear-ref.ts), plus an
 * optional low-rank float branch (low-rank.ts): y = fq(x)·fq(R)ᵀ + b + (x·L2ᵀ)·L1ᵀ.
 */
import { linearRef, type ConvRotOptions } from './conv-linear-ref.ts';
import { blockRotateRows } from './hadamard.ts';
import { lowRankSplit, roundToBf16, type LowRankSplit } from './low-rank.ts';
import { dequantizeRows, quantFormat, quantizeActivationRows, quantizeWeightRows } from './quantize.ts';
import { assertMatrix } from './shape.ts';

export interface FakeQuantLayerOptions extends ConvRotOptions {
  /** Rank of the float branch; 0 (default) is none. */
  readonly rank?: number;
}

export class FakeQuantLinear {
  private constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    readonly options: FakeQuantLayerOptions,
    /** Rotated, quantized and dequantized weights [out, paddedK]. */
    private readonly weights: Float32Array,
    private readonly paddedK: number,
    private readonly bias: Float32Array | undefined,
    readonly branch: LowRankSplit | undefined,
  ) {}

  static prepare(w: Float32Array, bias: Float32Array | undefined, outFeatures: number, inFeatures: number, options: FakeQuantLayerOptions): FakeQuantLinear {
    assertMatrix('fake-quant weight', w.length, outFeatures, inFeatures);
    const rank = options.rank ?? 0;
    const branch = rank > 0 ? lowRankSplit(w, outFeatures, inFeatures, rank, roundToBf16) : undefined;
    const rotated = blockRotateRows(options.rotation, options.groupSize, branch?.residual ?? w, outFeatures, inFeatures);
    const q = quantizeWeightRows(rotated.data, outFeatures, rotated.paddedCols, quantFormat(options.format));
    const weights = dequantizeRows(q.q, q.scales, outFeatures, rotated.paddedCols);
    return new FakeQuantLinear(inFeatures, outFeatures, options, weights, rotated.paddedCols, bias, branch);
  }

  /** y [rows, out] for x [rows, in]. */
  apply(x: Float32Array, rows: number): Float32Array {
    const { rotation, groupSize, format } = this.options;
    const rotated = blockRotateRows(rotation, groupSize, x, rows, this.inFeatures);
    const q = quantizeActivationRows(rotated.data, rows, this.paddedK, quantFormat(format));
    const y = linearRef(dequantizeRows(q.q, q.scales, rows, this.paddedK), this.weights, this.bias, rows, this.paddedK, this.outFeatures);
    if (this.branch) {
      const { rank, up, down } = this.branch;
      const t = linearRef(x, down, undefined, rows, this.inFeatures, rank);
      const z = linearRef(t, up, undefined, rows, rank, this.outFeatures);
      for (let i = 0; i < y.length; i++) y[i]! += z[i]!;
    }
    return y;
  }
}
