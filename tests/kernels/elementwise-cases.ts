/**
 * Element-wise kernels (GELU, SiLU, quick_gelu, T5's gated GELU, block copy, residual adds) against the CPU references, on blocks of
 * wider buffers so strides and offsets are exercised. Shared by the Node tests and the browser page.
 * Also home of the small GPU helpers the other transformer-kernel case modules use.
 */
import type { GpuContext } from '../../src/gpu/device.ts';
import { CommandBatch } from '../../src/gpu/batch.ts';
import { readFloat32, uploadBuffer } from '../../src/gpu/buffers.ts';
import type { GpuTensor } from '../../src/gpu/tensor.ts';
import type { MatrixView } from '../../src/kernels/matrix-view.ts';
import { add, copyView, gatedGeluTanh, gatedResidualAdd, geluTanh, quickGelu, silu } from '../../src/kernels/elementwise.ts';
import * as ref from '../../src/model/reference/ops.ts';
import { maxRelError, randn } from '../helpers/random.ts';

export function f32Tensor(buffer: GPUBuffer, shape: readonly number[]): GpuTensor {
  return { buffer, offset: 0, shape, dtype: 'f32' };
}

/**
 * Uploads `arrays` (inputs, and outputs pre-filled so untouched elements can be checked), records one batch
 * with `record`, and returns every buffer's final contents.
 */
export async function runBatch(
  ctx: GpuContext,
  arrays: readonly Float32Array[],
  record: (batch: CommandBatch, buffers: readonly GPUBuffer[]) => Promise<void>,
): Promise<Float32Array[]> {
  const buffers: GPUBuffer[] = [];
  try {
    for (const [i, a] of arrays.entries()) buffers.push(await uploadBuffer(ctx, a, `test input ${i}`));
    const batch = new CommandBatch(ctx, 'kernel test');
    await record(batch, buffers);
    await batch.submit();
    return await Promise.all(buffers.map((b, i) => readFloat32(ctx, b, 0, arrays[i]!.length)));
  } finally {
    for (const b of buffers) b.destroy();
  }
}

/** Where a rows × cols block sits in a row-major buffer [*, stride]. */
export interface Placement {
  readonly stride: number;
  readonly row0: number;
  readonly col0: number;
  readonly rows: number;
  readonly cols: number;
}

/** The block at `at` of `whole`, as a dense rows × cols array. */
export function readBlock(whole: Float32Array, at: Placement): Float32Array {
  const out = new Float32Array(at.rows * at.cols);
  for (let r = 0; r < at.rows; r++) {
    const start = (at.row0 + r) * at.stride + at.col0;
    out.set(whole.subarray(start, start + at.cols), r * at.cols);
  }
  return out;
}

export interface BlockComparison {
  /** maxRelError of the block against the expected block. */
  readonly maxRelError: number;
  /** Elements outside the block that differ from the buffer's original contents (must be 0). */
  readonly untouchedChanged: number;
}

/** Number of elements that differ (bit for bit, NaN-aware) between two arrays of the same length. */
export function countChanged(got: Float32Array, original: Float32Array): number {
  let n = 0;
  for (let i = 0; i < got.length; i++) if (!Object.is(got[i], original[i])) n++;
  return n;
}

/** Compares the block at `at` of `got` with `expected`, and everything else with `original`. */
export function compareBlock(got: Float32Array, original: Float32Array, at: Placement, expected: Float32Array): BlockComparison {
  const inside = new Uint8Array(got.length);
  for (let r = 0; r < at.rows; r++) inside.fill(1, (at.row0 + r) * at.stride + at.col0, (at.row0 + r) * at.stride + at.col0 + at.cols);
  let untouchedChanged = 0;
  for (let i = 0; i < got.length; i++) if (!inside[i] && !Object.is(got[i], original[i])) untouchedChanged++;
  return { maxRelError: maxRelError(readBlock(got, at), expected), untouchedChanged };
}

/** f32 rounding of a few operations on values of order 1: a handful of ulps, far below this. */
export const ELEMENTWISE_TOLERANCE = 1e-5;

export type ElementwiseOp = 'gelu_tanh' | 'silu' | 'quick_gelu' | 'gated_gelu' | 'copy' | 'gated_residual_add' | 'add';

export interface ElementwiseCase {
  readonly op: ElementwiseOp;
  readonly rows: number;
  readonly cols: number;
  /** Activations only: overwrite the source block instead of writing another buffer. */
  readonly inPlace?: boolean;
  /** Place the blocks inside larger buffers, at row and column offsets, instead of filling them. */
  readonly padded: boolean;
}

export const ELEMENTWISE_CASES: readonly ElementwiseCase[] = [
  { op: 'gelu_tanh', rows: 77, cols: 100, padded: true },
  { op: 'gelu_tanh', rows: 333, cols: 129, inPlace: true, padded: false },
  { op: 'gelu_tanh', rows: 1, cols: 3072, inPlace: true, padded: true },
  { op: 'silu', rows: 1, cols: 3072, inPlace: true, padded: false },
  { op: 'silu', rows: 77, cols: 333, padded: true },
  { op: 'quick_gelu', rows: 77, cols: 333, padded: true },
  { op: 'quick_gelu', rows: 1, cols: 3072, inPlace: true, padded: false },
  // T5's gated GELU: gate and up are adjacent column ranges of one buffer (wi_0 | wi_1).
  { op: 'gated_gelu', rows: 1, cols: 10, padded: false },
  { op: 'gated_gelu', rows: 77, cols: 333, padded: true },
  { op: 'copy', rows: 333, cols: 65, padded: true },
  { op: 'gated_residual_add', rows: 77, cols: 333, padded: true },
  { op: 'gated_residual_add', rows: 1, cols: 3072, padded: false },
  { op: 'add', rows: 333, cols: 257, padded: true },
  { op: 'add', rows: 1, cols: 3072, padded: false },
];

/** Large magnitudes on purpose: GELU's and SiLU's saturated tails must not overflow to NaN. */
const ACTIVATION_INPUT_SCALE = 8;
const EXTREMES = [-100, -30, -10, -1e-3, 0, 1e-3, 10, 30, 100];
/** Offset of the gate inside the test's modulation vector. */
const GATE_OFFSET = 7;

export interface ElementwiseCaseResult extends BlockComparison {
  readonly name: string;
}

export function elementwiseCaseName(c: ElementwiseCase): string {
  return `${c.op} ${c.rows}x${c.cols}${c.inPlace ? ' in place' : ''}${c.padded ? ' inside larger buffers' : ''}`;
}

/** Buffer A holds the source (activations, copy) or x (residuals); buffer B the destination or y. */
export async function runElementwiseCase(ctx: GpuContext, c: ElementwiseCase, seed: number): Promise<ElementwiseCaseResult> {
  const { rows, cols } = c;
  const at = (row0: number, col0: number, extraRows: number, extraCols: number): Placement & { bufferRows: number } =>
    c.padded ? { stride: cols + col0 + extraCols, row0, col0, rows, cols, bufferRows: rows + row0 + extraRows } : { stride: cols, row0: 0, col0: 0, rows, cols, bufferRows: rows };
  // gated_gelu reads `up` from the cols columns right after the gate block in buffer A.
  const upCols = c.op === 'gated_gelu' ? cols : 0;
  const atA = c.padded ? at(2, 5, 1, 11 + upCols) : { ...at(0, 0, 0, 0), stride: cols + upCols };
  const atUp: Placement = { ...atA, col0: atA.col0 + cols };
  const atB = at(1, 3, 0, 4);
  const activation = c.op === 'gelu_tanh' || c.op === 'silu' || c.op === 'quick_gelu' || c.op === 'gated_gelu';
  const a = randn(atA.bufferRows * atA.stride, seed, activation ? ACTIVATION_INPUT_SCALE : 1);
  if (activation) a.set(EXTREMES.slice(0, Math.min(EXTREMES.length, cols)), atA.row0 * atA.stride + atA.col0);
  const b = randn(atB.bufferRows * atB.stride, seed + 1);
  const modulation = randn(GATE_OFFSET + cols + 3, seed + 2);
  const block = (buf: GPUBuffer, p: typeof atA): MatrixView => ({ tensor: f32Tensor(buf, [p.bufferRows, p.stride]), row0: p.row0, col0: p.col0, rows, cols });

  const [gotA, gotB] = await runBatch(ctx, [a, b, modulation], async (batch, [bufA, bufB, bufM]) => {
    const blockA = block(bufA!, atA);
    const blockB = block(bufB!, atB);
    const dst = c.inPlace ? undefined : blockB;
    if (c.op === 'gelu_tanh') await geluTanh(batch, { src: blockA, dst });
    else if (c.op === 'silu') await silu(batch, { src: blockA, dst });
    else if (c.op === 'quick_gelu') await quickGelu(batch, { src: blockA, dst });
    else if (c.op === 'gated_gelu') await gatedGeluTanh(batch, { gate: blockA, up: { ...blockA, col0: atUp.col0 }, dst: blockB });
    else if (c.op === 'copy') await copyView(batch, { src: blockA, dst: blockB });
    else if (c.op === 'add') await add(batch, { x: blockA, y: blockB });
    else await gatedResidualAdd(batch, { x: blockA, y: blockB, modulation: f32Tensor(bufM!, [modulation.length]), gateOffset: GATE_OFFSET });
  });

  const srcA = readBlock(a, atA);
  const srcB = readBlock(b, atB);
  let expected: Float32Array;
  if (c.op === 'gelu_tanh') expected = ref.geluTanh(srcA);
  else if (c.op === 'silu') expected = ref.silu(srcA);
  else if (c.op === 'quick_gelu') expected = ref.quickGelu(srcA);
  else if (c.op === 'gated_gelu') expected = ref.gatedGeluTanh(srcA, readBlock(a, atUp));
  else if (c.op === 'copy') expected = srcA;
  else if (c.op === 'add') expected = srcA.map((v, i) => v + srcB[i]!);
  else expected = ref.gatedResidual(srcA, modulation.subarray(GATE_OFFSET, GATE_OFFSET + cols), srcB);
  const writesA = c.op === 'add' || c.op === 'gated_residual_add' || c.inPlace === true;
  const written = writesA ? compareBlock(gotA!, a, atA, expected) : compareBlock(gotB!, b, atB, expected);
  const readOnly = writesA ? countChanged(gotB!, b) : countChanged(gotA!, a);
  return { name: elementwiseCaseName(c), maxRelError: written.maxRelError, untouchedChanged: written.untouchedChanged + readOnly };
}

export async function runAllElementwiseCases(ctx: GpuContext): Promise<ElementwiseCaseResult[]> {
  const results: ElementwiseCaseResult[] = [];
  for (const [i, c] of ELEMENTWISE_CASES.entries()) results.push(await runElementwiseCase(ctx, c, 300 + 10 * i));
  return results;
}
