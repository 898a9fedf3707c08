/**
 * 2-D convolution on pixel-major [rows, width, channels] tensors: 3×3 or 1×1, stride 1, zero padding, as
 * an im2col gather (shaders/conv.wgsl, with the VAE decoder's fusions: nearest 2× upsampling of the input,
 * GroupNorm affine and SiLU on load, row bands with one halo row on each side) followed by the float GEMM
 * (gemm_f32), the engine's fastest float kernel.
 */
import { FluxError } from '../errors.ts';
import type { CommandBatch } from '../gpu/batch.ts';
import { numel, type GpuTensor } from '../gpu/tensor.ts';
import { floatGemm } from './gemm.ts';
import { shaderConstant } from '../gpu/shaders.ts';
import { ceilDiv, packUniforms, pipelineFor } from './kernel.ts';


export type ConvKernelSize = 1 | 3;

/**
 * PyTorch conv weights [cout, cin, k, k] (or a linear's [cout, cin] for k = 1) as the GEMM's [cout, k·k·cin]:
 * column (ky·k + kx)·cin + ci, the order the gather writes.
 */
export function convWeightLayout(weight: Float32Array, cout: number, cin: number, k: ConvKernelSize): Float32Array {
  if (weight.length !== cout * cin * k * k) throw new FluxError('bad-shape', `conv weight has ${weight.length} values, expected ${cout}×${cin}×${k}×${k}`);
  const taps = k * k;
  const out = new Float32Array(weight.length);
  for (let o = 0; o < cout; o++) {
    for (let i = 0; i < cin; i++) {
      for (let t = 0; t < taps; t++) out[(o * taps + t) * cin + i] = weight[(o * cin + i) * taps + t]!;
    }
  }
  return out;
}

export interface ConvWeights {
  readonly kernelSize: ConvKernelSize;
  readonly inChannels: number;
  readonly outChannels: number;
  /** [outChannels, k·k·inChannels] f32 (convWeightLayout). */
  readonly weight: GpuTensor;
  /** [outChannels] f32. */
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
  /** Which row of y [rows, outWidth, outChannels] receives output row outRow0; default 0. */
  readonly yRow0?: number;
  /** convColumnsSize(...) f32 values of scratch for the gathered inputs (not needed for a plain 1×1 band). */
  readonly columns?: GpuTensor;
}

/** Whether conv2d can run the GEMM on x itself: a 1×1 conv without transforms whose x rows are the output rows. */
export function convNeedsColumns(a: Pick<ConvArgs, 'weights' | 'norm' | 'silu' | 'upsample'>): boolean {
  return a.weights.kernelSize !== 1 || a.norm !== undefined || a.silu === true || a.upsample === true;
}

/** f32 values of the gather scratch for `outRows` output rows of `outWidth` pixels. */
export function convColumnsSize(cw: ConvWeights, outRows: number, outWidth: number): number {
  return outRows * outWidth * cw.kernelSize * cw.kernelSize * cw.inChannels;
}

export async function conv2d(batch: CommandBatch, a: ConvArgs): Promise<void> {
  const { weights: cw, inRow0, inHeight, outRow0, outRows } = a;
  const k = cw.kernelSize;
  if (a.x.shape.length !== 3 || a.x.dtype !== 'f32' || a.x.shape[2] !== cw.inChannels) {
    throw new FluxError('bad-shape', `conv: x [${a.x.shape}] ${a.x.dtype} is not [rows, width, ${cw.inChannels}] f32`);
  }
  const [inRows, width] = a.x.shape as [number, number, number];
  const factor = a.upsample ? 2 : 1;
  const outWidth = width * factor;
  const yRow0 = a.yRow0 ?? 0;
  if (a.y.shape.length !== 3 || a.y.dtype !== 'f32' || a.y.shape[1] !== outWidth || a.y.shape[2] !== cw.outChannels || yRow0 + outRows > a.y.shape[0]!) {
    throw new FluxError('bad-shape', `conv: y [${a.y.shape}] cannot hold rows ${yRow0}+${outRows} of width ${outWidth} × ${cw.outChannels} channels`);
  }
  const kk = k * k * cw.inChannels;
  if (numel(cw.weight.shape) !== cw.outChannels * kk || numel(cw.bias.shape) !== cw.outChannels) {
    throw new FluxError('bad-shape', `conv: weight [${cw.weight.shape}] / bias [${cw.bias.shape}] do not match ${k}×${k} ${cw.inChannels}→${cw.outChannels}`);
  }
  if (inRow0 < 0 || inRow0 + inRows > inHeight || outRow0 < 0 || outRow0 + outRows > inHeight * factor) {
    throw new FluxError('bad-shape', `conv: band rows (in ${inRow0}+${inRows}, out ${outRow0}+${outRows}) outside a ${inHeight}-row image`);
  }
  if (outRows === 0) return;
  const weight: GpuTensor = { ...cw.weight, shape: [cw.outChannels, kk] };
  const y = { tensor: { ...a.y, shape: [a.y.shape[0]! * outWidth, cw.outChannels] }, row0: yRow0 * outWidth, rows: outRows * outWidth };
  if (!convNeedsColumns(a)) {
    if (outRow0 < inRow0 || outRow0 + outRows > inRow0 + inRows) throw new FluxError('bad-argument', `conv: output rows ${outRow0}+${outRows} are not in x (${inRow0}+${inRows})`);
    const x = { tensor: { ...a.x, shape: [inRows * width, cw.inChannels] }, row0: (outRow0 - inRow0) * width, rows: outRows * width };
    await floatGemm(batch, { x, w: weight, bias: cw.bias, y });
    return;
  }
  // Every input row the band reads (one past each end for 3×3) must be in x or in the halo.
  const radius = (k - 1) / 2;
  const firstRead = Math.max(0, Math.floor((outRow0 - radius) / factor));
  const lastRead = Math.min(inHeight - 1, Math.floor((outRow0 + outRows - 1 + radius) / factor));
  const covered = (row: number): boolean => (row >= inRow0 && row < inRow0 + inRows) || (a.halo !== undefined && (row === inRow0 - 1 || row === inRow0 + inRows));
  if (!covered(firstRead) || !covered(lastRead)) {
    throw new FluxError('bad-argument', `conv: output rows ${outRow0}+${outRows} read input rows ${firstRead}..${lastRead}, outside x (${inRow0}+${inRows}) and its halo`);
  }
  if (a.halo && numel(a.halo.shape) !== 2 * width * cw.inChannels) throw new FluxError('bad-shape', `conv: halo [${a.halo.shape}] is not [2, ${width}, ${cw.inChannels}]`);
  if (a.norm && numel(a.norm.shape) !== 2 * cw.inChannels) throw new FluxError('bad-shape', `conv: norm affine [${a.norm.shape}] is not [2, ${cw.inChannels}]`);
  const size = convColumnsSize(cw, outRows, outWidth);
  if (!a.columns || numel(a.columns.shape) < size) throw new FluxError('bad-argument', `conv: needs ${size} f32 values of column scratch`);
  const buffers = [a.x.buffer, a.halo?.buffer, a.norm?.buffer];
  if (buffers.includes(a.columns.buffer) || buffers.includes(a.y.buffer) || a.y.buffer === a.columns.buffer) throw new FluxError('bad-argument', 'conv: y and the column scratch must not share a buffer with the inputs');

  const pipeline = await pipelineFor(batch.ctx, { name: 'conv', defines: { KSIZE: k, UPSAMPLE: factor }, constants: { NORM: a.norm ? 1 : 0, SILU: a.silu ? 1 : 0 } });
  const uniforms = packUniforms([inHeight, width, cw.inChannels, inRow0, inRows, outRow0, outRows]);
  // Unused bindings are filled with buffers already bound read-only (the shader does not read them).
  batch.dispatch(pipeline, [a.x, a.halo ?? a.x, a.norm ?? a.x, a.columns], uniforms, ceilDiv(size, shaderConstant('conv', 'WG')));
  await floatGemm(batch, { x: { tensor: { ...a.columns, shape: [outRows * outWidth, kk] } }, w: weight, bias: cw.bias, y });
}
