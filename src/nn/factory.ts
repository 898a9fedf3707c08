/**
 * One way to build a linear layer at any precision, and replaceable layer slots.
 *
 * Model code (transformer, text encoders) calls `createLinear` with a LinearSpec; the spec's precision picks
 * the float f32 GEMM or ConvRot at INT8/INT4. A `LinearSlot` holds one named layer of a loaded model and can
 * rebuild it at another precision (or from packed weights) without touching any other layer; the model encodes
 * through the slot, so the swap shows in the next forward.
 */
import { FluxError } from '../errors.ts';
import type { CommandBatch } from '../gpu/batch.ts';
import type { GpuContext } from '../gpu/device.ts';
import type { GpuTensor } from '../gpu/tensor.ts';
import type { MatrixView } from '../kernels/matrix-view.ts';
import type { RotationKind } from '../quant/hadamard.ts';
import { ConvLinear, DEFAULT_GROUP_SIZE, DEFAULT_ROTATION, type PackedLinear } from './conv-linear.ts';
import type { LowRankSplit } from '../quant/low-rank.ts';
import { FloatLinear, type LayerPrecision, type LinearInput, type LinearLayer } from './linear.ts';
import { LowRankLinear } from './low-rank-linear.ts';
import { WeightOnlyLinear } from './weight-only-linear.ts';

export { DEFAULT_GROUP_SIZE, DEFAULT_ROTATION };

/** What a layer is built as. Rotation and group size only matter for int8/int4. */
export interface LinearSpec {
  readonly precision: LayerPrecision;
  /** Default 'regular' (ConvRot); 'sylvester' and 'none' are ablations. */
  readonly rotation?: RotationKind;
  /** Rotation group N0; default 256. */
  readonly groupSize?: number;
  /** Names the layer's buffers in GPU errors. */
  readonly label?: string;
  /**
   * Quantize the weights only (int8/int4, per output channel, no rotation) and keep activations float: for layers
   * that see one vector per step (the modulation linears). Rotation and group size do not apply.
   */
  readonly weightOnly?: boolean;
}

/**
 * Builds a layer from float weights [out, in] (f32 or bf16) and an optional [out] f32 bias. The layer takes
 * ownership of both: a float layer keeps them, a quantized one packs the weights, frees them and keeps the bias.
 */
export async function createLinear(ctx: GpuContext, spec: LinearSpec, weight: GpuTensor, bias: GpuTensor | undefined): Promise<LinearLayer> {
  if (spec.precision === 'float') return new FloatLinear(weight, bias);
  try {
    if (spec.weightOnly) return await WeightOnlyLinear.fromFloat(ctx, weight, bias, { precision: spec.precision, label: spec.label });
    return await ConvLinear.fromFloat(ctx, weight, bias, {
      precision: spec.precision,
      rotation: spec.rotation ?? DEFAULT_ROTATION,
      groupSize: spec.groupSize ?? DEFAULT_GROUP_SIZE,
      label: spec.label,
      adoptBias: true,
    });
  } catch (e) {
    bias?.buffer.destroy();
    throw e;
  } finally {
    weight.buffer.destroy();
  }
}

/**
 * Weights a slot can be (re)built from: float weights on the GPU (ownership passes to the layer) or packed ones.
 * A float source with `lowRank` holds the residual W − L1·L2 as its weight; the layer adds the branch back
 * (docs/quality-methods.md).
 */
export type LinearSource =
  | {
      readonly kind: 'float';
      readonly weight: GpuTensor;
      readonly bias: GpuTensor | undefined;
      readonly lowRank?: Pick<LowRankSplit, 'rank' | 'up' | 'down'>;
    }
  | { readonly kind: 'packed'; readonly packed: PackedLinear };

/** Supplies a named layer's weights for a spec (a checkpoint reader, or the packed-weight cache). */
export type WeightsProvider = (name: string, spec: LinearSpec) => Promise<LinearSource>;

/** A layer from either kind of source. Packed weights must match the spec's precision, rotation and group. */
export async function buildLinear(ctx: GpuContext, spec: LinearSpec, source: LinearSource): Promise<LinearLayer> {
  if (source.kind === 'float') {
    const layer = await createLinear(ctx, spec, source.weight, source.bias);
    if (!source.lowRank) return layer;
    return LowRankLinear.create(ctx, layer, source.lowRank, spec.label ?? 'linear').catch((e: unknown) => {
      layer.destroy();
      throw e;
    });
  }
  if (spec.weightOnly) {
    if (source.packed.quantization.format !== spec.precision) {
      throw new FluxError('bad-argument', `${spec.label ?? 'linear'}: packed weights are ${source.packed.quantization.format}, wanted ${spec.precision}`);
    }
    return WeightOnlyLinear.fromPacked(ctx, source.packed, { label: spec.label });
  }
  const q = source.packed.quantization;
  const want = { format: spec.precision, rotation: spec.rotation ?? DEFAULT_ROTATION, groupSize: spec.groupSize ?? DEFAULT_GROUP_SIZE };
  if (q.format !== want.format || q.rotation !== want.rotation || q.groupSize !== want.groupSize) {
    throw new FluxError(
      'bad-argument',
      `${spec.label ?? 'linear'}: packed weights are ${q.format} ${q.rotation} ${q.groupSize}, wanted ${want.format} ${want.rotation} ${want.groupSize}`,
    );
  }
  return ConvLinear.fromPacked(ctx, source.packed, { label: spec.label });
}

/**
 * One named, replaceable layer of a loaded model (e.g. `transformer_blocks.0.attn.to_q`). The model encodes
 * through the slot, so `rebuild` changes what the next forward runs; shapes never change, so a slot that is
 * one part of a fused group (q/k/v, linear1) keeps writing its own column range.
 */
export class LinearSlot implements LinearLayer {
  /** Undefined while released. */
  private current: LinearLayer | undefined;
  private currentSpec: LinearSpec;
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(
    readonly ctx: GpuContext,
    readonly name: string,
    layer: LinearLayer,
    spec: LinearSpec,
  ) {
    this.current = layer;
    this.currentSpec = { ...spec, label: spec.label ?? name };
    this.inFeatures = layer.inFeatures;
    this.outFeatures = layer.outFeatures;
  }

  /** Builds a slot's first layer from `source`. */
  static async build(ctx: GpuContext, name: string, spec: LinearSpec, source: LinearSource): Promise<LinearSlot> {
    const full = { ...spec, label: spec.label ?? name };
    return new LinearSlot(ctx, name, await buildLinear(ctx, full, source), full);
  }

  get layer(): LinearLayer {
    if (!this.current) throw new FluxError('bad-argument', `${this.name}: its weights were released; rebuild the slot before using it`);
    return this.current;
  }

  get spec(): LinearSpec {
    return this.currentSpec;
  }

  get precision(): LayerPrecision {
    return this.currentSpec.precision;
  }

  /** 0 while released. */
  get weightBytes(): number {
    return this.current?.weightBytes ?? 0;
  }

  /** True between release() and the next rebuild. */
  get released(): boolean {
    return this.current === undefined;
  }

  /** Frees the weights' GPU memory; the slot keeps its spec, and `rebuild(slot.spec, provider)` brings them back. */
  release(): void {
    this.current?.destroy();
    this.current = undefined;
  }

  /**
   * Replaces the layer by one built at `spec` (a precision alone keeps the rotation and group size) from the
   * provider's weights. The old layer is freed only once the new one is built, so a failure leaves the slot as
   * it was. Do not call while a recorded batch that uses the slot is still to be submitted.
   */
  async rebuild(spec: LayerPrecision | LinearSpec, provider: WeightsProvider): Promise<void> {
    const next: LinearSpec = typeof spec === 'string' ? { ...this.currentSpec, precision: spec } : { ...this.currentSpec, ...spec };
    const layer = await buildLinear(this.ctx, next, await provider(this.name, next));
    if (layer.inFeatures !== this.inFeatures || layer.outFeatures !== this.outFeatures) {
      const got = `[${layer.outFeatures}, ${layer.inFeatures}]`;
      layer.destroy();
      throw new FluxError('bad-shape', `${this.name}: rebuilt weights are ${got}, the slot holds [${this.outFeatures}, ${this.inFeatures}]`);
    }
    this.current?.destroy();
    this.current = layer;
    this.currentSpec = next;
  }

  /** The current layer's packed weights (for the packed file format and the cache); float layers have none. */
  async exportPacked(): Promise<PackedLinear> {
    const layer = this.layer;
    if (!(layer instanceof ConvLinear || layer instanceof WeightOnlyLinear)) throw new FluxError('bad-argument', `${this.name} is a ${this.precision} layer: nothing packed to export`);
    return layer.exportPacked();
  }

  encode(batch: CommandBatch, input: LinearInput, y: MatrixView): Promise<void> {
    return this.layer.encode(batch, input, y);
  }

  destroy(): void {
    this.release();
  }
}
