/** The memory planner on a header-only FLUX.1-dev (real shapes, sparse files: no tensor data exists or is read). */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFileSource } from '../../src/platform/node.ts';
import type { ByteSource } from '../../src/platform/types.ts';
import { FLUX1_DEFAULTS } from '../../src/model/config.ts';
import { FluxCheckpoint } from '../../src/model/checkpoint.ts';
import { planMemory, type PlanSources } from '../../src/pipeline/plan.ts';
import { SafetensorsFile } from '../../src/weights/safetensors.ts';
import { cli } from '../cli/helpers.ts';
import { bflTensorShapes } from '../helpers/flux-checkpoints.ts';
import { clipLTensors, fluxAeDecoderTensors, t5XxlTensors, writeHeaderOnly } from '../helpers/header-only.ts';

const GIB = 2 ** 30;
/** docs/flux-architecture.md §8.7: the dev transformer's total tensor data (2 bytes a parameter). */
const FLUX_DEV_BF16_BYTES = 23_802_816_640;

let dir: string;
const headerBytes = new Map<string, number>();
const FILES = {
  transformer: 'flux1-dev.safetensors',
  vae: 'ae.safetensors',
  clip: 'text_encoder/model.safetensors',
  t5: 'text_encoder_2/model.safetensors',
} as const;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flux-plan-'));
  await mkdir(join(dir, 'text_encoder'));
  await mkdir(join(dir, 'text_encoder_2'));
  await writeFile(join(dir, 'model_index.json'), JSON.stringify({ _class_name: 'FluxPipeline' }));
  headerBytes.set(FILES.transformer, await writeHeaderOnly(join(dir, FILES.transformer), bflTensorShapes(FLUX1_DEFAULTS), 'BF16'));
  headerBytes.set(FILES.vae, await writeHeaderOnly(join(dir, FILES.vae), fluxAeDecoderTensors(), 'F32'));
  headerBytes.set(FILES.clip, await writeHeaderOnly(join(dir, FILES.clip), clipLTensors(), 'F16'));
  headerBytes.set(FILES.t5, await writeHeaderOnly(join(dir, FILES.t5), t5XxlTensors(), 'BF16'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Opens every component through a source that counts the bytes read. */
async function countingSources(): Promise<{ sources: PlanSources; read: Map<string, number> }> {
  const read = new Map<string, number>();
  const open = async (file: string) => {
    const source = await openFileSource(join(dir, file));
    const counting: ByteSource = {
      ...source,
      read: (offset, length) => {
        read.set(file, (read.get(file) ?? 0) + length);
        return source.read(offset, length);
      },
    };
    return SafetensorsFile.open(counting);
  };
  const sources = {
    transformer: FluxCheckpoint.open(await open(FILES.transformer)),
    vae: await open(FILES.vae),
    clip: await open(FILES.clip),
    t5: await open(FILES.t5),
  };
  return { sources, read };
}

async function closeAll(s: PlanSources): Promise<void> {
  await Promise.all([s.transformer.close(), s.vae?.close(), s.clip?.close(), s.t5?.close()]);
}

describe('memory plan of FLUX.1-dev from its headers', () => {
  it('w4a4 at 1024²: stored transformer ≥ 3.9x smaller than BF16, ≤ 5 GiB resident, and no tensor data read', async () => {
    const { sources, read } = await countingSources();
    try {
      const plan = planMemory(sources, { precision: 'w4a4' });
      expect(plan.sourceBytes).toBe(FLUX_DEV_BF16_BYTES);
      expect(plan.sourceBytes / plan.weightBytes).toBeGreaterThanOrEqual(3.9);
      expect(plan.residentBytes).toBeLessThanOrEqual(5 * GIB);
      expect(plan.steps).toBe(28);
      expect(plan.components.map((c) => c.name)).toEqual(['transformer', 'modulation', 't5', 'clip', 'vae', 'activations']);
      // Modulation: 3.247 B weights at half a byte + 12 bytes for each of 1.06 M rows (1.636 GB), plus the
      // conditioning embedders' 32 M parameters in bf16 (0.065 GB); released before denoising.
      const modulation = plan.components.find((c) => c.name === 'modulation')!;
      expect(modulation.gpuBytes).toBeGreaterThan(1.69e9);
      expect(modulation.gpuBytes).toBeLessThan(1.71e9);
      expect(modulation.residentBytes).toBe(0);
      expect(plan.components.find((c) => c.name === 't5')!.sourceBytes).toBe(9_524_621_312);
      // Only the 8-byte length and the JSON header of each file were read.
      for (const [file, bytes] of headerBytes) expect(read.get(file), file).toBe(bytes);
      // At WebGPU's default 128 MiB binding, the 1024² fused-projection activation [4608, 21504] f32 must be split.
      expect(plan.shards).toContainEqual({ tensor: 'activation qkv', bytes: 4608 * 21504 * 4, shards: 3 });
    } finally {
      await closeAll(sources);
    }
  });

  it('orders the presets by size: float ≈ the BF16 source, w8a8 about half, w4a4 about a quarter', async () => {
    const { sources } = await countingSources();
    try {
      const bytes = (precision: 'float' | 'w8a8' | 'mixed' | 'w4a4') => planMemory(sources, { precision }).weightBytes;
      expect(bytes('float') / FLUX_DEV_BF16_BYTES).toBeCloseTo(1, 2);
      expect(bytes('w8a8') / FLUX_DEV_BF16_BYTES).toBeCloseTo(0.5, 2);
      expect(bytes('w4a4') / FLUX_DEV_BF16_BYTES).toBeCloseTo(0.25, 2);
      expect(bytes('mixed')).toBeGreaterThan(bytes('w4a4'));
      expect(bytes('mixed')).toBeLessThan(bytes('w8a8'));
    } finally {
      await closeAll(sources);
    }
  });

  it('over a budget: blocks streamed from CPU memory, resident and peak within the budget; too small a budget does not fit', async () => {
    const { sources } = await countingSources();
    const transformerOnly = { transformer: sources.transformer };
    try {
      const full = planMemory(transformerOnly, { precision: 'w4a4' });
      expect(full.offload).toBeUndefined();
      const plan = planMemory(transformerOnly, { precision: 'w4a4', budget: 3 * GIB });
      expect(plan.fits).toBe(true);
      expect(plan.offload!.streamedBlocks).toBeGreaterThan(0);
      expect(plan.offload!.residentBlocks + plan.offload!.streamedBlocks).toBe(19 + 38);
      expect(plan.residentBytes).toBeLessThanOrEqual(3 * GIB);
      expect(plan.peakBytes).toBeLessThanOrEqual(3 * GIB);
      expect(plan.residentBytes).toBeLessThan(full.residentBytes);
      expect(plan.offload!.cpuBytes).toBe(plan.offload!.streamedBytesPerStep);
      expect(planMemory(transformerOnly, { precision: 'w4a4', budget: 2 ** 28 }).fits).toBe(false);
    } finally {
      await closeAll(sources);
    }
  });

  it('flux-w4a4 plan --json gives the same numbers as the library; the table names every component', async () => {
    const { sources } = await countingSources();
    const expected = planMemory(sources, { precision: 'w4a4', width: 768, height: 1344 });
    await closeAll(sources);
    const json = await cli('plan', '--model', dir, '--precision', 'w4a4', '--width', '768', '--height', '1344', '--json');
    expect(json.stderr).toBe('');
    expect(json.code).toBe(0);
    const got = JSON.parse(json.stdout) as typeof expected;
    expect({ source: got.sourceBytes, weights: got.weightBytes, resident: got.residentBytes, peak: got.peakBytes }).toEqual({
      source: expected.sourceBytes,
      weights: expected.weightBytes,
      resident: expected.residentBytes,
      peak: expected.peakBytes,
    });
    const table = await cli('plan', '--model', dir, '--precision', 'w4a4');
    expect(table.code).toBe(0);
    for (const name of ['transformer', 'modulation', 't5', 'clip', 'vae', 'activations']) expect(table.stdout).toMatch(new RegExp(`^${name} `, 'm'));
    const bad = await cli('plan', '--model', dir, '--budget', 'lots');
    expect(bad.code).toBe(2);
  });
});
