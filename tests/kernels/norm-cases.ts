/**
 * layer_norm_modulate, qk_norm_rope and the text encoders' layer_norm / rms_norm against the CPU references, on awkward shapes and on blocks of larger
 * buffers. Shared by the Node tests and the browser page.
 */
import type { GpuContext } from '../../src/gpu/device.ts';
import type { GpuTensor } from '../../src/gpu/tensor.ts';
import { layerNorm, layerNormModulate, qkNormRope, rmsNorm } from '../../src/kernels/norm.ts';
import * as ref from '../../src/model/reference/ops.ts';
import { randn } from '../helpers/random.ts';
import { compareBlock, f32Tensor, readBlock, runBatch, type BlockComparison, type Placement } from './elementwise-cases.ts';

/** f32 sums over <= 3072 elements and a few roundings per output: ~1e-6 against the f64 references. */
export const NORM_TOLERANCE = 1e-5;

export interface LayerNormCase {
  readonly rows: number;
  readonly cols: number;
  /** x is a row range of a taller buffer and y a column range of a wider one. */
  readonly padded: boolean;
}

export const LAYER_NORM_CASES: readonly LayerNormCase[] = [
  { rows: 1, cols: 3072, padded: false },
  { rows: 77, cols: 333, padded: true },
  { rows: 333, cols: 256, padded: false },
  { rows: 4, cols: 1, padded: true },
  { rows: 3, cols: 3072, padded: true },
];

/** A large mean relative to the spread: a one-pass E[x²] − E[x]² variance would lose digits here. */
const LAYER_NORM_MEAN = 20;

export interface NormCaseResult extends BlockComparison {
  readonly name: string;
}

export function layerNormCaseName(c: LayerNormCase): string {
  return `layer_norm_modulate ${c.rows}x${c.cols}${c.padded ? ' inside larger buffers' : ''}`;
}

export async function runLayerNormCase(ctx: GpuContext, c: LayerNormCase, seed: number): Promise<NormCaseResult> {
  const { rows, cols } = c;
  const atX: Placement = { stride: cols, row0: c.padded ? 3 : 0, col0: 0, rows, cols };
  const atY: Placement = c.padded ? { stride: cols + 9, row0: 0, col0: 4, rows, cols } : { stride: cols, row0: 0, col0: 0, rows, cols };
  const xRows = rows + (c.padded ? 5 : 0);
  const x = randn(xRows * cols, seed).map((v) => v + LAYER_NORM_MEAN);
  const y = randn(rows * atY.stride, seed + 1);
  // Shift and scale at unaligned offsets, as chunks of a modulation vector.
  const shiftOffset = cols + 3;
  const scaleOffset = 2 * cols + 5;
  const modulation = randn(3 * cols + 8, seed + 2, 0.5);

  const [, gotY] = await runBatch(ctx, [x, y, modulation], async (batch, [bx, by, bm]) => {
    await layerNormModulate(batch, {
      x: { tensor: f32Tensor(bx!, [xRows, cols]), row0: atX.row0, rows },
      y: { tensor: f32Tensor(by!, [rows, atY.stride]), col0: atY.col0, cols },
      modulation: f32Tensor(bm!, [modulation.length]),
      shiftOffset,
      scaleOffset,
    });
  });
  const expected = ref.layerNormModulate(
    readBlock(x, atX),
    rows,
    cols,
    modulation.subarray(shiftOffset, shiftOffset + cols),
    modulation.subarray(scaleOffset, scaleOffset + cols),
  );
  return { name: layerNormCaseName(c), ...compareBlock(gotY!, y, atY, expected) };
}

/** The text encoders' row norms: CLIP's affine LayerNorm (eps 1e-5) and T5's RMSNorm (eps 1e-6). */
export interface RowNormCase {
  readonly kind: 'layer_norm' | 'rms_norm';
  readonly rows: number;
  readonly cols: number;
  readonly eps: number;
  readonly padded: boolean;
}

export const ROW_NORM_CASES: readonly RowNormCase[] = [
  { kind: 'layer_norm', rows: 1, cols: 768, eps: 1e-5, padded: false },
  { kind: 'layer_norm', rows: 77, cols: 333, eps: 1e-5, padded: true },
  { kind: 'layer_norm', rows: 5, cols: 1, eps: 1e-5, padded: true },
  { kind: 'rms_norm', rows: 1, cols: 4096, eps: 1e-6, padded: false },
  { kind: 'rms_norm', rows: 161, cols: 333, eps: 1e-6, padded: true },
  { kind: 'rms_norm', rows: 3, cols: 1, eps: 0.5, padded: true },
];

export function rowNormCaseName(c: RowNormCase): string {
  return `${c.kind} ${c.rows}x${c.cols} eps ${c.eps}${c.padded ? ' inside larger buffers' : ''}`;
}

export async function runRowNormCase(ctx: GpuContext, c: RowNormCase, seed: number): Promise<NormCaseResult> {
  const { rows, cols } = c;
  const atX: Placement = c.padded ? { stride: cols + 7, row0: 2, col0: 3, rows, cols } : { stride: cols, row0: 0, col0: 0, rows, cols };
  const atY: Placement = c.padded ? { stride: cols + 9, row0: 1, col0: 4, rows, cols } : { stride: cols, row0: 0, col0: 0, rows, cols };
  const xRows = rows + (c.padded ? 4 : 0);
  const yRows = rows + (c.padded ? 2 : 0);
  // A mean far from 0 for LayerNorm (cancellation); T5's residual stream has large magnitudes too.
  const x = randn(xRows * atX.stride, seed, 3).map((v) => v + (c.kind === 'layer_norm' ? LAYER_NORM_MEAN : 0));
  const y = randn(yRows * atY.stride, seed + 1);
  const weight = randn(cols, seed + 2, 0.5).map((v) => v + 1);
  const bias = randn(cols, seed + 3, 0.5);

  const [, gotY] = await runBatch(ctx, [x, y, weight, bias], async (batch, [bx, by, bw, bb]) => {
    const args = {
      x: { tensor: f32Tensor(bx!, [xRows, atX.stride]), row0: atX.row0, rows, col0: atX.col0, cols },
      y: { tensor: f32Tensor(by!, [yRows, atY.stride]), row0: atY.row0, rows, col0: atY.col0, cols },
      weight: f32Tensor(bw!, [cols]),
      eps: c.eps,
    };
    if (c.kind === 'layer_norm') await layerNorm(batch, { ...args, bias: f32Tensor(bb!, [cols]) });
    else await rmsNorm(batch, args);
  });
  const xs = readBlock(x, atX);
  const expected = c.kind === 'layer_norm' ? ref.layerNorm(xs, rows, weight, bias, c.eps) : ref.rmsNormRows(xs, rows, weight, c.eps);
  return { name: rowNormCaseName(c), ...compareBlock(gotY!, y, atY, expected) };
}

export interface QkNormRopeCase {
  readonly rows: number;
  readonly textRows: number;
  readonly heads: number;
  readonly headDim: number;
  /** Columns past q, k, v (the single block's mlp part); 0 for a double block's qkv. */
  readonly extraCols: number;
}

export const QK_NORM_ROPE_CASES: readonly QkNormRopeCase[] = [
  { rows: 1, textRows: 0, heads: 4, headDim: 64, extraCols: 0 },
  { rows: 17, textRows: 5, heads: 2, headDim: 128, extraCols: 40 },
  { rows: 80, textRows: 16, heads: 4, headDim: 64, extraCols: 0 },
  { rows: 333, textRows: 77, heads: 2, headDim: 128, extraCols: 256 },
];

/** FLUX's RoPE split of the head dim over the (0, row, column) position axes, scaled to the head dim. */
function axesDim(headDim: number): number[] {
  const first = headDim / 8;
  return [first, (headDim - first) / 2, (headDim - first) / 2];
}
const ROPE_THETA = 10_000;
/** Image tokens sit on a grid this many patches wide. */
const GRID_WIDTH = 9;

export function qkNormRopeCaseName(c: QkNormRopeCase): string {
  return `qk_norm_rope ${c.rows} rows (${c.textRows} text), ${c.heads} heads x ${c.headDim}, row stride ${3 * c.heads * c.headDim + c.extraCols}`;
}

export async function runQkNormRopeCase(ctx: GpuContext, c: QkNormRopeCase, seed: number): Promise<NormCaseResult> {
  const { rows, textRows, heads, headDim } = c;
  const hidden = heads * headDim;
  const stride = 3 * hidden + c.extraCols;
  const qkv = randn(rows * stride, seed, 2);
  const scales = [0, 1, 2, 3].map((i) => randn(headDim, seed + 1 + i, 0.3).map((v) => v + 1));
  // Text tokens at position 0 as in FLUX; image tokens at (frame, row, column) with a non-zero first axis so
  // every pair is rotated.
  const ids = new Float32Array(rows * 3);
  for (let i = textRows; i < rows; i++) {
    const j = i - textRows;
    ids.set([1 + (j % 2), Math.floor(j / GRID_WIDTH), j % GRID_WIDTH], i * 3);
  }
  const table = ref.ropeTable(ids, rows, axesDim(headDim), ROPE_THETA);

  const [got] = await runBatch(ctx, [qkv, ...scales, table.cos, table.sin], async (batch, [bqkv, qt, kt, qi, ki, bcos, bsin]) => {
    const scale = (b: GPUBuffer | undefined): GpuTensor => f32Tensor(b!, [headDim]);
    await qkNormRope(batch, {
      qkv: f32Tensor(bqkv!, [rows, stride]),
      heads,
      headDim,
      text: { q: scale(qt), k: scale(kt) },
      image: { q: scale(qi), k: scale(ki) },
      textRows,
      cos: f32Tensor(bcos!, [rows, headDim / 2]),
      sin: f32Tensor(bsin!, [rows, headDim / 2]),
    });
  });

  // Reference: RMSNorm per stream (text rows with the first scales), then RoPE over the joint rows.
  const qk = (col0: number, textScale: Float32Array, imageScale: Float32Array): Float32Array => {
    const normed = new Float32Array(rows * hidden);
    const text = readBlock(qkv, { stride, row0: 0, col0, rows: textRows, cols: hidden });
    const image = readBlock(qkv, { stride, row0: textRows, col0, rows: rows - textRows, cols: hidden });
    normed.set(ref.rmsNorm(text, textRows, heads, headDim, textScale));
    normed.set(ref.rmsNorm(image, rows - textRows, heads, headDim, imageScale), textRows * hidden);
    return ref.applyRope(normed, rows, heads, headDim, table);
  };
  const expected = new Float32Array(rows * 2 * hidden);
  const q = qk(0, scales[0]!, scales[2]!);
  const k = qk(hidden, scales[1]!, scales[3]!);
  for (let r = 0; r < rows; r++) {
    expected.set(q.subarray(r * hidden, (r + 1) * hidden), r * 2 * hidden);
    expected.set(k.subarray(r * hidden, (r + 1) * hidden), r * 2 * hidden + hidden);
  }
  const result = compareBlock(got!, qkv, { stride, row0: 0, col0: 0, rows, cols: 2 * hidden }, expected);
  return { name: qkNormRopeCaseName(c), ...result };
}

export async function runAllNormCases(ctx: GpuContext): Promise<NormCaseResult[]> {
  const results: NormCaseResult[] = [];
  for (const [i, c] of LAYER_NORM_CASES.entries()) results.push(await runLayerNormCase(ctx, c, 500 + 10 * i));
  for (const [i, c] of QK_NORM_ROPE_CASES.entries()) results.push(await runQkNormRopeCase(ctx, c, 600 + 10 * i));
  for (const [i, c] of ROW_NORM_CASES.entries()) results.push(await runRowNormCase(ctx, c, 650 + 10 * i));
  return results;
}
