/** A tensor on the GPU is a small handle: buffer, byte offset, shape, dtype. Kernels never allocate. */

/**
 * Element types of GPU tensors. `bf16` is storage only (read as pairs packed in u32 and widened in-shader:
 * WebGPU has no bf16 arithmetic); `u32` also holds packed integer data (int4 nibbles, int8 quads).
 */
export type GpuDtype = 'f32' | 'f16' | 'bf16' | 'f8e4m3' | 'f8e5m2' | 'u32' | 'i32';

export const GPU_DTYPE_BYTES: Readonly<Record<GpuDtype, number>> = { f32: 4, f16: 2, bf16: 2, f8e4m3: 1, f8e5m2: 1, u32: 4, i32: 4 };

export interface GpuTensor {
  readonly buffer: GPUBuffer;
  /** Byte offset into `buffer`. */
  readonly offset: number;
  readonly shape: readonly number[];
  readonly dtype: GpuDtype;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function byteSize(t: Pick<GpuTensor, 'shape' | 'dtype'>): number {
  return numel(t.shape) * GPU_DTYPE_BYTES[t.dtype];
}
