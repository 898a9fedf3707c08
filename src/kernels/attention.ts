/** Joint scaled-dot-product attention (shaders/attention.wgsl): flash style, no mask, scale 1/√headDim. */
import { FluxError } from '../errors.ts';
import type { CommandBatch } from '../gpu/batch.ts';
import type { GpuTensor } from '../gpu/tensor.ts';
import { blockLayout, type Block } from './block.ts';
import { ceilDiv, packUniforms, pipelineFor } from './kernel.ts';

/** Invocations per workgroup (WG in the shader). */
const WORKGROUP = 128;
/** Most query rows' vec4 columns one invocation holds (V4_PER_THREAD in the shader). */
const MAX_VEC4_PER_THREAD = 8;
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
  readonly out: Block;
}

/** Keys per K/V tile: K and V tiles (keys × headDim each) plus the partial scores (keys × WORKGROUP) must fit. */
export function attentionKeysPerTile(headDim: number, maxWorkgroupStorage: number): number {
  const budget = Math.min(STORAGE_BUDGET, maxWorkgroupStorage);
  return Math.floor(budget / (F32_BYTES * (2 * headDim + WORKGROUP)));
}

/** out = softmax(q·kᵀ/√headDim)·v for every head over all rows (text and image rows alike). */
export async function attention(batch: CommandBatch, a: AttentionArgs): Promise<void> {
  const { heads, headDim } = a;
  if (a.qkv.shape.length !== 2 || a.qkv.dtype !== 'f32') {
    throw new FluxError('bad-shape', `attention: qkv [${a.qkv.shape}] ${a.qkv.dtype} is not an f32 matrix`);
  }
  const [rows, rowStride] = a.qkv.shape as [number, number];
  const d4 = headDim / VEC4;
  if (!Number.isInteger(heads) || heads < 1 || !Number.isInteger(d4) || d4 < 1 || (d4 > MAX_VEC4_PER_THREAD && d4 % MAX_VEC4_PER_THREAD !== 0)) {
    throw new FluxError('bad-argument', `attention: ${heads} heads × ${headDim} dims (head dim must be a multiple of 4, and of 32 above 32)`);
  }
  const hidden = heads * headDim;
  if (rowStride < 3 * hidden || rowStride % VEC4 !== 0) {
    throw new FluxError('bad-shape', `attention: qkv rows of ${rowStride} must hold q, k and v (${3 * hidden}) and be a multiple of 4`);
  }
  const out = blockLayout(a.out, 'attention out');
  if (out.rows !== rows || out.cols !== hidden) throw new FluxError('bad-shape', `attention: out is ${out.rows} × ${out.cols}, expected ${rows} × ${hidden}`);
  if (out.offset % VEC4 !== 0 || out.stride % VEC4 !== 0) {
    throw new FluxError('bad-shape', `attention: out column offset and row stride (${out.offset}, ${out.stride}) must be multiples of 4`);
  }
  if (a.out.tensor.buffer === a.qkv.buffer) throw new FluxError('bad-argument', 'attention: out must not share the qkv buffer');
  const keysPerTile = attentionKeysPerTile(headDim, batch.ctx.limits.maxComputeWorkgroupStorageSize);
  if (keysPerTile < 1) throw new FluxError('limit-exceeded', `attention: head dim ${headDim} does not fit in workgroup storage`);
  if (rows === 0) return;

  const pipeline = await pipelineFor(batch.ctx, { name: 'attention', defines: { HEAD_DIM: headDim, KEYS_PER_TILE: keysPerTile } });
  const rowsPerWorkgroup = WORKGROUP / (d4 / Math.min(d4, MAX_VEC4_PER_THREAD));
  const uniforms = packUniforms([
    rows,
    rowStride / VEC4,
    hidden / VEC4,
    (2 * hidden) / VEC4,
    out.offset / VEC4,
    out.stride / VEC4,
    { f32: Math.LOG2E / Math.sqrt(headDim) },
  ]);
  batch.dispatch(pipeline, [a.qkv, a.out.tensor], uniforms, [ceilDiv(rows, rowsPerWorkgroup), heads]);
}
