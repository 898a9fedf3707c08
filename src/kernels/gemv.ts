/** Weight-only quantized GEMV: float activations times INT4/INT8 per-channel weights, dequantized in the dot product. */
import { FluxError } from '../errors.ts';
import type { CommandBatch } from '../gpu/batch.ts';
import { numel, type GpuTensor } from '../gpu/tensor.ts';
import { quantFormat, type QuantFormatName } from '../format/quant-format.ts';
import { viewLayout, type MatrixView } from './matrix-view.ts';
import { packedWordsPerRow, type PackedRows } from './convrot.ts';
import { packUniforms, pipelineFor } from './kernel.ts';

export interface WeightOnlyGemvArgs {
  readonly format: QuantFormatName;
  /** Group size the rows were packed with (rotation 'none': it only sets the padding of K). */
  readonly groupSize: number;
  /** rows × K f32. */
  readonly x: MatrixView;
  /** [N, wordsPerRow] packed weights and [N, 2] (scale, Σq). */
  readonly w: PackedRows;
  readonly bias?: GpuTensor;
  /** rows × N f32 (a column range of a wider tensor is fine). */
  readonly y: MatrixView;
}

/** Records y = x · dequant(W)ᵀ + b (gemv_weight_only). */
export async function weightOnlyGemv(batch: CommandBatch, a: WeightOnlyGemvArgs): Promise<void> {
  const x = viewLayout(a.x, 'weight-only gemv x');
  const y = viewLayout(a.y, 'weight-only gemv y');
  const [n, wordsPerRow] = a.w.packed.shape as [number, number];
  const k = x.cols;
  const expectedWords = packedWordsPerRow(k, { format: a.format, rotation: 'none', groupSize: a.groupSize });
  if (wordsPerRow !== expectedWords) {
    throw new FluxError('bad-shape', `weight-only gemv: x has ${k} columns, which pack to ${expectedWords} words per row, the weights have ${wordsPerRow}`);
  }
  if (y.rows !== x.rows || y.cols !== n) throw new FluxError('bad-shape', `weight-only gemv: y is ${y.rows} × ${y.cols}, expected ${x.rows} × ${n}`);
  if (a.bias && numel(a.bias.shape) !== n) throw new FluxError('bad-shape', `weight-only gemv: bias [${a.bias.shape}] is not [${n}]`);
  if (x.rows === 0) return;
  const pipeline = await pipelineFor(batch.ctx, { name: 'gemv_weight_only', defines: { BITS: quantFormat(a.format).bits } });
  // Without a bias the scales stand in for the binding; has_bias = 0 keeps the shader from reading it.
  const bias = a.bias ?? a.w.meta;
  const uniforms = packUniforms([x.rows, k, n, wordsPerRow, a.bias ? 1 : 0, x.offset, x.stride, y.offset, y.stride]);
  batch.dispatch(pipeline, [a.x.tensor, a.w.packed, a.w.meta, bias, a.y.tensor], uniforms, n);
}
