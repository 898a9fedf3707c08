/**
 * A linear layer of the model as the blocks see it: y = x·Wᵀ + b on matrix views of activation buffers,
 * whatever its precision. Float layers run the f32 GEMM (bf16 or f32 weights); quantized layers run
 * ConvRot (rotate, quantize, integer GEMM, dequantize).
 */
import type { CommandBatch } from '../gpu/batch.ts';
import type { GpuTensor } from '../gpu/tensor.ts';
import type { MatrixView } from '../kernels/matrix-view.ts';
import { floatGemm } from '../kernels/gemm.ts';

/** Something a layer derives from an input once and shares with the input's other readers. */
export interface SharedValue {
  /** Gives its GPU memory back; called once every reader of the input has been recorded. */
  release(): void;
}

/**
 * One input view read by several linears (q, k, v, the MLP projection). Quantized linears of the same
 * format and rotation share one quantized copy of it: the rotation and quantizer are the same, so computing
 * it once is exact. Whoever creates the input releases it after recording all its readers (work on one
 * queue runs in order, so the memory can be reused by later dispatches of the same batch).
 */
export class LinearInput {
  private readonly shared = new Map<string, SharedValue>();

  constructor(readonly x: MatrixView) {}

  /** The value `make` produces for `key`, made once per input. */
  async once<T extends SharedValue>(key: string, make: () => Promise<T>): Promise<T> {
    let value = this.shared.get(key);
    if (!value) {
      value = await make();
      this.shared.set(key, value);
    }
    return value as T;
  }

  release(): void {
    for (const value of this.shared.values()) value.release();
    this.shared.clear();
  }
}

/** Records every reader of x (`encode` receives the shared input), then releases what they derived from it. */
export async function withInput(x: MatrixView, encode: (input: LinearInput) => Promise<void>): Promise<void> {
  const input = new LinearInput(x);
  try {
    await encode(input);
  } finally {
    input.release();
  }
}

/** Records y = layer(x) for a layer that is x's only reader. */
export function encodeLinear(batch: CommandBatch, layer: LinearLayer, x: MatrixView, y: MatrixView): Promise<void> {
  return withInput(x, (input) => layer.encode(batch, input, y));
}

/** How a linear layer computes: the f32 GEMM on float weights, or ConvRot at INT8 (W8A8) or INT4 (W4A4). */
export type LayerPrecision = 'float' | 'int8' | 'int4';

export interface LinearLayer {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly precision: LayerPrecision;
  /** Bytes of GPU memory the weights hold. */
  readonly weightBytes: number;
  /** Records y = x·Wᵀ + b; y may be a column range of a wider output. */
  encode(batch: CommandBatch, input: LinearInput, y: MatrixView): Promise<void>;
  destroy(): void;
}

/** y = x·Wᵀ + b with the f32 GEMM; W stays as given (f32, or bf16 widened in the shader). Owns both tensors. */
export class FloatLinear implements LinearLayer {
  readonly precision = 'float';

  constructor(
    /** [out, in], f32 or bf16. */
    private readonly weight: GpuTensor,
    /** [out] f32. */
    private readonly bias: GpuTensor | undefined,
  ) {}

  get inFeatures(): number {
    return this.weight.shape[1]!;
  }

  get outFeatures(): number {
    return this.weight.shape[0]!;
  }

  get weightBytes(): number {
    return this.weight.buffer.size + (this.bias?.buffer.size ?? 0);
  }

  encode(batch: CommandBatch, input: LinearInput, y: MatrixView): Promise<void> {
    return floatGemm(batch, { x: input.x, w: this.weight, bias: this.bias, y });
  }

  destroy(): void {
    this.weight.buffer.destroy();
    this.bias?.buffer.destroy();
  }
}
