/** GPU widening of 16-bit float tensors (bf16, f16) to f32. */
import { FluxError } from '../errors.ts';
import type { CommandBatch } from '../gpu/batch.ts';
import { numel, type GpuTensor } from '../gpu/tensor.ts';
import { shaderConstant } from '../gpu/shaders.ts';
import { ceilDiv, packUniforms, pipelineFor } from './kernel.ts';

/** dst (f32) = src (bf16 or f16), element for element. */
export async function widenToF32(batch: CommandBatch, src: GpuTensor, dst: GpuTensor): Promise<void> {
  if (src.dtype !== 'bf16' && src.dtype !== 'f16') throw new FluxError('unsupported-dtype', `widenToF32: source dtype ${src.dtype}`);
  if (dst.dtype !== 'f32') throw new FluxError('bad-argument', `widenToF32: destination dtype ${dst.dtype}, expected f32`);
  const n = numel(src.shape);
  if (numel(dst.shape) !== n) throw new FluxError('bad-shape', `widenToF32: [${src.shape}] -> [${dst.shape}]`);
  const pipeline = await pipelineFor(batch.ctx, { name: 'convert', defines: { BF16: src.dtype === 'bf16' } });
  batch.dispatch(pipeline, [src, dst], packUniforms([n]), ceilDiv(ceilDiv(n, 2), shaderConstant('convert', 'WG')));
}
