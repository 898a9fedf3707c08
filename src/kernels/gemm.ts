/** Float GEMM: y = x · Wᵀ + b, the float path of a linear layer. */
import { FluxError } from '../errors.ts';
import type { CommandBatch } from '../gpu/batch.ts';
import { numel, type GpuTensor } from '../gpu/tensor.ts';
import { ceilDiv, packUniforms, pipelineFor } from './kernel.ts';

/** Output tile of one workgroup (must match BM/BN in shaders/gemm_f32.wgsl). */
const TILE_M = 64;
const TILE_N = 64;

/** How a weight format is read: whole-declaration swaps for the shader's W_TYPE and load_w. */
const WEIGHT_FORMATS = {
  f32: {
    W_TYPE: 'f32',
    LOAD_W: `fn load_w(row: u32, col: u32) -> f32 {
  if (row < p.n && col < p.k) { return w[row * p.k + col]; }
  return 0.0;
}`,
  },
  // bf16 weights stay 16-bit on the GPU (two per u32, element 2i in the low half): half the memory of f32.
  bf16: {
    W_TYPE: 'u32',
    LOAD_W: `fn load_w(row: u32, col: u32) -> f32 {
  if (row < p.n && col < p.k) {
    let e = row * p.k + col;
    return bitcast<f32>(((w[e >> 1u] >> ((e & 1u) * 16u)) & 0xffffu) << 16u);
  }
  return 0.0;
}`,
  },
} as const;

export type GemmWeightFormat = keyof typeof WEIGHT_FORMATS;

export interface LinearArgs {
  /** [M, K] f32 */
  readonly x: GpuTensor;
  /** [N, K], dtype f32 or bf16. */
  readonly w: GpuTensor;
  /** [N] f32 */
  readonly bias?: GpuTensor;
  /** [M, N] f32 */
  readonly y: GpuTensor;
}

export async function linearF32(batch: CommandBatch, a: LinearArgs): Promise<void> {
  const [m, k] = a.x.shape as [number, number];
  const [n, kw] = a.w.shape as [number, number];
  if (a.x.shape.length !== 2 || a.w.shape.length !== 2 || k !== kw) {
    throw new FluxError('bad-shape', `linear: x [${a.x.shape}] and w [${a.w.shape}] do not agree on K`);
  }
  if (numel(a.y.shape) !== m * n) throw new FluxError('bad-shape', `linear: y [${a.y.shape}] is not [${m}, ${n}]`);
  if (a.bias && numel(a.bias.shape) !== n) throw new FluxError('bad-shape', `linear: bias [${a.bias.shape}] is not [${n}]`);
  if (a.w.dtype !== 'f32' && a.w.dtype !== 'bf16') throw new FluxError('unsupported-dtype', `linear: weights of dtype ${a.w.dtype}`);
  const format: GemmWeightFormat = a.w.dtype;
  const pipeline = await pipelineFor(batch.ctx, { name: 'gemm_f32', defines: WEIGHT_FORMATS[format] });
  // Without a bias the weight buffer stands in for the binding; has_bias = 0 keeps the shader from reading it.
  const bias = a.bias ?? a.w;
  batch.dispatch(pipeline, [a.x, a.w, bias, a.y], packUniforms([m, k, n, a.bias ? 1 : 0]), [ceilDiv(n, TILE_N), ceilDiv(m, TILE_M)]);
}
