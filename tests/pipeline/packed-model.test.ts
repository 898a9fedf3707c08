/**
 * `flux-w4a4 quantize` writes a packed model folder; loading it never re-quantizes (no ConvLinear.fromFloat)
 * and gives bit-identical outputs to quantizing the source while loading, from a multi-shard diffusers folder.
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { makeTinyFlux } from '../../scripts/make-tiny-flux.ts';
import { main } from '../../src/cli/main.ts';
import type { FluxInputs } from '../../src/model/inputs.ts';
import { PACKED_FORMAT, PACKED_FORMAT_VERSION } from '../../src/model/packed-transformer.ts';
import type { QuantPlanOptions } from '../../src/model/precision.ts';
import { FluxTransformer } from '../../src/model/transformer.ts';
import { ConvLinear } from '../../src/nn/conv-linear.ts';
import { FluxPipeline } from '../../src/pipeline/flux-pipeline.ts';
import { openTransformerWeights } from '../../src/pipeline/load.ts';
import { TransformerRunner } from '../../src/pipeline/transformer-runner.ts';
import { openCheckpoint, PACKED_CHECKPOINT_FILE } from '../../src/weights/safetensors.ts';
import { testGpu } from '../helpers/gpu.ts';
import { loadTinyGolden } from '../model/helpers.ts';

let dir: string;
let source: string;
let inputs: FluxInputs;
/** GPU quantization on SwiftShader, on a shared machine. */
const SLOW = 900_000;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flux-w4a4-packed-'));
  source = await makeTinyFlux(join(dir, 'source'), { shards: 3 });
  ({ inputs } = await loadTinyGolden());
}, SLOW);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function forwardFrom(location: string, plan?: QuantPlanOptions): Promise<{ out: Float32Array; packed: boolean }> {
  const ctx = await testGpu();
  const weights = await openTransformerWeights(ctx, location, undefined, plan);
  let model: FluxTransformer;
  try {
    model = await FluxTransformer.load(ctx, weights.source, { quant: weights.plan });
  } finally {
    await weights.close();
  }
  const runner = new TransformerRunner(model);
  try {
    return { out: (await runner.forward(inputs)).out, packed: weights.packed };
  } finally {
    runner.dispose();
    model.destroy();
  }
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

async function folderBytes(path: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(path)) total += (await stat(join(path, name))).size;
  return total;
}

describe('packed models (tiny FLUX, 3-shard diffusers transformer)', () => {
  it('quantize --precision w4a4 --int8-layers: the packed transformer loads without re-quantizing, bit-identical', async () => {
    const out = join(dir, 'w4a4');
    const int8 = 'single_transformer_blocks.*.proj_out';
    expect(await main(['quantize', '--model', source, '--out', out, '--precision', 'w4a4', '--int8-layers', int8])).toBe(0);
    // A loadable folder: every other component copied, the transformer packed.
    expect((await readdir(out)).sort()).toEqual((await readdir(source)).sort());
    expect(await readdir(join(out, 'transformer'))).toEqual(expect.arrayContaining([PACKED_CHECKPOINT_FILE, 'config.json']));
    const reader = await openCheckpoint(join(out, 'transformer', PACKED_CHECKPOINT_FILE));
    expect(reader.metadata.format).toBe(PACKED_FORMAT);
    expect(reader.metadata.format_version).toBe(String(PACKED_FORMAT_VERSION));
    expect(JSON.parse(reader.metadata.source!)).toEqual({ identity: join(source, 'transformer'), label: 'source' });
    expect(reader.info('single_transformer_blocks.0.proj_out.packed').dtype).toBe('U32');
    expect(reader.info('transformer_blocks.0.norm1.linear.weight').dtype).toBe('BF16');
    await reader.close();
    const packedBytes = (await stat(join(out, 'transformer', PACKED_CHECKPOINT_FILE))).size;
    const sourceBytes = (await folderBytes(join(source, 'transformer'))) - (await stat(join(source, 'transformer', 'config.json'))).size;
    console.log(`tiny transformer: source ${sourceBytes} B (bf16, 3 shards), packed w4a4+int8 ${packedBytes} B`);
    expect(packedBytes).toBeLessThan(sourceBytes);

    const reference = await forwardFrom(join(source, 'transformer'), { preset: 'w4a4', overrides: [{ pattern: int8, precision: 'int8' }] });
    const fromFloat = vi.spyOn(ConvLinear, 'fromFloat');
    const packed = await forwardFrom(join(out, 'transformer'));
    expect(fromFloat).not.toHaveBeenCalled();
    fromFloat.mockRestore();
    expect(packed.packed).toBe(true);
    expect(reference.packed).toBe(false);
    expect(bits(packed.out)).toEqual(bits(reference.out));

    // Another precision needs the source; quantizing a packed model again is refused.
    await expect(openTransformerWeights(await testGpu(), join(out, 'transformer'), undefined, { preset: 'mixed' })).rejects.toThrow(/quantized at another precision/);
    expect(await main(['quantize', '--model', join(out, 'transformer'), '--out', join(dir, 'again')])).toBe(1);
  }, SLOW);

  it('FluxPipeline.load of the packed folder generates exactly what quantizing the source gives', async () => {
    const out = join(dir, 'mixed');
    expect(await main(['quantize', '--model', source, '--out', out, '--precision', 'mixed'])).toBe(0);
    const gpu = await testGpu();
    const settings = { prompt: 'a red fox', width: 32, height: 32, steps: 1, seed: 3 };
    const fromSource = await FluxPipeline.load(source, { gpu, precision: 'mixed' });
    const a = await fromSource.generate(settings).finally(() => fromSource.destroy());
    const fromPacked = await FluxPipeline.load(out, { gpu });
    const b = await fromPacked.generate(settings).finally(() => fromPacked.destroy());
    expect(bits(b.latent)).toEqual(bits(a.latent));
    expect(b.rgba).toEqual(a.rgba);
  }, SLOW);
});
