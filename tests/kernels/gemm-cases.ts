/**
 * f32 GEMM against its CPU reference on awkward shapes. Shared by the Node test and the browser page
 * (e2e), so the same cases run on Dawn and in Chromium.
 */
import type { GpuContext } from '../../src/gpu/device.ts';
import { CommandBatch } from '../../src/gpu/batch.ts';
import { readFloat32, uploadBuffer, createBuffer } from '../../src/gpu/buffers.ts';
import { floatGemm } from '../../src/kernels/gemm.ts';
import { linearRef } from '../../src/quant/conv-linear-ref.ts';
import { randn, maxRelError } from '../helpers/random.ts';

/** [M, K, N]: one row, sizes below and past the 64x64 tile, odd everything. */
export const GEMM_SHAPES: ReadonlyArray<readonly [number, number, number]> = [
  [1, 64, 64],
  [1, 3, 5],
  [7, 33, 65],
  [77, 256, 130],
  [130, 100, 67],
  [65, 17, 1],
];

/** f32 accumulation over K <= 256 of unit normals stays within a few ulps of an f64 reference. */
export const GEMM_TOLERANCE = 1e-5;

export interface GemmCaseResult {
  readonly shape: readonly [number, number, number];
  readonly bias: boolean;
  readonly maxRelError: number;
}

export async function runGemmCase(ctx: GpuContext, shape: readonly [number, number, number], bias: boolean, seed: number): Promise<GemmCaseResult> {
  const [m, k, n] = shape;
  const x = randn(m * k, seed);
  const w = randn(n * k, seed + 1);
  const b = bias ? randn(n, seed + 2) : undefined;
  const expected = linearRef(x, w, b, m, k, n);
  const xb = await uploadBuffer(ctx, x, 'x');
  const wb = await uploadBuffer(ctx, w, 'w');
  const bb = b ? await uploadBuffer(ctx, b, 'bias') : undefined;
  const yb = await createBuffer(ctx, m * n * 4, 'y');
  try {
    const batch = new CommandBatch(ctx, 'gemm test');
    await floatGemm(batch, {
      x: { tensor: { buffer: xb, offset: 0, shape: [m, k], dtype: 'f32' } },
      w: { buffer: wb, offset: 0, shape: [n, k], dtype: 'f32' },
      bias: bb && { buffer: bb, offset: 0, shape: [n], dtype: 'f32' },
      y: { tensor: { buffer: yb, offset: 0, shape: [m, n], dtype: 'f32' } },
    });
    await batch.submit();
    const got = await readFloat32(ctx, yb, 0, m * n);
    return { shape, bias, maxRelError: maxRelError(got, expected) };
  } finally {
    for (const buf of [xb, wb, bb, yb]) buf?.destroy();
  }
}

export async function runAllGemmCases(ctx: GpuContext): Promise<GemmCaseResult[]> {
  const results: GemmCaseResult[] = [];
  for (const [i, shape] of GEMM_SHAPES.entries()) results.push(await runGemmCase(ctx, shape, i % 2 === 0, 100 + i));
  return results;
}

/**
 * The linear reading a row range of a wider input and writing a column range of a wider output (how fused
 * q/k/v outputs are filled); columns outside the range must stay untouched. With `accumulate` the range held
 * random values before, and must end up holding them plus the product.
 */
export async function runGemmBlockCase(ctx: GpuContext, accumulate = false): Promise<{ maxRelError: number; untouchedChanged: number }> {
  const [m, k, n] = [5, 40, 70];
  const [xRow0, xCols] = [2, k];
  const [yCol0, yCols] = [16, n + 24];
  const xAll = randn((m + 3) * xCols, 7);
  const w = randn(n * k, 8);
  const b = randn(n, 9);
  const expected = linearRef(xAll.subarray(xRow0 * xCols, (xRow0 + m) * xCols), w, b, m, k, n);
  const sentinel = -12345;
  const before = new Float32Array(m * yCols).fill(sentinel);
  if (accumulate) {
    // What the output held before: the product is added to it.
    const y0 = randn(m * n, 10);
    for (let r = 0; r < m; r++) for (let c = 0; c < n; c++) before[r * yCols + yCol0 + c] = y0[r * n + c]!;
    for (let i = 0; i < expected.length; i++) expected[i] = Math.fround(expected[i]! + y0[i]!);
  }
  const xb = await uploadBuffer(ctx, xAll, 'x');
  const wb = await uploadBuffer(ctx, w, 'w');
  const bb = await uploadBuffer(ctx, b, 'bias');
  const yb = await uploadBuffer(ctx, before, 'y');
  try {
    const batch = new CommandBatch(ctx, 'gemm block test');
    await floatGemm(batch, {
      x: { tensor: { buffer: xb, offset: 0, shape: [m + 3, xCols], dtype: 'f32' }, row0: xRow0, rows: m },
      w: { buffer: wb, offset: 0, shape: [n, k], dtype: 'f32' },
      bias: { buffer: bb, offset: 0, shape: [n], dtype: 'f32' },
      y: { tensor: { buffer: yb, offset: 0, shape: [m, yCols], dtype: 'f32' }, col0: yCol0, cols: n },
      accumulate,
    });
    await batch.submit();
    const all = await readFloat32(ctx, yb, 0, m * yCols);
    const got = new Float32Array(m * n);
    let untouchedChanged = 0;
    for (let r = 0; r < m; r++) {
      for (let c = 0; c < yCols; c++) {
        const v = all[r * yCols + c]!;
        if (c >= yCol0 && c < yCol0 + n) got[r * n + c - yCol0] = v;
        else if (v !== sentinel) untouchedChanged++;
      }
    }
    return { maxRelError: maxRelError(got, expected), untouchedChanged };
  } finally {
    for (const buf of [xb, wb, bb, yb]) buf.destroy();
  }
}
