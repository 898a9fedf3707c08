import { afterAll, describe, expect, it } from 'vitest';
import { normalizeGrid } from '../../src/gpu/batch.ts';
import { GpuContext } from '../../src/gpu/device.ts';
import { QUANT_CHUNK_CPU, quantChunk } from '../../src/kernels/convrot.ts';
import { testGpu } from '../helpers/gpu.ts';
import { QUANT_CASES, runQuantCase, type QuantCase } from './convrot-cases.ts';

const NO_MISMATCHES = { wordMismatches: 0, scaleMismatches: 0, sumMismatches: 0 };

const caseName = (c: QuantCase): string =>
  `${c.role} ${c.rows} x ${c.cols} ${c.q.format} ${c.q.rotation} ${c.q.groupSize} from ${c.source}${c.zeroRows ? ' with zero rows' : ''}`;

describe('convrot_quant (Node, Dawn): rotate + quantize + pack rows as the CPU reference', () => {
  for (const [i, c] of QUANT_CASES.entries()) {
    it(caseName(c), async () => {
      expect(await runQuantCase(await testGpu(), c, 1000 + i)).toEqual(NO_MISMATCHES);
    });
  }
});

/** The WebGPU defaults (what an adapter may offer and no more). */
const DEFAULT_WORKGROUP_STORAGE = 16384;
const DEFAULT_WORKGROUPS_PER_DIMENSION = 65535;

describe('convrot_quant on a device with the WebGPU default limits', () => {
  let ctx: Promise<GpuContext> | undefined;
  const defaultLimits = () =>
    (ctx ??= GpuContext.create({
      limits: { maxComputeWorkgroupStorageSize: DEFAULT_WORKGROUP_STORAGE, maxComputeWorkgroupsPerDimension: DEFAULT_WORKGROUPS_PER_DIMENSION },
    }));
  afterAll(async () => (await ctx)?.destroy());

  it('chooses chunks of whole groups that fit 16 KiB with its atomics', () => {
    for (const groupSize of [4, 16, 256, 1024, 2048]) {
      const chunk = quantChunk(DEFAULT_WORKGROUP_STORAGE, { format: 'int4', rotation: 'regular', groupSize });
      expect(chunk % groupSize).toBe(0);
      expect(chunk * 4 + 32).toBeLessThanOrEqual(DEFAULT_WORKGROUP_STORAGE);
    }
    expect(quantChunk(DEFAULT_WORKGROUP_STORAGE, { format: 'int4', rotation: 'regular', groupSize: 256 })).toBe(3840);
    // A larger limit takes a FLUX row of K = 15360 in one chunk.
    expect(quantChunk(65536, { format: 'int4', rotation: 'regular', groupSize: 256 })).toBe(16128);
    // A CPU device takes short chunks (they compile faster there), but never less than one group.
    expect(quantChunk(65536, { format: 'int4', rotation: 'regular', groupSize: 256 }, QUANT_CHUNK_CPU)).toBe(1024);
    expect(quantChunk(65536, { format: 'int8', rotation: 'sylvester', groupSize: 2048 }, QUANT_CHUNK_CPU)).toBe(2048);
  });

  const cases: QuantCase[] = [
    // 15360 values are 4 chunks of 3840 at the default limit (two passes over the row).
    { rows: 3, cols: 15360, q: { format: 'int4', rotation: 'regular', groupSize: 256 }, role: 'activation', source: 'f32' },
    { rows: 5, cols: 4096, q: { format: 'int8', rotation: 'sylvester', groupSize: 2048 }, role: 'weight', source: 'bf16' },
  ];
  for (const [i, c] of cases.entries()) {
    it(caseName(c), async () => {
      expect(await runQuantCase(await defaultLimits(), c, 2000 + i)).toEqual(NO_MISMATCHES);
    });
  }

  it('quantizes 65 600 rows, one workgroup each, through the dispatch split past 65 535 workgroups', async () => {
    const device = await defaultLimits();
    const rows = 65600;
    expect(normalizeGrid(rows, device.limits.maxComputeWorkgroupsPerDimension)).toEqual([32800, 2, 1]);
    const c: QuantCase = { rows, cols: 16, q: { format: 'int8', rotation: 'regular', groupSize: 16 }, role: 'activation', source: 'f32' };
    expect(await runQuantCase(device, c, 3000)).toEqual(NO_MISMATCHES);
  });
});
