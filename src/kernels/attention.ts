/**
 * Self-attention (shaders/attention.wgsl), flash style: FLUX's joint attention (no mask, scale 1/√headDim), CLIP's
 * causal attention, and T5's unscaled attention with a relative-position bias.
 */
import { FluxError } from '../errors.ts';
import type { CommandBatch } from '../gpu/batch.ts';
import { numel, type GpuTensor } from '../gpu/tensor.ts';
import { viewLayout, type MatrixView } from './matrix-view.ts';
import { shaderConstant, shaderConstants } from '../gpu/shaders.ts';
import { ceilDiv, packUniforms, pipelineFor } from './kernel.ts';

/** Workgroup storage we allow ourselves: 16 KiB is the WebGPU default limit and leaves room for occupancy. */
const STORAGE_BUDGET = 16 * 1024;
const F32_BYTES = 4;
/** Every column offset and row stride is read as vec4. */
const VEC4 = 4;

export interface AttentionArgs {
  /**
   * [rows, rowStride] f32: q in columns [0, hidden), k in [hidden, 2·hidden), v in [2·hidden, 3·hidden),
   * hidden = heads·headDim, each head a contiguous group of headDim columns. rowStride a multiple of 4.
   */
  readonly qkv: GpuTensor;
  readonly heads: number;
  /** A multiple of 4, and of 32 above 32 (FLUX: 128; 64 in small test models). */
  readonly headDim: number;
  /**
   * rows × hidden output, head-major (head h in columns [h·headDim, (h+1)·headDim)); may be a column range of
   * a wider tensor (the single block writes the first hidden columns of concat(attention, mlp)). Its column
   * offset and row stride must be multiples of 4; not in the qkv buffer.
   */
  readonly out: MatrixView;
  /** Multiplies q·k; default 1/√headDim (T5 uses 1). */
  readonly scale?: number;
  /** Mask keys after each query (CLIP's text model). */
  readonly causal?: boolean;
  /**
   * An additive score bias that depends only on the key-query offset: [heads, 2·rows − 1] f32, element
   * (h, j − i + rows − 1) is added to head h's score of query i and key j (T5's relative position bias).
   */
  readonly offsetBias?: GpuTensor;
}

/** Keys per K/V tile: K and V tiles (keys × headDim each) plus the partial scores (keys × WG of the shader) must fit. */
export function attentionKeysPerTile(headDim: number, maxWorkgroupStorage: number): number {
  const budget = Math.min(STORAGE_BUDGET, maxWorkgroupStorage);
  return Math.floor(budget / (F32_BYTES * (2 * headDim + shaderConstant('attention', 'WG'))));
}

/** out = softmax(scale·q·kᵀ + bias [masked])·v for every head over all rows (text and image rows alike). */
export async function attention(batch: CommandBatch, a: AttentionArgs): Promise<void> {
  const { heads, headDim } = a;
  if (a.qkv.shape.length !== 2 || a.qkv.dtype !== 'f32') {
    throw new FluxError('bad-shape', `attention: qkv [${a.qkv.shape}] ${a.qkv.dtype} is not an f32 matrix`);
  }
  const [rows, rowStride] = a.qkv.shape as [number, number];
  const d4 = headDim / VEC4;
  const { WG, MAX_V4_PER_THREAD } = shaderConstants('attention') as Record<'WG' | 'MAX_V4_PER_THREAD', number>;
  if (!Number.isInteger(heads) || heads < 1 || !Number.isInteger(d4) || d4 < 1 || (d4 > MAX_V4_PER_THREAD && d4 % MAX_V4_PER_THREAD !== 0)) {
    throw new FluxError('bad-argument', `attention: ${heads} heads × ${headDim} dims (head dim must be a multiple of 4, and of 32 above 32)`);
  }
  const hidden = heads * headDim;
  if (rowStride < 3 * hidden || rowStride % VEC4 !== 0) {
    throw new FluxError('bad-shape', `attention: qkv rows of ${rowStride} must hold q, k and v (${3 * hidden}) and be a multiple of 4`);
  }
  const out = viewLayout(a.out, 'attention out');
  if (out.rows !== rows || out.cols !== hidden) throw new FluxError('bad-shape', `attention: out is ${out.rows} × ${out.cols}, expected ${rows} × ${hidden}`);
  if (out.offset % VEC4 !== 0 || out.stride % VEC4 !== 0) {
    throw new FluxError('bad-shape', `attention: out column offset and row stride (${out.offset}, ${out.stride}) must be multiples of 4`);
  }
  if (a.out.tensor.buffer === a.qkv.buffer) throw new FluxError('bad-argument', 'attention: out must not share the qkv buffer');
  const keysPerTile = attentionKeysPerTile(headDim, batch.ctx.limits.maxComputeWorkgroupStorageSize);
  if (keysPerTile < 1) throw new FluxError('limit-exceeded', `attention: head dim ${headDim} does not fit in workgroup storage`);
  const biasStride = 2 * rows - 1;
  if (a.offsetBias && (a.offsetBias.dtype !== 'f32' || numel(a.offsetBias.shape) !== heads * biasStride)) {
    throw new FluxError('bad-shape', `attention: offset bias [${a.offsetBias.shape}] ${a.offsetBias.dtype} is not f32 [${heads}, ${biasStride}]`);
  }
  const scale = a.scale ?? 1 / Math.sqrt(headDim);
  if (!Number.isFinite(scale)) throw new FluxError('bad-argument', `attention: scale ${scale}`);
  if (rows === 0) return;

  const pipeline = await pipelineFor(batch.ctx, { name: 'attention', defines: { HEAD_DIM: headDim, KEYS_PER_TILE: keysPerTile } });
  const rowsPerWorkgroup = WG / (d4 / Math.min(d4, MAX_V4_PER_THREAD));
  const uniforms = packUniforms([
    rows,
    rowStride / VEC4,
    hidden / VEC4,
    (2 * hidden) / VEC4,
    out.offset / VEC4,
    out.stride / VEC4,
    { f32: Math.LOG2E * scale },
    a.causal ? 1 : 0,
    a.offsetBias ? 1 : 0,
    biasStride,
  ]);
  // Without a bias, qkv stands in for the bias binding (both read-only); has_bias = 0 keeps the shader off it.
  batch.dispatch(pipeline, [a.qkv, a.out.tensor, a.offsetBias ?? a.qkv], uniforms, [ceilDiv(rows, rowsPerWorkgroup), heads]);
}
