/**
 * WeightOnlyLinear: y = x·dequant(W)ᵀ + b with INT4 or INT8 weights and float activations. For layers that see
 * one vector per step (FLUX's modulation linears): quantizing a single activation row saves nothing, and the
 * weights are what takes memory (3.2 B of FLUX's 12 B parameters). Weights are quantized on the GPU per output
 * channel, without rotation (no outliers in the activations to spread, since they are not quantized), by the same
 * row quantizer as ConvRot layers, and stored in the same packed rows, so `exportPacked` / `fromPacked` give the
 * same `PackedLinear` (quantization.rotation 'none'; docs/weight-store.md). The GEMV dequantizes in the dot product.
 */
import { FluxError } from '../errors.ts';
import type { CommandBatch } from '../gpu/batch.ts';
import type { GpuContext } from '../gpu/device.ts';
import type { GpuTensor } from '../gpu/tensor.ts';
import type { MatrixView } from '../kernels/matrix-view.ts';
import { weightOnlyGemv } from '../kernels/gemv.ts';
import type { QuantFormatName } from '../quant/quantize.ts';
import { ConvLinear, DEFAULT_GROUP_SIZE, type PackedLinear } from './conv-linear.ts';
import type { LinearInput, LinearLayer } from './linear.ts';

/** Weight-only rows are not rotated; the group size then only pads K (to whole groups, as the quantizer needs). */
export const WEIGHT_ONLY_QUANTIZATION = { rotation: 'none', groupSize: DEFAULT_GROUP_SIZE } as const;

export class WeightOnlyLinear implements LinearLayer {
  /** The packed rows live in a ConvLinear without rotation; only its forward differs (float activations). */
  private constructor(private readonly rows: ConvLinear) {}

  /** Quantizes float weights [out, in] (f32 or bf16) on the GPU; `w` is only read. A GPU bias is adopted. */
  static async fromFloat(ctx: GpuContext, w: GpuTensor, bias: GpuTensor | undefined, opts: { precision: QuantFormatName; label?: string }): Promise<WeightOnlyLinear> {
    const rows = await ConvLinear.fromFloat(ctx, w, bias, { ...WEIGHT_ONLY_QUANTIZATION, precision: opts.precision, label: opts.label, adoptBias: true });
    return new WeightOnlyLinear(rows);
  }

  static async fromPacked(ctx: GpuContext, packed: PackedLinear, opts: { label?: string } = {}): Promise<WeightOnlyLinear> {
    const { rotation, groupSize } = packed.quantization;
    if (rotation !== WEIGHT_ONLY_QUANTIZATION.rotation || groupSize !== WEIGHT_ONLY_QUANTIZATION.groupSize) {
      throw new FluxError('bad-argument', `${opts.label ?? 'weight-only linear'}: packed rows are ${rotation} ${groupSize}, weight-only layers use none ${WEIGHT_ONLY_QUANTIZATION.groupSize}`);
    }
    return new WeightOnlyLinear(await ConvLinear.fromPacked(ctx, packed, opts));
  }

  get inFeatures(): number {
    return this.rows.inFeatures;
  }

  get outFeatures(): number {
    return this.rows.outFeatures;
  }

  get precision(): QuantFormatName {
    return this.rows.precision;
  }

  get weightBytes(): number {
    return this.rows.weightBytes;
  }

  exportPacked(): Promise<PackedLinear> {
    return this.rows.exportPacked();
  }

  encode(batch: CommandBatch, input: LinearInput, y: MatrixView): Promise<void> {
    const { format, groupSize } = this.rows.quantization;
    return weightOnlyGemv(batch, { format, groupSize, x: input.x, w: this.rows.weights, bias: this.rows.bias, y });
  }

  destroy(): void {
    this.rows.destroy();
  }
}
