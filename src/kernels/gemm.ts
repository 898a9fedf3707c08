/** Float GEMM: y = x · Wᵀ + b (or y += x · Wᵀ + b), the float path of a linear layer. */
import { FluxError } from '../errors.ts';
import type { CommandBatch } from '../gpu/batch.ts';
import { numel, type GpuTensor } from '../gpu/tensor.ts';
import { viewLayout, type MatrixView } from './matrix-view.ts';
import { shaderConstants } from '../gpu/shaders.ts';
import { ceilDiv, packUniforms, pipelineFor } from './kernel.ts';

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
  const pipeline = await pipelineFor(batch.ctx, { name: 'gemm_f32', constants: { W_BF16: a.w.dtype === 'bf16' ? 1 : 0 } });
  // Without a bias the weight buffer stands in for the binding; has_bias = 0 keeps the shader from reading it.
  const bias = a.bias ?? a.w;
  const c = shaderConstants('gemm_f32');
  const uniforms = packUniforms([x.rows, k, n, a.bias ? 1 : 0, x.offset, x.stride, y.offset, y.stride, a.accumulate ? 1 : 0]);
  batch.dispatch(pipeline, [a.x.tensor, a.w, bias, a.y.tensor], uniforms, [ceilDiv(n, c.TN! * c.WG_X!), ceilDiv(x.rows, c.TM! * c.WG_Y!)]);
}
