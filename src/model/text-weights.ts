/**
 * Loading text-encoder weights: each tensor read once from the checkpoint (BF16, F16 or F32; one file or
 * shards), its shape checked against config.json, linears built at the precision the plan gives them, norm
 * parameters uploaded as f32, and token embeddings kept on the CPU (the lookup runs there).
 */
import { FluxError } from '../errors.ts';
import { createBuffer, uploadBuffer } from '../gpu/buffers.ts';
import type { GpuContext } from '../gpu/device.ts';
import type { GpuTensor } from '../gpu/tensor.ts';
import { createLinear } from '../nn/factory.ts';
import type { LinearLayer } from '../nn/linear.ts';
import { DTYPE_BYTES, isSourceFloatDtype, toFloat32, type Dtype, type SourceFloatDtype } from '../weights/dtypes.ts';
import type { TensorReader } from '../weights/safetensors.ts';
import type { LayerPrecision, QuantPlan } from './precision.ts';
import { checkTensor } from './text-config.ts';
import { uploadTensor } from './upload.ts';
import type { LoadProgress } from './transformer.ts';

export interface TextModelLoadOptions {
  /** Precision of every linear by name (no `.weight`); absent names stay float. */
  readonly quant: QuantPlan;
  readonly onProgress?: (p: LoadProgress) => void;
  readonly signal?: AbortSignal;
}

/** A token embedding table [rows, cols] held on the CPU in its file dtype; rows are widened to f32 on lookup. */
export class EmbeddingTable {
  private readonly rowBytes: number;

  constructor(
    readonly name: string,
    readonly rows: number,
    readonly cols: number,
    private readonly dtype: Dtype,
    private readonly bytes: Uint8Array,
  ) {
    this.rowBytes = cols * DTYPE_BYTES[dtype];
  }

  /** [ids.length, cols] f32; an id outside [0, rows) is a FluxError naming its position. */
  gather(ids: Int32Array, what: string): Float32Array<ArrayBuffer> {
    const out = new Float32Array(ids.length * this.cols);
    ids.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0 || id >= this.rows) {
        throw new FluxError('bad-argument', `${what}: id ${id} at position ${t} is outside the vocabulary (0..${this.rows - 1})`);
      }
      out.set(toFloat32(this.bytes.subarray(id * this.rowBytes, (id + 1) * this.rowBytes), this.dtype), t * this.cols);
    });
    return out;
  }
}

/** Reads tensors of one checkpoint and turns them into GPU layers; destroyAll() frees what it built. */
export class TextWeightLoader {
  private readonly layers: LinearLayer[] = [];
  private readonly tensors: GpuTensor[] = [];
  private done = 0;

  constructor(
    private readonly ctx: GpuContext,
    private readonly reader: TensorReader,
    private readonly options: TextModelLoadOptions,
    /** Tensors the model will read, for progress. */
    private readonly total: number,
  ) {}

  /** Bytes of GPU memory held by everything built so far. */
  get weightBytes(): number {
    return this.layers.reduce((n, l) => n + l.weightBytes, 0) + this.tensors.reduce((n, t) => n + t.buffer.size, 0);
  }

  /** A [length] (or [rows, cols] as `shape`) float parameter as an f32 GPU tensor. */
  async vector(name: string, shape: readonly number[]): Promise<GpuTensor> {
    const t = await this.readChecked(name, shape);
    const tensor = await uploadTensor(this.ctx, { dtype: t.dtype, shape, bytes: t.data }, name);
    this.tensors.push(tensor);
    return tensor;
  }

  /** The linear `name` ([outFeatures, inFeatures] weight, optional bias) at its planned precision. */
  async linear(name: string, outFeatures: number, inFeatures: number, hasBias: boolean): Promise<LinearLayer> {
    const weightName = `${name}.weight`;
    const t = await this.readChecked(weightName, [outFeatures, inFeatures]);
    const bias = hasBias ? await this.readChecked(`${name}.bias`, [outFeatures]) : undefined;
    // bf16 stays 16-bit on the GPU (the GEMM and the quantizer widen it in-shader); other dtypes are widened there.
    const weight = await uploadTensor(this.ctx, { dtype: t.dtype, shape: [outFeatures, inFeatures], bytes: t.data }, weightName, { keepBf16: true });
    const biasTensor = bias && (await uploadTensor(this.ctx, { dtype: bias.dtype, shape: [outFeatures], bytes: bias.data }, `${name}.bias`));
    const precision: LayerPrecision = this.options.quant.layers.get(name) ?? 'float';
    const { rotation, groupSize } = this.options.quant;
    const layer = await createLinear(this.ctx, { precision, rotation, groupSize, label: name }, weight, biasTensor);
    this.layers.push(layer);
    return layer;
  }

  /** A token embedding table [rows, cols], kept on the CPU. */
  async embedding(name: string, rows: number, cols: number): Promise<EmbeddingTable> {
    const t = await this.readChecked(name, [rows, cols]);
    return new EmbeddingTable(name, rows, cols, t.dtype, t.data);
  }

  /** The layers and tensors built, handed to the model that owns them from now on. */
  take(): { layers: LinearLayer[]; tensors: GpuTensor[] } {
    return { layers: [...this.layers], tensors: [...this.tensors] };
  }

  destroyAll(): void {
    for (const l of this.layers) l.destroy();
    for (const t of this.tensors) t.buffer.destroy();
  }

  private async readChecked(name: string, shape: readonly number[]): Promise<{ readonly dtype: SourceFloatDtype; readonly data: Uint8Array<ArrayBuffer> }> {
    this.options.signal?.throwIfAborted();
    checkTensor(this.reader, name, shape);
    const dtype = this.reader.info(name).dtype;
    if (!isSourceFloatDtype(dtype)) throw new FluxError('unsupported-dtype', `${this.reader.name}: "${name}" is ${dtype}; weights must be F32, F16, BF16, F8_E4M3 or F8_E5M2`);
    const t = await this.reader.readTensor(name);
    this.done++;
    this.options.onProgress?.({ done: this.done, total: this.total, layer: name });
    return { dtype, data: t.data };
  }
}

/** Destroys every layer and tensor (a model's destroy()). */
export function destroyWeights(w: { readonly layers: readonly LinearLayer[]; readonly tensors: readonly GpuTensor[] }): void {
  for (const l of w.layers) l.destroy();
  for (const t of w.tensors) t.buffer.destroy();
}

/** The activation buffers of one encode call, created together and destroyed together. */
export class Activations {
  private readonly buffers: GPUBuffer[] = [];

  constructor(private readonly ctx: GpuContext) {}

  /** A [rows, cols] f32 buffer, uploaded from `data` when given. */
  async f32(label: string, rows: number, cols: number, data?: Float32Array): Promise<GpuTensor> {
    const buffer = data ? await uploadBuffer(this.ctx, data, label) : await createBuffer(this.ctx, rows * cols * 4, label);
    this.buffers.push(buffer);
    return { buffer, offset: 0, shape: [rows, cols], dtype: 'f32' };
  }

  async u32(label: string, data: Uint32Array): Promise<GpuTensor> {
    const buffer = await uploadBuffer(this.ctx, data, label);
    this.buffers.push(buffer);
    return { buffer, offset: 0, shape: [data.length], dtype: 'u32' };
  }

  destroy(): void {
    for (const b of this.buffers) b.destroy();
    this.buffers.length = 0;
  }
}
