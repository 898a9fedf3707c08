/** GPU widening of 8- and 16-bit float tensors (bf16, f16, FP8 e4m3 / e5m2) to f32. */
import { FluxError } from '../errors.ts';
import type { CommandBatch } from '../gpu/batch.ts';
import { numel, type GpuDtype, type GpuTensor } from '../gpu/tensor.ts';
import { ceilDiv, packUniforms, pipelineFor } from './kernel.ts';

const WORKGROUP = 256;

export type NarrowFloatDtype = 'bf16' | 'f16' | 'f8e4m3' | 'f8e5m2';

/** Per dtype: values per u32 word and the WGSL `widen` that decodes one word (helpers in convert.wgsl). */
const WIDEN: Readonly<Record<NarrowFloatDtype, { readonly valuesPerWord: number; readonly wgsl: string }>> = {
  bf16: { valuesPerWord: 2, wgsl: 'fn widen(w: u32) -> vec4f { return vec4f(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u), 0.0, 0.0); }' },
  // Decoded bit by bit rather than with unpack2x16float, which may flush f16 subnormals on some GPUs.
  f16: { valuesPerWord: 2, wgsl: 'fn widen(w: u32) -> vec4f { return vec4f(f16_bits_to_f32(w & 0xffffu), f16_bits_to_f32(w >> 16u), 0.0, 0.0); }' },
  f8e4m3: {
    valuesPerWord: 4,
    wgsl: 'fn widen(w: u32) -> vec4f { return vec4f(e4m3_bits_to_f32(w & 0xffu), e4m3_bits_to_f32((w >> 8u) & 0xffu), e4m3_bits_to_f32((w >> 16u) & 0xffu), e4m3_bits_to_f32(w >> 24u)); }',
  },
  // e5m2 is the top byte of an f16.
  f8e5m2: {
    valuesPerWord: 4,
    wgsl: 'fn widen(w: u32) -> vec4f { return vec4f(f16_bits_to_f32((w & 0xffu) << 8u), f16_bits_to_f32(w & 0xff00u), f16_bits_to_f32((w >> 8u) & 0xff00u), f16_bits_to_f32((w >> 16u) & 0xff00u)); }',
  },
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
  const { valuesPerWord, wgsl } = WIDEN[src.dtype];
  const pipeline = await pipelineFor(batch.ctx, { name: 'convert', defines: { WIDEN: wgsl, VALUES_PER_WORD: String(valuesPerWord) } });
  batch.dispatch(pipeline, [src, dst], packUniforms([n]), ceilDiv(ceilDiv(n, valuesPerWord), WORKGROUP));
}
