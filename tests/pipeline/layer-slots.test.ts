/**
 * Layer slots of a loaded transformer: each file tensor is read once under every preset, one slot can be rebuilt
 * at another precision (or from its own packed weights) without touching the others, and the result equals a
 * model loaded with that precision from scratch.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { FluxCheckpoint } from '../../src/model/checkpoint.ts';
import type { FluxConfig } from '../../src/model/config.ts';
import type { FluxInputs } from '../../src/model/inputs.ts';
import { PRECISION_PRESETS, type PrecisionOverride, type PrecisionPreset } from '../../src/model/precision.ts';
import type { FluxTransformer } from '../../src/model/transformer.ts';
import { checkpointWeights } from '../../src/model/weight-loader.ts';
import type { LinearLayer } from '../../src/nn/linear.ts';
import { loadTransformer } from '../../src/pipeline/load.ts';
import { TransformerRunner } from '../../src/pipeline/transformer-runner.ts';
import type { TensorReader } from '../../src/weights/safetensors.ts';
import { testGpu } from '../helpers/gpu.ts';
import { BFL_TRANSFORMER, loadTinyGolden, openSafetensors } from '../model/helpers.ts';

let config: FluxConfig;
let inputs: FluxInputs;

beforeAll(async () => {
  ({ config, inputs } = await loadTinyGolden());
});

/** The BFL file (fused qkv and linear1 tensors), counting reads of each file tensor. */
async function countingCheckpoint(): Promise<{ checkpoint: FluxCheckpoint; reads: Map<string, number> }> {
  const file = await openSafetensors(BFL_TRANSFORMER);
  const reads = new Map<string, number>();
  const reader: TensorReader = Object.assign(Object.create(file) as TensorReader, {
    readTensor: (name: string) => {
      reads.set(name, (reads.get(name) ?? 0) + 1);
      return file.readTensor(name);
    },
  });
  return { checkpoint: FluxCheckpoint.open(reader, config), reads };
}

async function load(checkpoint: FluxCheckpoint, preset: PrecisionPreset, overrides: PrecisionOverride[] = []): Promise<FluxTransformer> {
  return loadTransformer(await testGpu(), checkpoint, { preset, overrides });
}

async function forwardOut(model: FluxTransformer): Promise<Float32Array> {
  const runner = new TransformerRunner(model);
  try {
    return (await runner.forward(inputs)).out;
  } finally {
    runner.dispose();
  }
}

/** The middle part of a single block's fused linear1 (q | k | v | mlp): swapping it must keep its column range. */
const SWAPPED = 'single_transformer_blocks.0.attn.to_v';

describe('layer slots (flux-tiny-a)', () => {
  it.each(PRECISION_PRESETS)('%s reads each file tensor exactly once', async (preset) => {
    const { checkpoint, reads } = await countingCheckpoint();
    const model = await load(checkpoint, preset);
    model.destroy();
    await checkpoint.close();
    expect([...reads].filter(([, n]) => n !== 1)).toEqual([]);
    expect(reads.size).toBe(checkpoint.reader.names().length);
  });

  it('rebuilding one slot changes only that layer and equals a model loaded with that precision', async () => {
    const ctx = await testGpu();
    const { checkpoint } = await countingCheckpoint();
    const model = await load(checkpoint, 'w4a4');
    const fromScratch = await load(checkpoint, 'w4a4', [{ pattern: SWAPPED, precision: 'int8' }]);
    try {
      const slots = model.layers();
      expect(slots.size).toBe(fromScratch.layers().size);
      const before = new Map<string, LinearLayer>([...slots].map(([name, slot]) => [name, slot.layer]));
      const w4a4 = await forwardOut(model);

      const slot = slots.get(SWAPPED)!;
      expect(slot.precision).toBe('int4');
      const packedInt4 = await slot.exportPacked();
      await slot.rebuild('int8', checkpointWeights(ctx, checkpoint));
      expect(slot.precision).toBe('int8');
      for (const [name, s] of slots) expect(s.layer === before.get(name), name).toBe(name !== SWAPPED);
      const swapped = await forwardOut(model);
      expect(swapped).not.toEqual(w4a4);
      expect(swapped).toEqual(await forwardOut(fromScratch));

      // Back from the exported packed INT4 weights, with no float weights involved: the first output again.
      await slot.rebuild('int4', async () => ({ kind: 'packed', packed: packedInt4 }));
      expect(await forwardOut(model)).toEqual(w4a4);
    } finally {
      model.destroy();
      fromScratch.destroy();
      await checkpoint.close();
    }
  });

  it('refuses packed weights of another quantization and keeps the old layer', async () => {
    const { checkpoint } = await countingCheckpoint();
    const model = await load(checkpoint, 'w4a4');
    try {
      const slot = model.layers().get(SWAPPED)!;
      const old = slot.layer;
      const packed = await slot.exportPacked();
      await expect(slot.rebuild({ precision: 'int4', groupSize: 64 }, async () => ({ kind: 'packed', packed }))).rejects.toThrow(/packed weights are int4 regular 256/);
      expect(slot.layer).toBe(old);
      await expect(model.layers().get('x_embedder')!.exportPacked()).rejects.toThrow(/float layer/);
    } finally {
      model.destroy();
      await checkpoint.close();
    }
  });
});
