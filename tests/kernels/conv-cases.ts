/**
 * conv2d (3×3 / 1×1, upsampling, fused GroupNorm affine and SiLU, row bands with halos) and the
 * banded GroupNorm statistics against the channel-major CPU references. Shared by the Node tests and the
 * browser page.
 */
import type { GpuContext } from '../../src/gpu/device.ts';
import { conv2d, convColumnsSize, convWeightLayout, type ConvKernelSize } from '../../src/kernels/conv.ts';
import { groupNormAffine, groupNormPartialsSize } from '../../src/kernels/groupnorm.ts';
import * as ref from '../../src/model/reference/vae-ops.ts';
import { silu } from '../../src/model/reference/ops.ts';
import { chwToHwc, hwcToChw } from '../../src/model/vae/pixel-layout.ts';
import { maxRelError, randn } from '../helpers/random.ts';
import { f32Tensor, runBatch } from './elementwise-cases.ts';

/** f32 sums of up to 9·cin products against f64 references: ~1e-6 relative to the largest output. */
export const CONV_TOLERANCE = 1e-5;

export interface ConvCase {
  readonly k: ConvKernelSize;
  readonly cin: number;
  readonly cout: number;
  readonly h: number;
  readonly w: number;
  readonly upsample: boolean;
  /** GroupNorm affine on load, and SiLU after it. */
  readonly norm: boolean;
  readonly silu: boolean;
  /** Input rows per band (the last band may be shorter); the whole height is one band. */
  readonly bandRows: number;
}

const base = { upsample: false, norm: false, silu: false };
export const CONV_CASES: readonly ConvCase[] = [
  { k: 3, cin: 5, cout: 7, h: 9, w: 13, ...base, bandRows: 9 },
  { k: 3, cin: 5, cout: 7, h: 9, w: 13, ...base, norm: true, silu: true, bandRows: 4 },
  { k: 3, cin: 6, cout: 8, h: 7, w: 5, ...base, upsample: true, bandRows: 3 },
  { k: 3, cin: 16, cout: 3, h: 1, w: 1, ...base, norm: true, silu: true, bandRows: 1 },
  { k: 1, cin: 20, cout: 12, h: 3, w: 11, ...base, norm: true, bandRows: 3 },
  { k: 1, cin: 6, cout: 3, h: 5, w: 3, ...base, bandRows: 2 },
  { k: 3, cin: 64, cout: 64, h: 16, w: 16, ...base, norm: true, silu: true, bandRows: 5 },
  { k: 3, cin: 32, cout: 32, h: 19, w: 21, ...base, upsample: true, norm: true, bandRows: 7 },
];

export interface ConvCaseResult {
  readonly name: string;
  readonly maxRelError: number;
}

export function convCaseName(c: ConvCase): string {
  const extras = [c.upsample && 'upsample', c.norm && 'norm', c.silu && 'silu'].filter(Boolean).join(', ');
  return `conv ${c.k}x${c.k} ${c.cin}->${c.cout} on ${c.h}x${c.w}${extras ? ` (${extras})` : ''}, bands of ${c.bandRows} rows`;
}

/** Rows [row0, row0 + rows) of a pixel-major [h, w, c] array. */
function rowsOf(x: Float32Array, w: number, c: number, row0: number, rows: number): Float32Array {
  return x.slice(row0 * w * c, (row0 + rows) * w * c);
}

export async function runConvCase(ctx: GpuContext, c: ConvCase, seed: number): Promise<ConvCaseResult> {
  const { k, cin, cout, h, w } = c;
  const factor = c.upsample ? 2 : 1;
  const [oh, ow] = [h * factor, w * factor];
  const x = randn(cin * h * w, seed, 1.5);
  const weight = randn(cout * cin * k * k, seed + 1, 1 / Math.sqrt(cin * k * k));
  const bias = randn(cout, seed + 2);
  const affine = new Float32Array([...randn(cin, seed + 3, 0.7), ...randn(cin, seed + 4, 0.5)]);

  let input = x;
  if (c.norm) input = x.map((v, i) => affine[Math.floor(i / (h * w))]! * v + affine[cin + Math.floor(i / (h * w))]!);
  if (c.silu) input = silu(input);
  if (c.upsample) input = ref.upsampleNearest2x(input, cin, h, w);
  const expected = ref.conv2d(input, cin, oh, ow, weight, bias, cout, k);

  const xHwc = chwToHwc(x, cin, h * w);
  const bands: { row0: number; rows: number }[] = [];
  for (let r = 0; r < h; r += c.bandRows) bands.push({ row0: r, rows: Math.min(c.bandRows, h - r) });
  const out = new Float32Array(oh * ow * cout);
  // Each band runs as its own batch: input rows, halo rows, its output rows.
  for (const band of bands) {
    const halo = new Float32Array(2 * w * cin);
    if (band.row0 > 0) halo.set(rowsOf(xHwc, w, cin, band.row0 - 1, 1), 0);
    if (band.row0 + band.rows < h) halo.set(rowsOf(xHwc, w, cin, band.row0 + band.rows, 1), w * cin);
    const outRow0 = band.row0 * factor;
    const outRows = band.rows * factor;
    const arrays = [
      rowsOf(xHwc, w, cin, band.row0, band.rows),
      halo,
      convWeightLayout(weight, cout, cin, k),
      bias,
      affine,
      randn(outRows * ow * cout, seed + 5),
      new Float32Array(outRows * ow * k * k * cin),
    ];
    const got = await runBatch(ctx, arrays, async (batch, [bx, bh, bw, bb, ba, by, bc]) => {
      const weights = { kernelSize: k, inChannels: cin, outChannels: cout, weight: f32Tensor(bw!, [arrays[2]!.length]), bias: f32Tensor(bb!, [cout]) };
      await conv2d(batch, {
        weights,
        x: f32Tensor(bx!, [band.rows, w, cin]),
        inRow0: band.row0,
        inHeight: h,
        halo: bands.length > 1 ? f32Tensor(bh!, [2, w, cin]) : undefined,
        norm: c.norm ? f32Tensor(ba!, [2, cin]) : undefined,
        silu: c.silu,
        upsample: c.upsample,
        y: f32Tensor(by!, [outRows, ow, cout]),
        outRow0,
        outRows,
        columns: f32Tensor(bc!, [convColumnsSize(weights, outRows, ow)]),
      });
    });
    out.set(got[5]!, outRow0 * ow * cout);
  }
  return { name: convCaseName(c), maxRelError: maxRelError(hwcToChw(out, cout, oh * ow), expected) };
}

export interface GroupNormCase {
  readonly channels: number;
  readonly groups: number;
  /** Pixels of each band. */
  readonly bandPixels: readonly number[];
}

export const GROUP_NORM_CASES: readonly GroupNormCase[] = [
  { channels: 12, groups: 4, bandPixels: [70, 70, 3] },
  { channels: 32, groups: 32, bandPixels: [1] },
  { channels: 64, groups: 32, bandPixels: [200, 56] },
];

/** A large mean relative to the spread: a one-pass E[x²] − E[x]² variance would lose digits here. */
const GROUP_NORM_MEAN = 20;

export function groupNormCaseName(c: GroupNormCase): string {
  return `group_norm ${c.channels} channels / ${c.groups} groups over bands of [${c.bandPixels.join(', ')}] pixels`;
}

export async function runGroupNormCase(ctx: GpuContext, c: GroupNormCase, seed: number): Promise<ConvCaseResult> {
  const { channels, groups } = c;
  const pixels = c.bandPixels.reduce((a, b) => a + b, 0);
  const x = randn(channels * pixels, seed).map((v) => v + GROUP_NORM_MEAN);
  const gamma = randn(channels, seed + 1);
  const beta = randn(channels, seed + 2);
  const expected = ref.groupNormAffine(x, channels, pixels, groups, 1e-6, gamma, beta);
  const xHwc = chwToHwc(x, channels, pixels);
  let start = 0;
  const bandArrays = c.bandPixels.map((p) => xHwc.slice(start * channels, (start += p) * channels));
  const partials = new Float32Array(groupNormPartialsSize(c.bandPixels, channels, groups));
  const arrays = [...bandArrays, gamma, beta, partials, new Float32Array(groups), new Float32Array(2 * channels)];
  const got = await runBatch(ctx, arrays, async (batch, buffers) => {
    const n = bandArrays.length;
    await groupNormAffine(batch, {
      bands: c.bandPixels.map((p, i) => f32Tensor(buffers[i]!, [p, channels])),
      channels,
      groups,
      eps: 1e-6,
      gamma: f32Tensor(buffers[n]!, [channels]),
      beta: f32Tensor(buffers[n + 1]!, [channels]),
      partials: f32Tensor(buffers[n + 2]!, [partials.length]),
      means: f32Tensor(buffers[n + 3]!, [groups]),
      affine: f32Tensor(buffers[n + 4]!, [2 * channels]),
    });
  });
  // The shift carries mean·scale ≈ 20× the scale: compare the two halves each against its own size.
  const scaleError = maxRelError(got[arrays.length - 1]!.subarray(0, channels), expected.subarray(0, channels));
  const shiftError = maxRelError(got[arrays.length - 1]!.subarray(channels), expected.subarray(channels));
  return { name: groupNormCaseName(c), maxRelError: Math.max(scaleError, shiftError) };
}

export async function runAllConvCases(ctx: GpuContext): Promise<ConvCaseResult[]> {
  const results: ConvCaseResult[] = [];
  for (const [i, c] of CONV_CASES.entries()) results.push(await runConvCase(ctx, c, 900 + 10 * i));
  for (const [i, c] of GROUP_NORM_CASES.entries()) results.push(await runGroupNormCase(ctx, c, 950 + 10 * i));
  return results;
}
