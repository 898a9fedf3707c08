/**
 * 2-D convolution on pixel-major [rows, width, channels] tensors (shaders/conv.wgsl): 3×3 or 1×1, stride 1,
 * zero padding, with the VAE decoder's fusions (nearest 2× upsampling of the input, GroupNorm-affine and
 * SiLU on load, accumulation into the output) and row bands with one halo row on each side.
 */
import { FluxError } from '../errors.ts';
import type { CommandBatch } from '../gpu/batch.ts';
import { numel, type GpuTensor } from '../gpu/tensor.ts';
import { ceilDiv, packUniforms, pipelineFor } from './kernel.ts';

/** Output pixels per workgroup along each axis, and output vec4s per invocation (TILE, CO_VECS in the shader). */
const TILE = 8;
const CO_VECS = 4;
/** Output channels are written as vec4: weights and outputs are padded to a multiple of this. */
export const CONV_CHANNEL_ALIGN = 4;

export type ConvKernelSize = 1 | 3;

/** Output channels as stored: padded to a multiple of CONV_CHANNEL_ALIGN with zero weights. */
export function paddedChannels(channels: number): number {
  return Math.ceil(channels / CONV_CHANNEL_ALIGN) * CONV_CHANNEL_ALIGN;
}

/**
 * PyTorch conv weights [cout, cin, k, k] (or a linear's [cout, cin] for k = 1) to the shader's
 * [k·k, cin, paddedChannels(cout)]: output channels fastest so one vec4 load serves four of them.
 */
export function convWeightLayout(weight: Float32Array, cout: number, cin: number, k: ConvKernelSize): Float32Array {
  if (weight.length !== cout * cin * k * k) throw new FluxError('bad-shape', `conv weight has ${weight.length} values, expected ${cout}×${cin}×${k}×${k}`);
  const coutPadded = paddedChannels(cout);
  const out = new Float32Array(k * k * cin * coutPadded);
  for (let o = 0; o < cout; o++) {
    for (let i = 0; i < cin; i++) {
      for (let t = 0; t < k * k; t++) out[(t * cin + i) * coutPadded + o] = weight[(o * cin + i) * k * k + t]!;
    }
  }
  return out;
}

/** A bias [cout] padded with zeros to paddedChannels(cout). */
export function convBiasLayout(bias: Float32Array): Float32Array {
  const out = new Float32Array(paddedChannels(bias.length));
  out.set(bias);
  return out;
}

export interface ConvWeights {
  readonly kernelSize: ConvKernelSize;
  readonly inChannels: number;
  readonly outChannels: number;
  /** [k·k, inChannels, paddedChannels(outChannels)] f32 (convWeightLayout). */
  readonly weight: GpuTensor;
  /** [paddedChannels(outChannels)] f32. */
  readonly bias: GpuTensor;
}

export interface ConvArgs {
  readonly weights: ConvWeights;
  /** Input rows [inRow0, inRow0 + rows) of an inHeight-row tensor: [rows, width, inChannels] f32. */
  readonly x: GpuTensor;
  readonly inRow0: number;
  readonly inHeight: number;
  /** [2, width, inChannels]: rows inRow0 − 1 and inRow0 + rows, needed when the band reads past x (3×3). */
  readonly halo?: GpuTensor;
  /** [2, inChannels] scale then shift: y = conv(scale·x + shift) (a GroupNorm folded to affine form). */
  readonly norm?: GpuTensor;
  /** SiLU on the (normalized) input. */
  readonly silu?: boolean;
  /** Nearest-neighbour 2× upsampling of the input before the convolution. */
  readonly upsample?: boolean;
  /** Output rows [outRow0, outRow0 + outRows) of the (upsampled) image, written from row `yRow0` of y. */
  readonly y: GpuTensor;
  readonly outRow0: number;
  readonly outRows: number;
  /** Which row of y receives output row outRow0 (y may hold the whole tensor); default 0. */
  readonly yRow0?: number;
  /** y += conv(...) instead of y = conv(...). */
  readonly accumulate?: boolean;
}

export async function conv2d(batch: CommandBatch, a: ConvArgs): Promise<void> {
  const { weights: cw, inRow0, inHeight, outRow0, outRows } = a;
  const k = cw.kernelSize;
  if (a.x.shape.length !== 3 || a.x.dtype !== 'f32' || a.x.shape[2] !== cw.inChannels) {
    throw new FluxError('bad-shape', `conv: x [${a.x.shape}] ${a.x.dtype} is not [rows, width, ${cw.inChannels}] f32`);
  }
  const [inRows, width] = a.x.shape as [number, number, number];
  const factor = a.upsample ? 2 : 1;
  const coutPadded = paddedChannels(cw.outChannels);
  const outWidth = width * factor;
  const yRow0 = a.yRow0 ?? 0;
  if (a.y.shape.length !== 3 || a.y.dtype !== 'f32' || a.y.shape[1] !== outWidth || a.y.shape[2] !== coutPadded || yRow0 + outRows > a.y.shape[0]!) {
    throw new FluxError('bad-shape', `conv: y [${a.y.shape}] cannot hold rows ${yRow0}+${outRows} of width ${outWidth} × ${coutPadded} channels`);
  }
  if (numel(cw.weight.shape) !== k * k * cw.inChannels * coutPadded || numel(cw.bias.shape) !== coutPadded) {
    throw new FluxError('bad-shape', `conv: weight [${cw.weight.shape}] / bias [${cw.bias.shape}] do not match ${k}×${k} ${cw.inChannels}→${cw.outChannels}`);
  }
  if (inRow0 < 0 || inRow0 + inRows > inHeight || outRow0 < 0 || outRow0 + outRows > inHeight * factor) {
    throw new FluxError('bad-shape', `conv: band rows (in ${inRow0}+${inRows}, out ${outRow0}+${outRows}) outside a ${inHeight}-row image`);
  }
  // Every input row the band reads (one past each end for 3×3) must be in x or in the halo.
  const radius = (k - 1) / 2;
  const firstRead = Math.max(0, Math.floor((outRow0 - radius) / factor));
  const lastRead = Math.min(inHeight - 1, Math.floor((outRow0 + outRows - 1 + radius) / factor));
  const covered = (row: number): boolean => (row >= inRow0 && row < inRow0 + inRows) || (a.halo !== undefined && (row === inRow0 - 1 || row === inRow0 + inRows));
  if (outRows > 0 && (!covered(firstRead) || !covered(lastRead))) {
    throw new FluxError('bad-argument', `conv: output rows ${outRow0}+${outRows} read input rows ${firstRead}..${lastRead}, outside x (${inRow0}+${inRows}) and its halo`);
  }
  if (a.halo && numel(a.halo.shape) !== 2 * width * cw.inChannels) throw new FluxError('bad-shape', `conv: halo [${a.halo.shape}] is not [2, ${width}, ${cw.inChannels}]`);
  if (a.norm && numel(a.norm.shape) !== 2 * cw.inChannels) throw new FluxError('bad-shape', `conv: norm affine [${a.norm.shape}] is not [2, ${cw.inChannels}]`);
  if (a.y.buffer === a.x.buffer || a.y.buffer === a.halo?.buffer) throw new FluxError('bad-argument', 'conv: y must not share a buffer with its inputs');
  if (outRows === 0) return;

  const pipeline = await pipelineFor(batch.ctx, {
    name: 'conv',
    defines: { KSIZE: k, UPSAMPLE: factor },
    constants: { NORM: a.norm ? 1 : 0, SILU: a.silu ? 1 : 0, ACCUMULATE: a.accumulate ? 1 : 0 },
  });
  const cout4 = coutPadded / 4;
  const uniforms = packUniforms([inHeight, width, cw.inChannels, inRow0, inRows, outRow0, outRows, cout4, yRow0 * outWidth * cout4]);
  // Unused bindings are filled with buffers already bound read-only (the shader does not read them).
  const halo = a.halo ?? a.x;
  const affine = a.norm ?? cw.bias;
  batch.dispatch(pipeline, [a.x, halo, cw.weight, cw.bias, affine, a.y], uniforms, [ceilDiv(outWidth, TILE), ceilDiv(outRows, TILE), ceilDiv(cout4, CO_VECS)]);
}
