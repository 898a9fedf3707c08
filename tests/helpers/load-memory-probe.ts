/**
 * Run as `node --expose-gc --import tsx tests/helpers/load-memory-probe.ts <checkpoint>`: loads the transformer
 * (fp32, so no quantization work) and prints, as JSON, the JS memory (heap + ArrayBuffers) live above the baseline
 * at each tensor read, after a full GC, and the largest tensor read. A separate process, for --expose-gc.
 */
import { GpuContext } from '../../src/gpu/device.ts';
import { makeQuantPlan } from '../../src/model/precision.ts';
import { FluxTransformer } from '../../src/model/transformer.ts';
import { openTransformerCheckpoint } from '../../src/pipeline/load.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
const live = () => {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

const ctx = await GpuContext.create();
let baseline = 0;
let peak = 0;
let largest = 0;
let total = 0;
let reads = 0;
const checkpoint = await openTransformerCheckpoint(process.argv[2]!, undefined, {
  onRead: (bytes) => {
    reads++;
    total += bytes;
    largest = Math.max(largest, bytes);
    peak = Math.max(peak, live() - baseline);
  },
});
baseline = live();
const model = await FluxTransformer.load(ctx, checkpoint, { quant: makeQuantPlan(checkpoint.config, { preset: 'fp32' }) });
await checkpoint.close();
model.destroy();
ctx.destroy();
process.stdout.write(`${JSON.stringify({ peakAboveBaseline: peak, largestTensor: largest, totalBytes: total, reads })}\n`);
