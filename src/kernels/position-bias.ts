/** T5's relative position bias per head and key-query offset (shaders/position_bias.wgsl). */
import { FluxError } from '../errors.ts';
import type { CommandBatch } from '../gpu/batch.ts';
import { numel, type GpuTensor } from '../gpu/tensor.ts';
import { shaderConstant } from '../gpu/shaders.ts';
import { ceilDiv, packUniforms, pipelineFor } from './kernel.ts';


export interface PositionBiasArgs {
  /** [2·rows − 1] u32: the bucket of each offset j − i = −(rows − 1) … rows − 1. */
  readonly buckets: GpuTensor;
  /** [numBuckets, heads] f32 (relative_attention_bias.weight). */
  readonly table: GpuTensor;
  readonly heads: number;
  /** [heads, 2·rows − 1] f32: attention's offset bias. */
  readonly out: GpuTensor;
}

/** out[h, o] = table[buckets[o], h]. Bucket ids must be below the table's rows (the shader does not check). */
export async function positionBias(batch: CommandBatch, a: PositionBiasArgs): Promise<void> {
  const width = numel(a.buckets.shape);
  const { heads } = a;
  if (a.buckets.dtype !== 'u32' || a.table.dtype !== 'f32' || a.out.dtype !== 'f32') {
    throw new FluxError('unsupported-dtype', `position_bias: buckets ${a.buckets.dtype}, table ${a.table.dtype}, out ${a.out.dtype} (expected u32, f32, f32)`);
  }
  if (!Number.isInteger(heads) || heads < 1 || numel(a.table.shape) % heads !== 0) {
    throw new FluxError('bad-shape', `position_bias: table [${a.table.shape}] does not have ${heads} heads`);
  }
  if (numel(a.out.shape) !== heads * width) throw new FluxError('bad-shape', `position_bias: out [${a.out.shape}] is not [${heads}, ${width}]`);
  if (width === 0) return;
  const pipeline = await pipelineFor(batch.ctx, { name: 'position_bias' });
  batch.dispatch(pipeline, [a.buckets, a.table, a.out], packUniforms([width, heads]), ceilDiv(width * heads, shaderConstant('position_bias', 'WG')));
}
