/**
 * Builds a tiny FLUX.1-dev folder in the complete diffusers layout for tests and demos:
 *   npx tsx scripts/make-tiny-flux.ts <out-dir> [--shards N]
 * transformer/ and vae/ are the golden tiny models (random weights, tests/fixtures/flux-tiny-a); text_encoder/
 * (CLIP text model, the real 49408-token vocabulary) and text_encoder_2/ (T5 encoder) get seeded random
 * weights sized to the transformer (CLIP hidden = pooled dim 64, T5 d_model = context dim 128); tokenizer/
 * holds the real CLIP tokenizer files, tokenizer_2/ a small T5 Unigram tokenizer (max length 12).
 */
import { cp, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeSafetensors, type TensorToWrite } from '../src/weights/safetensors-writer.ts';
import { Xoshiro128 } from '../src/pipeline/noise.ts';
import { openFileSource } from '../src/platform/node.ts';
import { SafetensorsFile } from '../src/weights/safetensors.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const FIXTURES = join(ROOT, 'tests/fixtures');

const CLIP = { hidden: 64, intermediate: 160, heads: 4, layers: 2, vocab: 49408, positions: 77, bos: 49406, eos: 49407 };
const T5 = { dModel: 128, dKv: 16, heads: 4, dFf: 160, layers: 2, vocab: 32, buckets: 32 };

function tensorMaker(seed: number) {
  const rng = new Xoshiro128(seed);
  const tensors: TensorToWrite[] = [];
  const add = (name: string, shape: number[], fill: 'random' | 'ones' | 'zeros', scale = 1): void => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (fill === 'ones') data.fill(1);
    else if (fill === 'random') for (let i = 0; i < data.length; i++) data[i] = rng.nextSigned() * scale;
    tensors.push({ name, dtype: 'F32', shape, data: new Uint8Array(data.buffer) });
  };
  return { tensors, add };
}

function clipWeights(): Uint8Array {
  const { tensors, add } = tensorMaker(1);
  const h = CLIP.hidden;
  const linear = (name: string, out: number, inp: number) => {
    add(`${name}.weight`, [out, inp], 'random', 1 / Math.sqrt(inp));
    add(`${name}.bias`, [out], 'random', 0.02);
  };
  add('text_model.embeddings.token_embedding.weight', [CLIP.vocab, h], 'random', 0.5);
  add('text_model.embeddings.position_embedding.weight', [CLIP.positions, h], 'random', 0.1);
  for (let i = 0; i < CLIP.layers; i++) {
    const p = `text_model.encoder.layers.${i}`;
    for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) linear(`${p}.self_attn.${proj}`, h, h);
    for (const norm of ['layer_norm1', 'layer_norm2']) {
      add(`${p}.${norm}.weight`, [h], 'ones');
      add(`${p}.${norm}.bias`, [h], 'zeros');
    }
    linear(`${p}.mlp.fc1`, CLIP.intermediate, h);
    linear(`${p}.mlp.fc2`, h, CLIP.intermediate);
  }
  add('text_model.final_layer_norm.weight', [h], 'ones');
  add('text_model.final_layer_norm.bias', [h], 'zeros');
  return encodeSafetensors(tensors, { format: 'pt' });
}

function t5Weights(): Uint8Array {
  const { tensors, add } = tensorMaker(2);
  const { dModel: d, dFf: ff } = T5;
  const inner = T5.heads * T5.dKv;
  add('shared.weight', [T5.vocab, d], 'random', 1);
  for (let i = 0; i < T5.layers; i++) {
    const p = `encoder.block.${i}.layer`;
    for (const proj of ['q', 'k', 'v']) add(`${p}.0.SelfAttention.${proj}.weight`, [inner, d], 'random', 1 / Math.sqrt(d));
    add(`${p}.0.SelfAttention.o.weight`, [d, inner], 'random', 1 / Math.sqrt(inner));
    if (i === 0) add(`${p}.0.SelfAttention.relative_attention_bias.weight`, [T5.buckets, T5.heads], 'random', 0.5);
    add(`${p}.0.layer_norm.weight`, [d], 'ones');
    add(`${p}.1.DenseReluDense.wi_0.weight`, [ff, d], 'random', 1 / Math.sqrt(d));
    add(`${p}.1.DenseReluDense.wi_1.weight`, [ff, d], 'random', 1 / Math.sqrt(d));
    add(`${p}.1.DenseReluDense.wo.weight`, [d, ff], 'random', 1 / Math.sqrt(ff));
    add(`${p}.1.layer_norm.weight`, [d], 'ones');
  }
  add('encoder.final_layer_norm.weight', [d], 'ones');
  return encodeSafetensors(tensors, { format: 'pt' });
}

const json = (value: unknown) => JSON.stringify(value, null, 2) + '\n';

/**
 * Splits a folder's transformer into `count` shards plus the diffusers index, as multi-GB checkpoints come
 * (`diffusion_pytorch_model-0000i-of-0000n.safetensors`, `diffusion_pytorch_model.safetensors.index.json`).
 */
async function shardTransformer(out: string, count: number): Promise<void> {
  const dir = join(out, 'transformer');
  const single = join(dir, 'diffusion_pytorch_model.safetensors');
  const file = await SafetensorsFile.open(await openFileSource(single));
  const names = file.names();
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  try {
    for (let i = 0; i < count; i++) {
      const shard = `diffusion_pytorch_model-${String(i + 1).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.safetensors`;
      const tensors: TensorToWrite[] = [];
      for (const name of names.slice(Math.floor((i * names.length) / count), Math.floor(((i + 1) * names.length) / count))) {
        tensors.push({ name, ...(await file.readTensor(name)) });
        weightMap[name] = shard;
        totalSize += file.info(name).byteLength;
      }
      await writeFile(join(dir, shard), encodeSafetensors(tensors));
    }
  } finally {
    await file.close();
  }
  await writeFile(join(dir, 'diffusion_pytorch_model.safetensors.index.json'), json({ metadata: { total_size: totalSize }, weight_map: weightMap }));
  await rm(single);
}

/** Writes the folder (its transformer in `shards` files when given); returns its path. */
export async function makeTinyFlux(out: string, options: { readonly shards?: number } = {}): Promise<string> {
  for (const dir of ['text_encoder', 'text_encoder_2', 'tokenizer', 'tokenizer_2', 'scheduler']) await mkdir(join(out, dir), { recursive: true });
  await writeFile(
    join(out, 'model_index.json'),
    json({
      _class_name: 'FluxPipeline',
      scheduler: ['diffusers', 'FlowMatchEulerDiscreteScheduler'],
      text_encoder: ['transformers', 'CLIPTextModel'],
      text_encoder_2: ['transformers', 'T5EncoderModel'],
      tokenizer: ['transformers', 'CLIPTokenizer'],
      tokenizer_2: ['transformers', 'T5TokenizerFast'],
      transformer: ['diffusers', 'FluxTransformer2DModel'],
      vae: ['diffusers', 'AutoencoderKL'],
    }),
  );
  await writeFile(join(out, 'scheduler/scheduler_config.json'), json({ _class_name: 'FlowMatchEulerDiscreteScheduler', num_train_timesteps: 1000, shift: 3.0, use_dynamic_shifting: true, base_shift: 0.5, max_shift: 1.15, base_image_seq_len: 256, max_image_seq_len: 4096 }));
  await cp(join(FIXTURES, 'flux-tiny-a/transformer'), join(out, 'transformer'), { recursive: true });
  await cp(join(FIXTURES, 'flux-tiny-a/vae'), join(out, 'vae'), { recursive: true });
  await cp(join(FIXTURES, 'tokenizers/clip'), join(out, 'tokenizer'), { recursive: true });
  await cp(join(FIXTURES, 'tokenizers/t5'), join(out, 'tokenizer_2'), { recursive: true });
  await writeFile(
    join(out, 'text_encoder/config.json'),
    json({
      architectures: ['CLIPTextModel'],
      model_type: 'clip_text_model',
      hidden_size: CLIP.hidden,
      intermediate_size: CLIP.intermediate,
      num_attention_heads: CLIP.heads,
      num_hidden_layers: CLIP.layers,
      hidden_act: 'quick_gelu',
      layer_norm_eps: 1e-5,
      max_position_embeddings: CLIP.positions,
      vocab_size: CLIP.vocab,
      bos_token_id: CLIP.bos,
      eos_token_id: CLIP.eos,
      pad_token_id: CLIP.eos,
    }),
  );
  await writeFile(join(out, 'text_encoder/model.safetensors'), clipWeights());
  await writeFile(
    join(out, 'text_encoder_2/config.json'),
    json({
      architectures: ['T5EncoderModel'],
      model_type: 't5',
      d_model: T5.dModel,
      d_kv: T5.dKv,
      num_heads: T5.heads,
      d_ff: T5.dFf,
      num_layers: T5.layers,
      vocab_size: T5.vocab,
      feed_forward_proj: 'gated-gelu',
      dense_act_fn: 'gelu_new',
      is_gated_act: true,
      layer_norm_epsilon: 1e-6,
      relative_attention_num_buckets: T5.buckets,
      relative_attention_max_distance: 128,
    }),
  );
  await writeFile(join(out, 'text_encoder_2/model.safetensors'), t5Weights());
  if (options.shards !== undefined && options.shards > 1) await shardTransformer(out, options.shards);
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const out = process.argv[2];
  // An option where the folder belongs (`--help`) must not become a folder of that name.
  if (!out || out.startsWith('-')) {
    process.stderr.write('usage: npx tsx scripts/make-tiny-flux.ts <out-dir>\n');
    process.exit(2);
  }
  const shardsAt = process.argv.indexOf('--shards');
  await makeTinyFlux(out, { shards: shardsAt > 0 ? Number(process.argv[shardsAt + 1]) : undefined });
  process.stdout.write(`wrote ${out}\n`);
}
