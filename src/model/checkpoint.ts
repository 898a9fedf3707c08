/**
 * A FLUX transformer checkpoint opened for the engine: its layout, config and weight plan, and canonical
 * tensors assembled on demand from row slices of the file's tensors.
 */
import { FluxError } from '../errors.ts';
import { DTYPE_BYTES, toFloat32 } from '../weights/dtypes.ts';
import type { TensorReader } from '../weights/safetensors.ts';
import { inferConfig, type FluxConfig } from './config.ts';
import { buildWeightPlan, detectLayout, sliceByteRange, type PlannedParam, type SourceDtype, type WeightPlan } from './layout.ts';

export interface CanonicalTensor {
  readonly name: string;
  readonly dtype: SourceDtype;
  readonly shape: readonly number[];
  /** Little-endian, row-major bytes; may be a view of a file tensor's buffer (never modify it). */
  readonly bytes: Uint8Array<ArrayBuffer>;
}

export class FluxCheckpoint {
  /**
   * The most recently read file tensor. Canonical tensors are requested in plan order, and the ones cut
   * from the same fused file tensor (BFL qkv, linear1, the final modulation) are adjacent in that order,
   * so one entry is enough for every file tensor to be read exactly once.
   */
  private lastSource: { name: string; data: Uint8Array<ArrayBuffer> } | undefined;

  private constructor(
    readonly reader: TensorReader,
    readonly config: FluxConfig,
    readonly plan: WeightPlan,
  ) {}

  /**
   * Plans the checkpoint. Without a config (e.g. from a diffusers `config.json`, see configFromDiffusers)
   * it is inferred from tensor shapes (dev vs schnell from the presence of the guidance embedder).
   */
  static open(reader: TensorReader, config?: FluxConfig): FluxCheckpoint {
    const tensors = reader.names().map((name) => {
      const { dtype, shape } = reader.info(name);
      return { name, dtype, shape };
    });
    config ??= inferConfig(tensors, detectLayout(tensors.map((t) => t.name)));
    return new FluxCheckpoint(reader, config, buildWeightPlan(tensors, config));
  }

  param(name: string): PlannedParam {
    const param = this.plan.params.get(name);
    if (!param) throw new FluxError('bad-argument', `no parameter "${name}" in this model`);
    return param;
  }

  /**
   * The canonical tensor's bytes. A tensor that is one row range of a file tensor (all but the diffusers final
   * modulation) is a view of the file tensor's bytes, not a copy, so reading the parts of a fused tensor
   * (linear1 → q, k, v, mlp) holds the file tensor once.
   */
  async read(name: string): Promise<CanonicalTensor> {
    const param = this.param(name);
    const dtype = param.slices[0]!.dtype;
    if (param.slices.some((s) => s.dtype !== dtype)) {
      throw new FluxError('unsupported-dtype', `parameter "${name}" is assembled from tensors of different dtypes`);
    }
    if (param.slices.length === 1) {
      const slice = param.slices[0]!;
      const { byteOffset, byteLength } = sliceByteRange(slice);
      return { name, dtype, shape: param.shape, bytes: (await this.sourceBytes(slice.sourceName)).subarray(byteOffset, byteOffset + byteLength) };
    }
    const total = param.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
    const bytes = new Uint8Array(total);
    let at = 0;
    for (const slice of param.slices) {
      const source = await this.sourceBytes(slice.sourceName);
      const { byteOffset, byteLength } = sliceByteRange(slice);
      bytes.set(source.subarray(byteOffset, byteOffset + byteLength), at);
      at += byteLength;
    }
    return { name, dtype, shape: param.shape, bytes };
  }

  async readFloat32(name: string): Promise<Float32Array<ArrayBuffer>> {
    const t = await this.read(name);
    const values = toFloat32(t.bytes, t.dtype);
    // F32 decodes to a view; callers own what they get, so it must not alias the file tensor.
    return values.buffer === t.bytes.buffer ? values.slice() : values;
  }

  async close(): Promise<void> {
    this.lastSource = undefined;
    await this.reader.close();
  }

  private async sourceBytes(name: string): Promise<Uint8Array<ArrayBuffer>> {
    if (this.lastSource?.name !== name) {
      // Dropped before the next read, so two file tensors are never held here at once.
      this.lastSource = undefined;
      this.lastSource = { name, data: (await this.reader.readTensor(name)).data };
    }
    return this.lastSource.data;
  }
}
