/**
 * Header-only copies of real checkpoints: a safetensors header with the real names, dtypes and shapes, and a
 * sparse body (the file has its full size, but no data is ever written), so planners can be tested on FLUX.1-dev
 * without its 24 GB. Shapes are from docs/flux-architecture.md (§8, §9), written out independently of src/.
 */
import { open } from 'node:fs/promises';
import { DTYPE_BYTES, type Dtype } from '../../src/weights/dtypes.ts';

type Shape = readonly number[];
export type HeaderTensor = readonly [name: string, shape: Shape];

/** Writes the header and extends the file to its full size without writing the data. Returns the header bytes. */
export async function writeHeaderOnly(path: string, tensors: readonly HeaderTensor[], dtype: Dtype): Promise<number> {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, shape] of tensors) {
    const bytes = shape.reduce((a, b) => a * b, DTYPE_BYTES[dtype]);
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const file = await open(path, 'w');
  try {
    const length = new Uint8Array(8);
    new DataView(length.buffer).setBigUint64(0, BigInt(json.byteLength), true);
    await file.write(length, 0, 8, 0);
    await file.write(json, 0, json.byteLength, 8);
    await file.truncate(8 + json.byteLength + offset);
  } finally {
    await file.close();
  }
  return 8 + json.byteLength;
}

/** T5-XXL encoder (text_encoder_2), §8.6. */
export function t5XxlTensors(): HeaderTensor[] {
  const [d, ff, layers] = [4096, 10240, 24];
  const out: HeaderTensor[] = [['shared.weight', [32128, d]]];
  for (let i = 0; i < layers; i++) {
    const p = `encoder.block.${i}.layer`;
    for (const m of ['q', 'k', 'v', 'o']) out.push([`${p}.0.SelfAttention.${m}.weight`, [d, d]]);
    out.push([`${p}.0.layer_norm.weight`, [d]]);
    out.push([`${p}.1.DenseReluDense.wi_0.weight`, [ff, d]], [`${p}.1.DenseReluDense.wi_1.weight`, [ff, d]], [`${p}.1.DenseReluDense.wo.weight`, [d, ff]]);
    out.push([`${p}.1.layer_norm.weight`, [d]]);
  }
  out.push(['encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', [32, 64]], ['encoder.final_layer_norm.weight', [d]]);
  return out;
}

/** CLIP-L text model (text_encoder), §8.5. */
export function clipLTensors(): HeaderTensor[] {
  const [h, ff, layers] = [768, 3072, 12];
  const out: HeaderTensor[] = [
    ['text_model.embeddings.token_embedding.weight', [49408, h]],
    ['text_model.embeddings.position_embedding.weight', [77, h]],
  ];
  for (let i = 0; i < layers; i++) {
    const p = `text_model.encoder.layers.${i}`;
    for (const m of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) out.push([`${p}.self_attn.${m}.weight`, [h, h]], [`${p}.self_attn.${m}.bias`, [h]]);
    for (const n of ['layer_norm1', 'layer_norm2']) out.push([`${p}.${n}.weight`, [h]], [`${p}.${n}.bias`, [h]]);
    out.push([`${p}.mlp.fc1.weight`, [ff, h]], [`${p}.mlp.fc1.bias`, [ff]], [`${p}.mlp.fc2.weight`, [h, ff]], [`${p}.mlp.fc2.bias`, [h]]);
  }
  out.push(['text_model.final_layer_norm.weight', [h]], ['text_model.final_layer_norm.bias', [h]]);
  return out;
}

/** The decoder half of FLUX's autoencoder in the reference (ae.safetensors) naming: ch 128, mult [1,2,4,4], 16 latents. */
export function fluxAeDecoderTensors(): HeaderTensor[] {
  const out: HeaderTensor[] = [];
  const conv = (name: string, cout: number, cin: number, k: number) => out.push([`${name}.weight`, [cout, cin, k, k]], [`${name}.bias`, [cout]]);
  const norm = (name: string, c: number) => out.push([`${name}.weight`, [c]], [`${name}.bias`, [c]]);
  const resnet = (name: string, cin: number, cout: number) => {
    norm(`${name}.norm1`, cin);
    conv(`${name}.conv1`, cout, cin, 3);
    norm(`${name}.norm2`, cout);
    conv(`${name}.conv2`, cout, cout, 3);
    if (cin !== cout) conv(`${name}.nin_shortcut`, cout, cin, 1);
  };
  const channels = [128, 256, 512, 512];
  conv('decoder.conv_in', 512, 16, 3);
  resnet('decoder.mid.block_1', 512, 512);
  norm('decoder.mid.attn_1.norm', 512);
  for (const m of ['q', 'k', 'v', 'proj_out']) conv(`decoder.mid.attn_1.${m}`, 512, 512, 1);
  resnet('decoder.mid.block_2', 512, 512);
  let cin = 512;
  for (let level = channels.length - 1; level >= 0; level--) {
    const cout = channels[level]!;
    for (let j = 0; j < 3; j++) {
      resnet(`decoder.up.${level}.block.${j}`, cin, cout);
      cin = cout;
    }
    if (level > 0) conv(`decoder.up.${level}.upsample.conv`, cout, cout, 3);
  }
  norm('decoder.norm_out', 128);
  conv('decoder.conv_out', 3, 128, 3);
  return out;
}
