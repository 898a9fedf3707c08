/**
 * Normalisations: the transformer's LayerNorm fused with the AdaLN modulation and the text encoders' affine
 * LayerNorm and RMSNorm (shaders/norm.wgsl), and the per-head QK RMSNorm fused with RoPE (shaders/qk_norm_rope.wgsl).
 */
import { FluxError } from '../errors.ts';
import type { CommandBatch } from '../gpu/batch.ts';
import { numel, type GpuTensor } from '../gpu/tensor.ts';
import { assertSameSize, assertVectorFits, viewLayout, type MatrixView } from './matrix-view.ts';
import { shaderConstant } from '../gpu/shaders.ts';
import { ceilDiv, packUniforms, pipelineFor } from './kernel.ts';


export interface LayerNormModulateArgs {
  /** Input rows × cols. */
  readonly x: MatrixView;
  /** Output, same rows × cols, in another buffer. */
  readonly y: MatrixView;
  /** Holds the shift and scale vectors [cols] at element offsets (a modulation linear's output). */
  readonly modulation: GpuTensor;
  readonly shiftOffset: number;
  readonly scaleOffset: number;
}

/** y = (1 + scale) ⊙ LayerNorm(x) + shift per row; LayerNorm without affine, eps 1e-6, biased variance. */
export async function layerNormModulate(batch: CommandBatch, a: LayerNormModulateArgs): Promise<void> {
  const x = viewLayout(a.x, 'layer_norm_modulate x');
  const y = viewLayout(a.y, 'layer_norm_modulate y');
  assertSameSize(x, y, 'layer_norm_modulate');
  assertVectorFits(a.modulation, a.shiftOffset, x.cols, 'layer_norm_modulate shift');
  assertVectorFits(a.modulation, a.scaleOffset, x.cols, 'layer_norm_modulate scale');
  // WebGPU forbids binding one buffer both read-only and writable in a dispatch.
  if (a.y.tensor.buffer === a.x.tensor.buffer || a.y.tensor.buffer === a.modulation.buffer) {
    throw new FluxError('bad-argument', 'layer_norm_modulate: y shares a buffer with x or the modulation');
  }
  if (x.rows === 0) return;
  const pipeline = await pipelineFor(batch.ctx, { name: 'norm', entryPoint: 'layer_norm_modulate' });
  const uniforms = packUniforms([x.rows, x.cols, x.offset, x.stride, y.offset, y.stride, a.shiftOffset, a.scaleOffset]);
  batch.dispatch(pipeline, [a.x.tensor, a.modulation, a.y.tensor], uniforms, x.rows);
}

export interface RowNormArgs {
  /** Input rows × cols. */
  readonly x: MatrixView;
  /** Output, same rows × cols, in another buffer. */
  readonly y: MatrixView;
  /** [cols] f32. */
  readonly weight: GpuTensor;
  readonly eps: number;
}

/** y = LayerNorm(x)·weight + bias per row (biased variance): CLIP's layer norms. */
export function layerNorm(batch: CommandBatch, a: RowNormArgs & { readonly bias: GpuTensor }): Promise<void> {
  return rowNorm(batch, 'layer_norm', a, a.bias);
}

/** y = x / √(mean(x²) + eps)·weight per row: T5's layer norms. */
export function rmsNorm(batch: CommandBatch, a: RowNormArgs): Promise<void> {
  return rowNorm(batch, 'rms_norm', a, undefined);
}

async function rowNorm(batch: CommandBatch, entryPoint: 'layer_norm' | 'rms_norm', a: RowNormArgs, bias: GpuTensor | undefined): Promise<void> {
  const x = viewLayout(a.x, `${entryPoint} x`);
  const y = viewLayout(a.y, `${entryPoint} y`);
  assertSameSize(x, y, entryPoint);
  assertVectorFits(a.weight, 0, x.cols, `${entryPoint} weight`);
  if (bias) assertVectorFits(bias, 0, x.cols, `${entryPoint} bias`);
  if (!(a.eps >= 0) || !Number.isFinite(a.eps)) throw new FluxError('bad-argument', `${entryPoint}: eps ${a.eps}`);
  // WebGPU forbids binding one buffer both read-only and writable in a dispatch.
  if ([a.x.tensor, a.weight, bias].some((t) => t?.buffer === a.y.tensor.buffer)) {
    throw new FluxError('bad-argument', `${entryPoint}: y shares a buffer with x or the parameters`);
  }
  if (x.rows === 0) return;
  const pipeline = await pipelineFor(batch.ctx, { name: 'norm', entryPoint });
  const uniforms = packUniforms([x.rows, x.cols, x.offset, x.stride, y.offset, y.stride, { f32: a.eps }]);
  const bindings = bias ? [a.x.tensor, a.weight, bias, a.y.tensor] : [a.x.tensor, a.weight, a.y.tensor];
  batch.dispatch(pipeline, bindings, uniforms, x.rows);
}

/** The learned RMSNorm scales [headDim] of one stream's queries and keys. */
export interface QkNormScales {
  readonly q: GpuTensor;
  readonly k: GpuTensor;
}

export interface QkNormRopeArgs {
  /**
   * [rows, rowStride] f32, updated in place: q in columns [0, hidden), k in [hidden, 2·hidden), hidden =
   * heads·headDim, each head a contiguous group of headDim columns. Other columns are left alone.
   */
  readonly qkv: GpuTensor;
  readonly heads: number;
  readonly headDim: number;
  /** Scales for rows < textRows. */
  readonly text: QkNormScales;
  /** Scales for rows >= textRows. Single blocks pass the same scales as `text`. */
  readonly image: QkNormScales;
  readonly textRows: number;
  /** RoPE tables [rows, headDim / 2]: cos and sin of each row's angle for pair (2i, 2i+1). */
  readonly cos: GpuTensor;
  readonly sin: GpuTensor;
}

/** Per head vector of q and k: RMSNorm (eps 1e-6) times the learned scale, then interleaved-pair RoPE. */
export async function qkNormRope(batch: CommandBatch, a: QkNormRopeArgs): Promise<void> {
  const { heads, headDim } = a;
  if (a.qkv.shape.length !== 2 || a.qkv.dtype !== 'f32') {
    throw new FluxError('bad-shape', `qk_norm_rope: qkv [${a.qkv.shape}] ${a.qkv.dtype} is not an f32 matrix`);
  }
  const [rows, rowStride] = a.qkv.shape as [number, number];
  if (!Number.isInteger(heads) || heads < 1 || !Number.isInteger(headDim) || headDim < 2 || headDim % 2 !== 0) {
    throw new FluxError('bad-argument', `qk_norm_rope: ${heads} heads × ${headDim} dims (head dim must be even)`);
  }
  const hidden = heads * headDim;
  if (rowStride < 2 * hidden || rowStride % 2 !== 0) {
    throw new FluxError('bad-shape', `qk_norm_rope: qkv rows of ${rowStride} must hold q and k (${2 * hidden}) and be even (read as pairs)`);
  }
  if (!Number.isInteger(a.textRows) || a.textRows < 0) throw new FluxError('bad-argument', `qk_norm_rope: textRows = ${a.textRows}`);
  for (const [name, t] of [
    ['text q scale', a.text.q],
    ['text k scale', a.text.k],
    ['image q scale', a.image.q],
    ['image k scale', a.image.k],
  ] as const) {
    if (numel(t.shape) !== headDim || t.dtype !== 'f32') throw new FluxError('bad-shape', `qk_norm_rope: ${name} [${t.shape}] ${t.dtype} is not f32 [${headDim}]`);
  }
  for (const [name, t] of [['cos', a.cos], ['sin', a.sin]] as const) {
    if (numel(t.shape) !== (rows * headDim) / 2 || t.dtype !== 'f32') {
      throw new FluxError('bad-shape', `qk_norm_rope: ${name} table [${t.shape}] ${t.dtype} is not f32 [${rows}, ${headDim / 2}]`);
    }
  }
  if (rows === 0) return;
  const pipeline = await pipelineFor(batch.ctx, { name: 'qk_norm_rope' });
  // The shader reads q, k and the scales as (2i, 2i+1) pairs: strides and offsets are counted in pairs.
  const uniforms = packUniforms([rows, rowStride / 2, heads, headDim / 2, hidden / 2, Math.min(a.textRows, rows)]);
  const bindings = [a.qkv, a.text.q, a.text.k, a.image.q, a.image.k, a.cos, a.sin];
  batch.dispatch(pipeline, bindings, uniforms, ceilDiv(rows * 2 * heads, shaderConstant('qk_norm_rope', 'WG')));
}
