/**
 * f32 GEMM against its CPU reference on awkward shapes. Shared by the Node test and the browser page
 * (e2e), so the same cases run on Dawn and in Chromium.
 */
import type { GpuContext } from '../../src/gpu/device.ts';
import { CommandBatch } from '../../src/gpu/batch.ts';
import { readFloat32, uploadBuffer, createBuffer } from '../../src/gpu/buffers.ts';
import { linearF32 } from '../../src/kernels/gemm.ts';
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
    await linearF32(batch, {
      x: { buffer: xb, offset: 0, shape: [m, k], dtype: 'f32' },
      w: { buffer: wb, offset: 0, shape: [n, k], dtype: 'f32' },
      bias: bb && { buffer: bb, offset: 0, shape: [n], dtype: 'f32' },
      y: { buffer: yb, offset: 0, shape: [m, n], dtype: 'f32' },
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
