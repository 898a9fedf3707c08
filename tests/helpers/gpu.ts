/** One GPU context per test worker, created on first use. */
import { GpuContext } from '../../src/gpu/device.ts';

let context: Promise<GpuContext> | undefined;

export function testGpu(): Promise<GpuContext> {
  context ??= GpuContext.create();
  return context;
}
