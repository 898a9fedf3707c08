/**
 * ConvLinear: a ConvRot linear layer y = x·Wᵀ + b on the GPU (docs/convrot-method.md), INT4 (W4A4) or INT8 (W8A8).
 * It holds the rotated, quantized, packed weights with their per-channel scales, and the float bias. Forward
 * rotates and quantizes the input per token (convrot_quant), multiplies in integers and dequantizes in the GEMM
 * epilogue (gemm_int). Weights are quantized on the GPU from f32 or bf16, bit-identical to the CPU reference
 * (src/quant/conv-linear-ref.ts).
 *
 * Layers that read the same input (q/k/v) share one quantized activation:
 *   const qa = await q.quantizeInput(batch, x);
 *   for (const [layer, y] of [[q, yq], [k, yk], [v, yv]]) await layer.forwardQuantized(batch, qa, y);
 *   qa.release();
 *
 * As a LinearLayer (`encode`) it does this sharing through LinearInput. Packed weights can be read back
 * (`exportPacked`) and a layer rebuilt from them (`fromPacked`) without the float weights: docs/packed-format.md.
 */
import { FluxError } from '../errors.ts';
import { CommandBatch } from '../gpu/batch.ts';
import { createBuffer, readBuffer, uploadBuffer, type BufferPool } from '../gpu/buffers.ts';
import type { GpuContext } from '../gpu/device.ts';
import { byteSize, numel, type GpuTensor } from '../gpu/tensor.ts';
import {
  assertRowQuantization,
  intGemm,
  packedWordsPerRow,
  prefersDot4,
  quantizeRows,
  type PackedRows,
  type RowQuantization,
} from '../kernels/convrot.ts';
import { viewLayout, type MatrixView } from '../kernels/matrix-view.ts';
import type { LinearInput, LinearLayer } from './linear.ts';
import type { RotationKind } from '../quant/hadamard.ts';
import type { QuantFormatName } from '../quant/quantize.ts';

/** ConvRot's rotation: the regular Hadamard matrix on groups of 256 input channels. */
export const DEFAULT_ROTATION: RotationKind = 'regular';
export const DEFAULT_GROUP_SIZE = 256;
/** u32 words of a row's metadata: the scale and the sum of q. */
const META_WORDS = 2;

export interface ConvLinearOptions {
  readonly precision: QuantFormatName;
  /** Default 'regular' (ConvRot); 'sylvester' and 'none' are ablations. */
  readonly rotation?: RotationKind;
  /** Rotation group N0, default 256. */
  readonly groupSize?: number;
  /** Multiply with the dot4 built-ins; default `prefersDot4(ctx)`. */
  readonly dot4?: boolean;
  /** Names the layer's buffers in GPU errors. */
  readonly label?: string;
  /** A bias given as a GPU tensor becomes the layer's (destroyed with it); default it stays the caller's. */
  readonly adoptBias?: boolean;
}

/**
 * A quantized layer's weights on the CPU, as `exportPacked` returns them and `fromPacked` takes them
 * (layout: docs/packed-format.md).
 */
export interface PackedLinear {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly quantization: RowQuantization;
  /** u32 words per packed row (packedWordsPerRow(inFeatures, quantization)). */
  readonly wordsPerRow: number;
  /** [outFeatures, wordsPerRow] packed rotated weights. */
  readonly packed: Uint32Array;
  /** [outFeatures, 2]: f32 scale bits, i32 Σq bits per output channel. */
  readonly meta: Uint32Array;
  /** [outFeatures] or none. */
  readonly bias: Float32Array | undefined;
}

/**
 * GPU bytes of a layer's packed weights and row scales at `q`, before building it (what an INT4/INT8 choice
 * costs); the bias, the same at every precision, is not included.
 */
export function packedWeightBytes(inFeatures: number, outFeatures: number, q: RowQuantization): number {
  const { words, meta } = packedShapes(outFeatures, inFeatures, q);
  return (words + meta) * 4;
}

/** Packed rows plus metadata of `rows` rows of `inFeatures` values. */
function packedShapes(rows: number, inFeatures: number, q: RowQuantization): { words: number; meta: number; wordsPerRow: number } {
  const wordsPerRow = packedWordsPerRow(inFeatures, q);
  return { words: rows * wordsPerRow, meta: rows * META_WORDS, wordsPerRow };
}

/**
 * An input quantized for the layers that read it: per token, packed values and (scale, Σq). Its buffers come
 * from the context's pool; `release` returns them, and is safe as soon as the last dispatch that reads it is
 * recorded (work on one queue runs in order).
 */
export class QuantizedActivation implements PackedRows {
  private released = false;

  constructor(
    readonly packed: GpuTensor,
    readonly meta: GpuTensor,
    /** Tokens. */
    readonly rows: number,
    readonly inFeatures: number,
    readonly quantization: RowQuantization,
    private readonly pool: BufferPool,
  ) {}

  static async acquire(pool: BufferPool, rows: number, inFeatures: number, quantization: RowQuantization): Promise<QuantizedActivation> {
    const { words, meta, wordsPerRow } = packedShapes(rows, inFeatures, quantization);
    const packedBuffer = await pool.acquire(words * 4, 'quantized activation');
    const metaBuffer = await pool.acquire(meta * 4, 'quantized activation scales');
    return new QuantizedActivation(
      { buffer: packedBuffer, offset: 0, shape: [rows, wordsPerRow], dtype: 'u32' },
      { buffer: metaBuffer, offset: 0, shape: [rows, META_WORDS], dtype: 'u32' },
      rows,
      inFeatures,
      quantization,
      pool,
    );
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.pool.release(this.packed.buffer);
    this.pool.release(this.meta.buffer);
  }
}

export class ConvLinear implements LinearLayer {
  private destroyed = false;

  private constructor(
    readonly ctx: GpuContext,
    readonly inFeatures: number,
    readonly outFeatures: number,
    readonly quantization: RowQuantization,
    /** [outFeatures, wordsPerRow] packed weights and [outFeatures, 2] (scale, Σq). */
    readonly weights: PackedRows,
    /** [outFeatures] f32 */
    readonly bias: GpuTensor | undefined,
    readonly dot4: boolean,
    readonly label: string,
    /** Buffers this layer created and frees in destroy(). */
    private readonly owned: readonly GPUBuffer[],
  ) {}

  /**
   * Quantizes float weights w [outFeatures, inFeatures] (f32, or bf16 as checkpoints store them) on the GPU:
   * rotate each row, per-channel absmax scale, round, pack. `w` is only read: free it once this resolves. The
   * bias is used in place if it is already on the GPU ([outFeatures] f32, not owned), else uploaded.
   */
  static async fromFloat(ctx: GpuContext, w: GpuTensor, b: GpuTensor | Float32Array | undefined, opts: ConvLinearOptions): Promise<ConvLinear> {
    const label = opts.label ?? 'conv linear';
    if (w.shape.length !== 2 || (w.dtype !== 'f32' && w.dtype !== 'bf16')) {
      throw new FluxError('bad-shape', `${label}: weights must be [out, in] f32 or bf16, got [${w.shape}] ${w.dtype}`);
    }
    const [outFeatures, inFeatures] = w.shape as [number, number];
    if (outFeatures === 0 || inFeatures === 0) throw new FluxError('bad-shape', `${label}: empty weights [${w.shape}]`);
    const quantization: RowQuantization = {
      format: opts.precision,
      rotation: opts.rotation ?? DEFAULT_ROTATION,
      groupSize: opts.groupSize ?? DEFAULT_GROUP_SIZE,
    };
    assertRowQuantization(quantization);
    if (b !== undefined && numel(b instanceof Float32Array ? [b.length] : b.shape) !== outFeatures) {
      throw new FluxError('bad-shape', `${label}: bias has ${b instanceof Float32Array ? b.length : numel(b.shape)} values, expected ${outFeatures}`);
    }
    const dot4 = opts.dot4 ?? prefersDot4(ctx);
    if (dot4 && !ctx.caps.dot4) throw new FluxError('bad-argument', `${label}: this device has no packed_4x8_integer_dot_product`);

    const { words, meta, wordsPerRow } = packedShapes(outFeatures, inFeatures, quantization);
    const owned: GPUBuffer[] = [];
    try {
      const packedBuffer = await createBuffer(ctx, words * 4, `${label} packed weights`);
      owned.push(packedBuffer);
      const metaBuffer = await createBuffer(ctx, meta * 4, `${label} weight scales`);
      owned.push(metaBuffer);
      let bias: GpuTensor | undefined;
      if (b instanceof Float32Array) {
        const biasBuffer = await uploadBuffer(ctx, b, `${label} bias`);
        owned.push(biasBuffer);
        bias = { buffer: biasBuffer, offset: 0, shape: [outFeatures], dtype: 'f32' };
      } else {
        bias = b;
        if (b && opts.adoptBias) owned.push(b.buffer);
      }
      const weights: PackedRows = {
        packed: { buffer: packedBuffer, offset: 0, shape: [outFeatures, wordsPerRow], dtype: 'u32' },
        meta: { buffer: metaBuffer, offset: 0, shape: [outFeatures, META_WORDS], dtype: 'u32' },
      };
      const batch = new CommandBatch(ctx, `${label}: quantize weights`);
      await quantizeRows(batch, { ...quantization, role: 'weight', src: w, out: weights });
      await batch.submit();
      return new ConvLinear(ctx, inFeatures, outFeatures, quantization, weights, bias, dot4, label, owned);
    } catch (e) {
      for (const buffer of owned) buffer.destroy();
      throw e;
    }
  }

  /** A layer from weights quantized before (exportPacked, a packed file); uploads them as they are. */
  static async fromPacked(ctx: GpuContext, data: PackedLinear, opts: Pick<ConvLinearOptions, 'dot4' | 'label'> = {}): Promise<ConvLinear> {
    const label = opts.label ?? 'conv linear';
    const { inFeatures, outFeatures, quantization } = data;
    assertRowQuantization(quantization);
    const { words, meta, wordsPerRow } = packedShapes(outFeatures, inFeatures, quantization);
    const expect = (what: string, got: number, want: number): void => {
      if (got !== want) throw new FluxError('bad-shape', `${label}: packed ${what} has ${got} values, expected ${want}`);
    };
    expect('row length', data.wordsPerRow, wordsPerRow);
    expect('weights', data.packed.length, words);
    expect('scales', data.meta.length, meta);
    if (data.bias) expect('bias', data.bias.length, outFeatures);
    const dot4 = opts.dot4 ?? prefersDot4(ctx);
    if (dot4 && !ctx.caps.dot4) throw new FluxError('bad-argument', `${label}: this device has no packed_4x8_integer_dot_product`);
    const owned: GPUBuffer[] = [];
    try {
      const upload = async (values: Uint32Array | Float32Array, what: string): Promise<GPUBuffer> => {
        const buffer = await uploadBuffer(ctx, values, `${label} ${what}`);
        owned.push(buffer);
        return buffer;
      };
      const weights: PackedRows = {
        packed: { buffer: await upload(data.packed, 'packed weights'), offset: 0, shape: [outFeatures, wordsPerRow], dtype: 'u32' },
        meta: { buffer: await upload(data.meta, 'weight scales'), offset: 0, shape: [outFeatures, META_WORDS], dtype: 'u32' },
      };
      const bias: GpuTensor | undefined = data.bias && { buffer: await upload(data.bias, 'bias'), offset: 0, shape: [outFeatures], dtype: 'f32' };
      return new ConvLinear(ctx, inFeatures, outFeatures, quantization, weights, bias, dot4, label, owned);
    } catch (e) {
      for (const buffer of owned) buffer.destroy();
      throw e;
    }
  }

  /** The packed weights, scales and bias read back to the CPU (waits for submitted work). */
  async exportPacked(): Promise<PackedLinear> {
    this.assertUsable();
    const read = async (t: GpuTensor): Promise<ArrayBuffer> => readBuffer(this.ctx, t.buffer, t.offset, byteSize(t));
    return {
      inFeatures: this.inFeatures,
      outFeatures: this.outFeatures,
      quantization: { ...this.quantization },
      wordsPerRow: this.wordsPerRow,
      packed: new Uint32Array(await read(this.weights.packed)),
      meta: new Uint32Array(await read(this.weights.meta)),
      bias: this.bias && new Float32Array(await read(this.bias)),
    };
  }

  get precision(): QuantFormatName {
    return this.quantization.format;
  }

  get weightBytes(): number {
    return this.byteSize;
  }

  /** LinearLayer: y = layer(x), sharing x's quantized copy with the input's other ConvRot readers. */
  async encode(batch: CommandBatch, input: LinearInput, y: MatrixView): Promise<void> {
    await this.forwardQuantized(batch, await sharedActivation(batch, this, input), y);
  }

  /** u32 words per packed weight row (the padded K in packed words, rounded up to whole vec4s). */
  get wordsPerRow(): number {
    return this.weights.packed.shape[1]!;
  }

  /** Bytes of GPU memory the layer's weights, scales and bias take. */
  get byteSize(): number {
    return byteSize(this.weights.packed) + byteSize(this.weights.meta) + (this.bias ? byteSize(this.bias) : 0);
  }

  /**
   * Records the rotation and quantization of x (tokens × inFeatures f32, a view of a wider matrix is fine) into
   * `into`, or into buffers from the context's pool. Share the result between layers with the same input
   * features and quantization (q/k/v); release it after the last forwardQuantized that reads it.
   */
  async quantizeInput(batch: CommandBatch, x: MatrixView, into?: QuantizedActivation): Promise<QuantizedActivation> {
    this.assertUsable();
    const { rows, cols } = viewLayout(x, `${this.label}: x`);
    if (cols !== this.inFeatures) throw new FluxError('bad-shape', `${this.label}: x has ${cols} columns, expected ${this.inFeatures}`);
    const qa = into ?? (await QuantizedActivation.acquire(this.ctx.pool, rows, cols, this.quantization));
    this.assertCompatible(qa, rows);
    await quantizeRows(batch, { ...this.quantization, role: 'activation', src: x, out: qa });
    return qa;
  }

  /** Records y = dequant(qa · Wᵀ) + b for y tokens × outFeatures (a view of a wider matrix is fine). */
  async forwardQuantized(batch: CommandBatch, qa: QuantizedActivation, y: MatrixView): Promise<void> {
    this.assertUsable();
    this.assertCompatible(qa, viewLayout(y, `${this.label}: y`).rows);
    await intGemm(batch, {
      format: this.quantization.format,
      x: qa,
      w: this.weights,
      bias: this.bias,
      y,
      dot4: this.dot4,
    });
  }

  /** Records the whole layer for an input no other layer shares: quantize x, then forwardQuantized. */
  async forward(batch: CommandBatch, x: MatrixView, y: MatrixView): Promise<void> {
    const qa = await this.quantizeInput(batch, x);
    try {
      await this.forwardQuantized(batch, qa, y);
    } finally {
      qa.release();
    }
  }

  /** Frees the buffers the layer created; a bias passed in as a GPU tensor stays with its owner. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const buffer of this.owned) buffer.destroy();
  }

  private assertCompatible(qa: QuantizedActivation, rows: number): void {
    const q = qa.quantization;
    const same = q.format === this.quantization.format && q.rotation === this.quantization.rotation && q.groupSize === this.quantization.groupSize;
    if (!same || qa.inFeatures !== this.inFeatures) {
      throw new FluxError(
        'bad-argument',
        `${this.label}: the activation was quantized for ${qa.inFeatures} features (${q.format}, ${q.rotation} ${q.groupSize}), this layer needs ${this.inFeatures} (${this.quantization.format}, ${this.quantization.rotation} ${this.quantization.groupSize})`,
      );
    }
    if (qa.rows !== rows) throw new FluxError('bad-shape', `${this.label}: the activation has ${qa.rows} tokens, the output ${rows}`);
  }

  private assertUsable(): void {
    if (this.destroyed) throw new FluxError('bad-argument', `${this.label}: used after destroy()`);
  }
}

/** The activation of `input` quantized for `layer`, made once per input and quantization; the input releases it. */
function sharedActivation(batch: CommandBatch, layer: ConvLinear, input: LinearInput): Promise<QuantizedActivation> {
  const q = layer.quantization;
  return input.once(`convrot ${q.format} ${q.rotation} ${q.groupSize}`, () => layer.quantizeInput(batch, input.x));
}
