import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TextEncoders } from '../../src/pipeline/text-encoders.ts';
import { testGpu } from '../helpers/gpu.ts';
import { maxRelError, relativeL2Error } from '../helpers/random.ts';
import { CLIP_DIR, loadTextGolden, T5_DIR, type TextGolden } from '../helpers/text-golden.ts';
import { encoderVariant } from '../helpers/text-variants.ts';
import { clipReference, t5Reference, type ReferenceLinear } from '../../src/model/reference/text-ref.ts';
import { clipConfigFromJson, t5ConfigFromJson } from '../../src/model/text-config.ts';
import { fakeQuantLinearRef } from '../../src/quant/conv-linear-ref.ts';
import { openCheckpoint } from '../../src/weights/safetensors.ts';
import { readJson } from '../../src/weights/sources.ts';

/** The golden README's float32 match. */
const FLOAT_TOLERANCE = 1e-4;
/** A quantized output may lose at most this much more than the fake-quantized reference. */
const QUANT_RATIO = 1.1;

let golden: TextGolden;
beforeAll(async () => {
  golden = await loadTextGolden();
});

describe('text encoders on the GPU vs the text-tiny-a golden (float32)', () => {
  let encoders: TextEncoders;
  beforeAll(async () => {
    encoders = await TextEncoders.load(await testGpu(), { clip: CLIP_DIR, t5: T5_DIR }, { precision: 'float' });
  });
  afterAll(() => encoders?.destroy());

  it('t5_hidden, clip_hidden and clip_pooled within 1e-4', async () => {
    const out = await encoders.encodeIds({ t5: golden.t5Ids, clip: golden.clipIds });
    expect(maxRelError(out.t5Hidden!, golden.t5Hidden)).toBeLessThan(FLOAT_TOLERANCE);
    expect(maxRelError(out.clipHidden!, golden.clipHidden)).toBeLessThan(FLOAT_TOLERANCE);
    expect(maxRelError(out.clipPooled!, golden.clipPooled)).toBeLessThan(FLOAT_TOLERANCE);
  });
});

/**
 * Quantized encoders against the CPU references with fake-quantized ConvRot linears (regular Hadamard 256): the
 * GPU path must lose no more than the method itself (1.1× the reference's error against float, the golden
 * README's rule for quantized outputs). Measured (relative L2 vs float): w8a8 t5_hidden 0.055, clip_pooled 0.011;
 * w4a4 t5_hidden 0.54, clip_pooled 0.19.
 */
describe('quantized text encoders vs the fake-quantized CPU reference (golden model)', () => {
  for (const [precision, format] of [['w8a8', 'int8'], ['w4a4', 'int4']] as const) {
    it(`${precision}: t5_hidden and clip_pooled lose no more than ConvRot itself`, async () => {
      const encoders = await TextEncoders.load(await testGpu(), { clip: CLIP_DIR, t5: T5_DIR }, { precision });
      const t5Reader = await openCheckpoint(T5_DIR);
      const clipReader = await openCheckpoint(CLIP_DIR);
      try {
        const out = await encoders.encodeIds({ t5: golden.t5Ids, clip: golden.clipIds });
        const fakeQuant: ReferenceLinear = (x, rows, w, b) => fakeQuantLinearRef(x, w, b, rows, w.length / b.length, b.length, { rotation: 'regular', groupSize: 256, format });
        const t5Ref = await t5Reference(t5Reader, t5ConfigFromJson(await readJson(`${T5_DIR}/config.json`)), golden.t5Ids, fakeQuant);
        const clipRef = await clipReference(clipReader, clipConfigFromJson(await readJson(`${CLIP_DIR}/config.json`)), golden.clipIds, fakeQuant);
        expect(relativeL2Error(out.t5Hidden!, golden.t5Hidden)).toBeLessThan(QUANT_RATIO * relativeL2Error(t5Ref, golden.t5Hidden));
        expect(relativeL2Error(out.clipPooled!, golden.clipPooled)).toBeLessThan(QUANT_RATIO * relativeL2Error(clipRef.pooled, golden.clipPooled));
        // The GPU's integer path is the reference's arithmetic: only rare rounding ties of activations differ.
        expect(relativeL2Error(out.clipPooled!, clipRef.pooled)).toBeLessThan(1e-5);
        expect(relativeL2Error(out.t5Hidden!, t5Ref)).toBeLessThan(0.02);
      } finally {
        encoders.destroy();
        await t5Reader.close();
        await clipReader.close();
      }
    });
  }
});

describe('text encoder loading: dtypes, key layouts, shards', () => {
  it('T5 as F32 shards with the embedding under encoder.embed_tokens.weight, CLIP as F16, match the golden', async () => {
    const t5 = await encoderVariant(T5_DIR, { dtype: 'F32', rename: { 'shared.weight': 'encoder.embed_tokens.weight' }, shards: 3 });
    const clip = await encoderVariant(CLIP_DIR, { dtype: 'F16' });
    const encoders = await TextEncoders.load(await testGpu(), { clip, t5 }, { precision: 'float' });
    try {
      const out = await encoderIdsOf(encoders, golden);
      // BF16 → F32 is exact; BF16 → F16 is exact for these magnitudes.
      expect(maxRelError(out.t5Hidden!, golden.t5Hidden)).toBeLessThan(FLOAT_TOLERANCE);
      expect(maxRelError(out.clipPooled!, golden.clipPooled)).toBeLessThan(FLOAT_TOLERANCE);
    } finally {
      encoders.destroy();
    }
  });

  it('T5 at 300 tokens (beyond the max distance 128, every bucket in use) matches the CPU reference', async () => {
    const encoders = await TextEncoders.load(await testGpu(), { t5: T5_DIR }, { precision: 'float' });
    const reader = await openCheckpoint(T5_DIR);
    try {
      const ids = Int32Array.from({ length: 300 }, (_, i) => (i * 37 + 11) % 1000);
      const config = t5ConfigFromJson(await readJson(`${T5_DIR}/config.json`));
      const expected = await t5Reference(reader, config, ids);
      const got = (await encoders.encodeIds({ t5: ids })).t5Hidden!;
      expect(maxRelError(got, expected)).toBeLessThan(FLOAT_TOLERANCE);
    } finally {
      encoders.destroy();
      await reader.close();
    }
  });
});

describe('text encoder errors: one clear line', () => {
  it('ids outside the vocabulary', async () => {
    const encoders = await TextEncoders.load(await testGpu(), { clip: CLIP_DIR }, { precision: 'float' });
    try {
      const ids = golden.clipIds.slice();
      ids[3] = 1000;
      await expect(encoders.encodeIds({ clip: ids })).rejects.toThrow('CLIP ids: id 1000 at position 3 is outside the vocabulary (0..999)');
      await expect(encoders.encodeIds({ t5: golden.t5Ids })).rejects.toThrow(/T5 ids were given but no T5 encoder was loaded/);
    } finally {
      encoders.destroy();
    }
  });

  it('a config that does not match the weights', async () => {
    const t5 = await encoderVariant(T5_DIR, { dtype: 'BF16', config: { d_ff: 128 } });
    await expect(TextEncoders.load(await testGpu(), { t5 })).rejects.toThrow(/"encoder.block.0.layer.1.DenseReluDense.wi_0.weight" is \[160,64\], but config.json implies \[128,64\]/);
  });

  it('a checkpoint without a T5 embedding', async () => {
    const t5 = await encoderVariant(T5_DIR, { dtype: 'BF16', rename: { 'shared.weight': 'embedding.weight' } });
    await expect(TextEncoders.load(await testGpu(), { t5 })).rejects.toThrow(/no T5 token embedding \(shared.weight or encoder.embed_tokens.weight\)/);
  });
});

function encoderIdsOf(encoders: TextEncoders, g: TextGolden) {
  return encoders.encodeIds({ t5: g.t5Ids, clip: g.clipIds });
}

describe('CLIP pooling position', () => {
  it("a legacy config (eos_token_id 2, as FLUX.1's text_encoder/) pools at the largest id, the real EOS", async () => {
    const clip = await encoderVariant(CLIP_DIR, { dtype: 'BF16', config: { eos_token_id: 2 } });
    const encoders = await TextEncoders.load(await testGpu(), { clip }, { precision: 'float' });
    try {
      const out = await encoders.encodeIds({ clip: golden.clipIds });
      expect(maxRelError(out.clipPooled!, golden.clipPooled)).toBeLessThan(FLOAT_TOLERANCE);
    } finally {
      encoders.destroy();
    }
  });
});
