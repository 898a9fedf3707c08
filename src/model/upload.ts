/**
 * Uploading checkpoint tensors: the file's bytes go to the GPU as they are and 8/16-bit floats are widened
 * there (kernels/convert.ts), so the CPU never holds a widened copy of a weight. bf16 weights may stay 16-bit
 * (the f32 GEMM and the ConvRot quantizer read bf16 in-shader).
 */
import { FluxError } from '../errors.ts';
import { CommandBatch } from '../gpu/batch.ts';
import { createBuffer, uploadBuffer } from '../gpu/buffers.ts';
import type { GpuContext } from '../gpu/device.ts';
import type { GpuDtype, GpuTensor } from '../gpu/tensor.ts';
import { widenToF32 } from '../kernels/convert.ts';
import type { SourceFloatDtype } from '../weights/dtypes.ts';

export const GPU_DTYPE_OF: Readonly<Record<SourceFloatDtype, GpuDtype>> = { F32: 'f32', F16: 'f16', BF16: 'bf16', F8_E4M3: 'f8e4m3', F8_E5M2: 'f8e5m2' };

export interface UploadOptions {
  /** Keep bf16 as bf16 (for weights of layers that read it in-shader); default widen to f32 too. */
  readonly keepBf16?: boolean;
}

/** A tensor's little-endian bytes as an f32 (or, with keepBf16, bf16) GPU tensor, widened on the GPU. */
export async function uploadTensor(
  ctx: GpuContext,
  t: { readonly dtype: SourceFloatDtype; readonly shape: readonly number[]; readonly bytes: Uint8Array },
  label: string,
  options: UploadOptions = {},
): Promise<GpuTensor> {
  const dtype = GPU_DTYPE_OF[t.dtype];
  if (dtype === undefined) throw new FluxError('unsupported-dtype', `${label}: dtype ${t.dtype}`);
  const raw: GpuTensor = { buffer: await uploadBuffer(ctx, t.bytes, label), offset: 0, shape: t.shape, dtype };
  if (dtype === 'f32' || (dtype === 'bf16' && options.keepBf16)) return raw;
  try {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const wide: GpuTensor = { buffer: await createBuffer(ctx, n * 4, label), offset: 0, shape: t.shape, dtype: 'f32' };
    try {
      const batch = new CommandBatch(ctx, `widen ${label}`);
      await widenToF32(batch, raw, wide);
      await batch.submit();
    } catch (e) {
      wide.buffer.destroy();
      throw e;
    }
    return wide;
  } finally {
    raw.buffer.destroy();
  }
}
