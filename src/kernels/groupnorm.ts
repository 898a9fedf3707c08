/**
 * GroupNorm statistics over a pixel-major tensor stored as row bands (shaders/groupnorm.wgsl): two passes
 * (mean, then mean squared deviation) over every band, reduced to each channel's affine form
 * [scale, shift] that conv2d applies on load. Statistics cover the whole tensor whatever the banding.
 */
import { FluxError } from '../errors.ts';
import type { CommandBatch } from '../gpu/batch.ts';
import { numel, type GpuTensor } from '../gpu/tensor.ts';
import { ceilDiv, packUniforms, pipelineFor } from './kernel.ts';

/** Values one workgroup sums in the first stage (256 per invocation): few workgroups, few barriers. */
const CHUNK_VALUES = 16384;

function chunkPixels(groupChannels: number): number {
  return Math.max(1, Math.floor(CHUNK_VALUES / groupChannels));
}

/** Partial sums a band of `pixels` pixels contributes per group. */
export function groupNormChunks(pixels: number, groupChannels: number): number {
  return ceilDiv(pixels, chunkPixels(groupChannels));
}

/** f32 values of the partial-sum scratch GroupNorm needs for bands of these pixel counts. */
export function groupNormPartialsSize(bandPixels: readonly number[], channels: number, groups: number): number {
  return groups * bandPixels.reduce((n, p) => n + groupNormChunks(p, channels / groups), 0);
}

export interface GroupNormArgs {
  /** The tensor's row bands, each [rows, width, channels] or [pixels, channels] f32. */
  readonly bands: readonly GpuTensor[];
  readonly channels: number;
  readonly groups: number;
  readonly eps: number;
  /** [channels] f32 each. */
  readonly gamma: GpuTensor;
  readonly beta: GpuTensor;
  /** groupNormPartialsSize(...) f32 values, and [groups] f32 for the means; both overwritten. */
  readonly partials: GpuTensor;
  readonly means: GpuTensor;
  /** [2, channels] f32 out: scale = gamma·rstd, then shift = beta − mean·scale. */
  readonly affine: GpuTensor;
}

export async function groupNormAffine(batch: CommandBatch, a: GroupNormArgs): Promise<void> {
  const { channels, groups } = a;
  if (!Number.isInteger(channels / groups) || groups < 1) throw new FluxError('bad-argument', `group_norm: ${channels} channels do not split into ${groups} groups`);
  const groupChannels = channels / groups;
  const bandPixels = a.bands.map((b) => {
    if (b.dtype !== 'f32' || b.shape[b.shape.length - 1] !== channels) throw new FluxError('bad-shape', `group_norm: band [${b.shape}] ${b.dtype} does not end in ${channels} f32 channels`);
    return numel(b.shape) / channels;
  });
  const chunks = bandPixels.reduce((n, p) => n + groupNormChunks(p, groupChannels), 0);
  if (numel(a.partials.shape) < groupNormPartialsSize(bandPixels, channels, groups) || numel(a.means.shape) < groups) {
    throw new FluxError('bad-shape', `group_norm: scratch [${a.partials.shape}] / [${a.means.shape}] is too small`);
  }
  // WebGPU forbids one buffer bound writable and also bound otherwise in the same dispatch.
  if (new Set([a.partials.buffer, a.means.buffer, a.affine.buffer]).size !== 3) throw new FluxError('bad-argument', 'group_norm: partials, means and affine need separate buffers');
  if (numel(a.gamma.shape) !== channels || numel(a.beta.shape) !== channels || numel(a.affine.shape) !== 2 * channels) {
    throw new FluxError('bad-shape', `group_norm: gamma, beta [${channels}] and affine [2, ${channels}] expected`);
  }
  const count = bandPixels.reduce((n, p) => n + p, 0) * groupChannels;
  if (count === 0) throw new FluxError('bad-shape', 'group_norm: empty tensor');
  const { partials, means } = a;
  const perChunk = chunkPixels(groupChannels);
  for (const centered of [false, true]) {
    const sums = await pipelineFor(batch.ctx, { name: 'groupnorm', entryPoint: 'partial_sums', constants: { CENTERED: centered ? 1 : 0 } });
    let chunkBase = 0;
    a.bands.forEach((band, i) => {
      const pixels = bandPixels[i]!;
      if (pixels === 0) return;
      const uniforms = packUniforms([pixels, channels, groupChannels, chunkBase, chunks, perChunk, { f32: count }, { f32: a.eps }]);
      batch.dispatch(sums, [band, means, partials], uniforms, [groupNormChunks(pixels, groupChannels), groups]);
      chunkBase += groupNormChunks(pixels, groupChannels);
    });
    const finalize = await pipelineFor(batch.ctx, { name: 'groupnorm', entryPoint: 'finalize', constants: { CENTERED: centered ? 1 : 0 } });
    const uniforms = packUniforms([0, channels, groupChannels, 0, chunks, perChunk, { f32: count }, { f32: a.eps }]);
    batch.dispatch(finalize, [partials, a.gamma, a.beta, means, a.affine], uniforms, groups);
  }
}
