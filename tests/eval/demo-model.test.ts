/** The committed demo model (public/models/flux-demo): folder layout, tokenizers, and the engine's transformer
 * against the reference call recorded from the exported files (tools/train-demo/reference_forward.py). */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '@huggingface/tokenizers';
import { beforeAll, describe, expect, it } from 'vitest';
import { FluxCheckpoint } from '../../src/model/checkpoint.ts';
import { configFromDiffusers, type FluxConfig } from '../../src/model/config.ts';
import { makeQuantPlan } from '../../src/model/precision.ts';
import { FluxTransformer } from '../../src/model/transformer.ts';
import { TransformerRunner } from '../../src/pipeline/transformer-runner.ts';
import { COLOUR_NAMES, SCENE_SIZE, SHAPE_NAMES } from '../../src/eval/scenes.ts';
import { testGpu } from '../helpers/gpu.ts';
import { maxRelError } from '../helpers/random.ts';
import { FLOAT_MATCH_TOLERANCE, openSafetensors } from '../model/helpers.ts';

const MODEL = fileURLToPath(new URL('../../public/models/flux-demo/', import.meta.url));
const REFERENCE = fileURLToPath(new URL('../fixtures/flux-demo/reference.safetensors', import.meta.url));
const readJson = async (path: string): Promise<any> => JSON.parse(await readFile(`${MODEL}${path}`, 'utf8'));

let reference: Map<string, Float32Array>;
let ids: { clip: number[]; t5: number[] };
let prompt: string;

beforeAll(async () => {
  const file = await openSafetensors(REFERENCE);
  reference = new Map();
  for (const name of file.names()) {
    if (name.endsWith('_input_ids')) continue;
    reference.set(name, await file.readFloat32(name));
  }
  const readIds = async (name: string) => [...new BigInt64Array((await file.readTensor(name)).data.buffer)].map(Number);
  ids = { clip: await readIds('clip_input_ids'), t5: await readIds('t5_input_ids') };
  prompt = file.metadata.prompt!;
  await file.close();
});

describe('demo model folder', () => {
  it('has the diffusers FLUX.1-schnell layout and the generation defaults', async () => {
    const index = await readJson('model_index.json');
    expect(index._class_name).toBe('FluxPipeline');
    expect(index.transformer).toEqual(['diffusers', 'FluxTransformer2DModel']);
    const transformer = await readJson('transformer/config.json');
    expect(transformer.guidance_embeds).toBe(false);
    expect((await readJson('vae/config.json')).latent_channels).toBe(16);
    expect((await readJson('scheduler/scheduler_config.json')).use_dynamic_shifting).toBe(false);
    const defaults = await readJson('generation_defaults.json');
    expect(defaults).toMatchObject({ width: SCENE_SIZE, height: SCENE_SIZE, negative_prompt: '', guidance_scale: null });
    expect(defaults.true_cfg_scale).toBeGreaterThan(1);
    expect(defaults.max_sequence_length).toBe(ids.t5.length);
  });

  it('tokenizes captions as the model was trained (every caption word is one token)', async () => {
    const clip = new Tokenizer(await readJson('tokenizer/tokenizer.json'), await readJson('tokenizer/tokenizer_config.json'));
    const t5 = new Tokenizer(await readJson('tokenizer_2/tokenizer.json'), await readJson('tokenizer_2/tokenizer_config.json'));
    const clipConfig = await readJson('text_encoder/config.json');
    const clipIds = clip.encode(prompt).ids;
    expect(clipIds).toEqual(ids.clip.slice(0, clipIds.length));
    expect(ids.clip.slice(clipIds.length).every((id) => id === clipConfig.eos_token_id)).toBe(true);
    const t5Ids = t5.encode(prompt).ids;
    expect(t5Ids).toEqual(ids.t5.slice(0, t5Ids.length));
    expect(ids.t5.slice(t5Ids.length).every((id) => id === 0)).toBe(true);
    for (const word of [...COLOUR_NAMES, ...SHAPE_NAMES, 'background']) {
      expect(clip.encode(word).ids.length, word).toBe(3); // BOS word EOS
      expect(t5.encode(word).ids.length, word).toBe(2); // word </s>
    }
  });
});

describe('demo transformer on the GPU, fp32', () => {
  let config: FluxConfig;
  beforeAll(async () => {
    config = configFromDiffusers(await readJson('transformer/config.json'));
  });

  it('matches the reference call from the exported weights', async () => {
    const ctx = await testGpu();
    const checkpoint = FluxCheckpoint.open(await openSafetensors(`${MODEL}transformer/diffusion_pytorch_model.safetensors`), config);
    const model = await FluxTransformer.load(ctx, checkpoint, { quant: makeQuantPlan(config, { preset: 'float' }) });
    await checkpoint.close();
    const runner = new TransformerRunner(model);
    try {
      const { out } = await runner.forward({
        img: reference.get('img')!, imgIds: reference.get('img_ids')!, txt: reference.get('txt')!, txtIds: reference.get('txt_ids')!,
        timestep: reference.get('timesteps')![0]!, y: reference.get('y')!,
      });
      expect(maxRelError(out, reference.get('out')!)).toBeLessThanOrEqual(FLOAT_MATCH_TOLERANCE);
    } finally {
      runner.dispose();
      model.destroy();
    }
  });
});
