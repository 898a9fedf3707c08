/** Float GEMM: y = x · Wᵀ + b (or y += x · Wᵀ + b), the float path of a linear layer. */
import { FluxError } from '../errors.ts';
import type { CommandBatch } from '../gpu/batch.ts';
import { numel, type GpuTensor } from '../gpu/tensor.ts';
import { viewLayout, type MatrixView } from './matrix-view.ts';
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

export interface FloatGemmArgs {
  /** M rows × K columns of f32 (a view of a wider matrix is fine). */
  readonly x: MatrixView;
  /** [N, K], dtype f32 or bf16. */
  readonly w: GpuTensor;
  /** [N] f32 */
  readonly bias?: GpuTensor;
  /** M rows × N columns of f32; may be a column range of a wider matrix (a q/k/v slice of a fused output). */
  readonly y: MatrixView;
  /** Add the product to what y holds instead of overwriting it (y += x · Wᵀ + b). */
  readonly accumulate?: boolean;
}

/** Records y = x · Wᵀ + b (or y += …) in f32 arithmetic; W may be f32 or bf16 (widened as it is loaded). */
export async function floatGemm(batch: CommandBatch, a: FloatGemmArgs): Promise<void> {
  const x = viewLayout(a.x, 'linear x');
  const y = viewLayout(a.y, 'linear y');
  const [n, k] = a.w.shape as [number, number];
  if (a.w.shape.length !== 2 || x.cols !== k) throw new FluxError('bad-shape', `linear: x has ${x.cols} columns, w [${a.w.shape}] expects ${k}`);
  if (y.rows !== x.rows || y.cols !== n) throw new FluxError('bad-shape', `linear: y is ${y.rows} × ${y.cols}, expected ${x.rows} × ${n}`);
  if (a.bias && numel(a.bias.shape) !== n) throw new FluxError('bad-shape', `linear: bias [${a.bias.shape}] is not [${n}]`);
  if (a.w.dtype !== 'f32' && a.w.dtype !== 'bf16') throw new FluxError('unsupported-dtype', `linear: weights of dtype ${a.w.dtype}`);
  if (x.rows === 0) return;
  const pipeline = await pipelineFor(batch.ctx, { name: 'gemm_f32', defines: WEIGHT_FORMATS[a.w.dtype] });
  // Without a bias the weight buffer stands in for the binding; has_bias = 0 keeps the shader from reading it.
  const bias = a.bias ?? a.w;
  const uniforms = packUniforms([x.rows, k, n, a.bias ? 1 : 0, x.offset, x.stride, y.offset, y.stride, a.accumulate ? 1 : 0]);
  batch.dispatch(pipeline, [a.x.tensor, a.w, bias, a.y.tensor], uniforms, [ceilDiv(n, TILE_N), ceilDiv(x.rows, TILE_M)]);
}
