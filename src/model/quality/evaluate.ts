/**
 * Measuring a quantization method on the CPU: the reference forward with every planned layer replaced by
 * its fake-quantized ConvRot form (the golden references' math, src/quant/fake-quant-layer.ts), compared with
 * the float forward; and the weight bytes the GPU engine would hold for the same plan.
 */
import { packedWeightBytes } from '../../nn/conv-linear.ts';
import { WEIGHT_ONLY_QUANTIZATION } from '../../nn/weight-only-linear.ts';
import { FakeQuantLinear } from '../../quant/fake-quant-layer.ts';
import { quantizeWeightOnlyRef, weightOnlyLinearRef } from '../../quant/weight-only-ref.ts';
import type { FluxConfig } from '../config.ts';
import type { FluxInputs } from '../inputs.ts';
import { canonicalLinears, canonicalNormScales } from '../layout.ts';
import { paramGetter, type CanonicalParams } from '../params.ts';
import { modulationLinearNames, type QuantPlan } from '../precision.ts';
import { floatLinear, fluxForward, type LinearHook } from '../reference/flux-ref.ts';

/** Bytes of a bf16 value: the low-rank branch is stored so. */
const BRANCH_VALUE_BYTES = 2;
const F32_BYTES = 4;

/**
 * The CPU model of a plan: float layers as they are, the others fake-quantized (prepared once, on first use):
 * block linears as ConvRot, modulation linears weight-only.
 */
export class FakeQuantModel {
  private readonly prepared = new Map<string, { apply(x: Float32Array, rows: number): Float32Array }>();
  private readonly float: LinearHook;
  private readonly modulation: ReadonlySet<string>;

  constructor(
    readonly config: FluxConfig,
    readonly params: CanonicalParams,
    readonly plan: QuantPlan,
  ) {
    this.float = floatLinear(paramGetter(params));
    this.modulation = new Set(modulationLinearNames(config));
  }

  readonly hook: LinearHook = (name, x, rows) => {
    const precision = this.plan.layers.get(name) ?? 'float';
    if (precision === 'float') return this.float(name, x, rows);
    let layer = this.prepared.get(name);
    if (!layer) {
      const w = this.params.get(`${name}.weight`)!;
      const b = this.params.get(`${name}.bias`)!;
      if (this.modulation.has(name)) {
        const q = quantizeWeightOnlyRef(w, b.length, w.length / b.length, precision);
        layer = { apply: (input, n) => weightOnlyLinearRef(q, input, n, b) };
      } else layer = FakeQuantLinear.prepare(w, b, b.length, w.length / b.length, {
        rotation: this.plan.rotation,
        groupSize: this.plan.groupSize,
        format: precision,
        rank: this.plan.ranks?.get(name) ?? 0,
      });
      this.prepared.set(name, layer);
    }
    return layer.apply(x, rows);
  };

  forward(inputs: FluxInputs): Float32Array {
    return fluxForward(this.config, paramGetter(this.params), inputs, this.hook).out;
  }
}

/** How far an output is from the float one. */
export interface OutputError {
  /** ‖y − y_float‖₂ / ‖y_float‖₂ (the golden README's measure for quantized outputs). */
  readonly relativeL2: number;
  /** y·y_float / (‖y‖ ‖y_float‖). */
  readonly cosine: number;
}

/** Over several calls: errors of the concatenated outputs (so every call counts by its size). */
export function outputError(outputs: readonly Float32Array[], references: readonly Float32Array[]): OutputError {
  let diff = 0;
  let ref = 0;
  let own = 0;
  let dot = 0;
  for (const [c, y] of outputs.entries()) {
    const r = references[c]!;
    for (let i = 0; i < y.length; i++) {
      diff += (y[i]! - r[i]!) ** 2;
      ref += r[i]! ** 2;
      own += y[i]! ** 2;
      dot += y[i]! * r[i]!;
    }
  }
  return { relativeL2: Math.sqrt(diff / ref), cosine: dot / Math.sqrt(own * ref) };
}

export interface WeightBytes {
  /** The linears inside the blocks: what a precision map changes. */
  readonly blockLinears: number;
  /** The modulation linears (weight-only when quantized). */
  readonly modulationLinears: number;
  /** Everything the GPU holds for the transformer. */
  readonly total: number;
}

/**
 * Weight bytes the GPU engine holds under `plan`: float weights at the checkpoint's width (`floatValueBytes`,
 * 2 for bf16) plus an f32 bias; quantized ones as packed rows (padded as the kernels pad them), 8 bytes of
 * row metadata, the f32 bias and a bf16 low-rank branch of rank·(in + out) values.
 */
export function planWeightBytes(config: FluxConfig, plan: QuantPlan, floatValueBytes: number): WeightBytes {
  let blockLinears = 0;
  let modulationLinears = 0;
  let total = canonicalNormScales(config).length * config.headDim * F32_BYTES;
  for (const l of canonicalLinears(config)) {
    const precision = plan.layers.get(l.name) ?? 'float';
    let bytes = l.outFeatures * F32_BYTES;
    if (precision === 'float') bytes += l.outFeatures * l.inFeatures * floatValueBytes;
    else {
      const rows = l.role === 'modulation' ? WEIGHT_ONLY_QUANTIZATION : { rotation: plan.rotation, groupSize: plan.groupSize };
      bytes += packedWeightBytes(l.inFeatures, l.outFeatures, { format: precision, ...rows });
      bytes += (plan.ranks?.get(l.name) ?? 0) * (l.inFeatures + l.outFeatures) * BRANCH_VALUE_BYTES;
    }
    if (l.role === 'block') blockLinears += bytes;
    if (l.role === 'modulation') modulationLinears += bytes;
    total += bytes;
  }
  return { blockLinears, modulationLinears, total };
}
