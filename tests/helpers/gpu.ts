/** One GPU context per test worker, created on first use. */
import { expect } from 'vitest';
import { readFloat32 } from '../../src/gpu/buffers.ts';
import { GpuContext } from '../../src/gpu/device.ts';

let context: Promise<GpuContext> | undefined;

export function testGpu(): Promise<GpuContext> {
  context ??= GpuContext.create();
  return context;
}

/**
 * Reads columns [col0, col0 + cols) of a row-major [rows, wide] f32 output a layer wrote into, checking that the
 * columns on either side still hold `sentinel` (the layer wrote only its range).
 */
export async function readColumnRange(ctx: GpuContext, y: GPUBuffer, rows: number, wide: number, col0: number, cols: number, sentinel: number): Promise<Float32Array> {
  const all = await readFloat32(ctx, y, 0, rows * wide);
  const got = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    got.set(all.subarray(r * wide + col0, r * wide + col0 + cols), r * cols);
    expect(all[r * wide + col0 - 1]).toBe(sentinel);
    expect(all[r * wide + col0 + cols]).toBe(sentinel);
  }
  return got;
}
