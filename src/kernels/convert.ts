/** GPU widening of 8- and 16-bit float tensors (bf16, f16, FP8 e4m3 / e5m2) to f32. */
import { FluxError } from '../errors.ts';
import type { CommandBatch } from '../gpu/batch.ts';
import { numel, type GpuDtype, type GpuTensor } from '../gpu/tensor.ts';
import { shaderConstant } from '../gpu/shaders.ts';
import { ceilDiv, packUniforms, pipelineFor } from './kernel.ts';

export type NarrowFloatDtype = 'bf16' | 'f16' | 'f8e4m3' | 'f8e5m2';

/** Per dtype: values per u32 word and the convert.wgsl constant naming it (its DTYPE override). */
const WIDEN: Readonly<Record<NarrowFloatDtype, { readonly valuesPerWord: number; readonly constant: string }>> = {
  bf16: { valuesPerWord: 2, constant: 'BF16' },
  f16: { valuesPerWord: 2, constant: 'F16' },
  f8e4m3: { valuesPerWord: 4, constant: 'F8E4M3' },
  f8e5m2: { valuesPerWord: 4, constant: 'F8E5M2' },
};

export function isNarrowFloat(dtype: GpuDtype): dtype is NarrowFloatDtype {
  return Object.hasOwn(WIDEN, dtype);
}

/** dst (f32) = src (bf16, f16, f8e4m3 or f8e5m2), element for element. */
export async function widenToF32(batch: CommandBatch, src: GpuTensor, dst: GpuTensor): Promise<void> {
  if (!isNarrowFloat(src.dtype)) throw new FluxError('unsupported-dtype', `widenToF32: source dtype ${src.dtype}`);
  if (dst.dtype !== 'f32') throw new FluxError('bad-argument', `widenToF32: destination dtype ${dst.dtype}, expected f32`);
  const n = numel(src.shape);
  if (numel(dst.shape) !== n) throw new FluxError('bad-shape', `widenToF32: [${src.shape}] -> [${dst.shape}]`);
  if (src.offset % 4 !== 0) throw new FluxError('bad-argument', `widenToF32: source offset ${src.offset} is not word-aligned`);
  const { valuesPerWord, constant } = WIDEN[src.dtype];
  const pipeline = await pipelineFor(batch.ctx, { name: 'convert', constants: { DTYPE: shaderConstant('convert', constant), VALUES_PER_WORD: valuesPerWord } });
  batch.dispatch(pipeline, [src, dst], packUniforms([n]), ceilDiv(ceilDiv(n, valuesPerWord), shaderConstant('convert', 'WG')));
}
