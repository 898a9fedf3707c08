/** GPU widening of 16-bit float tensors (bf16, f16) to f32. */
import { FluxError } from '../errors.ts';
import type { CommandBatch } from '../gpu/batch.ts';
import { numel, type GpuTensor } from '../gpu/tensor.ts';
import { ceilDiv, packUniforms, pipelineFor } from './kernel.ts';

const WORKGROUP = 256;

const WIDEN: Readonly<Record<'bf16' | 'f16', string>> = {
  bf16: 'fn widen(w: u32) -> vec2f { return vec2f(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u)); }',
  // Decoded bit by bit rather than with unpack2x16float, which may flush f16 subnormals on some GPUs.
  f16: `fn f16_bits_to_f32(h: u32) -> f32 {
  let sign = (h & 0x8000u) << 16u;
  let exponent = (h >> 10u) & 0x1fu;
  let mantissa = h & 0x3ffu;
  if (exponent == 0u) {
    let magnitude = f32(mantissa) * 5.9604644775390625e-8; // mantissa * 2^-24, exact
    return select(magnitude, -magnitude, sign != 0u);
  }
  if (exponent == 31u) { return bitcast<f32>(sign | 0x7f800000u | (mantissa << 13u)); }
  return bitcast<f32>(sign | ((exponent + 112u) << 23u) | (mantissa << 13u));
}
fn widen(w: u32) -> vec2f { return vec2f(f16_bits_to_f32(w & 0xffffu), f16_bits_to_f32(w >> 16u)); }`,
};

/** dst (f32) = src (bf16 or f16), element for element. */
export async function widenToF32(batch: CommandBatch, src: GpuTensor, dst: GpuTensor): Promise<void> {
  if (src.dtype !== 'bf16' && src.dtype !== 'f16') throw new FluxError('unsupported-dtype', `widenToF32: source dtype ${src.dtype}`);
  if (dst.dtype !== 'f32') throw new FluxError('bad-argument', `widenToF32: destination dtype ${dst.dtype}, expected f32`);
  const n = numel(src.shape);
  if (numel(dst.shape) !== n) throw new FluxError('bad-shape', `widenToF32: [${src.shape}] -> [${dst.shape}]`);
  const pipeline = await pipelineFor(batch.ctx, { name: 'convert', defines: { WIDEN: WIDEN[src.dtype] } });
  batch.dispatch(pipeline, [src, dst], packUniforms([n]), ceilDiv(ceilDiv(n, 2), WORKGROUP));
}
