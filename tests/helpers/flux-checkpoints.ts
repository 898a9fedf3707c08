/**
 * Checkpoints for tests, written independently of src/model/layout.ts so that a naming mistake there
 * cannot hide behind the same mistake here: random FLUX models in the reference (BFL) key layout, and a
 * BFL -> diffusers converter (renaming, q/k/v and linear1 split, final-layer halves swapped) written
 * from the diffusers key names (docs/architecture.md, "Checkpoints").
 */
import type { FluxConfig } from '../../src/model/config.ts';
import type { FluxInputs } from '../../src/model/inputs.ts';
import { fromFloat32, type FloatDtype } from '../../src/weights/dtypes.ts';
import { encodeSafetensors, type TensorToWrite } from '../../src/weights/safetensors-writer.ts';
import type { TensorReader } from '../../src/weights/safetensors.ts';
import { randn } from './random.ts';

type Shape = readonly number[];

/** Every tensor of a BFL-layout FLUX checkpoint for `config`, in a stable order. */
export function bflTensorShapes(config: FluxConfig): [string, Shape][] {
  const { hiddenSize: h, mlpHidden: m, headDim: d } = config;
  const out: [string, Shape][] = [];
  const linear = (name: string, outF: number, inF: number): void => {
    out.push([`${name}.weight`, [outF, inF]], [`${name}.bias`, [outF]]);
  };
  linear('img_in', h, config.inChannels);
  linear('time_in.in_layer', h, 256);
  linear('time_in.out_layer', h, h);
  linear('vector_in.in_layer', h, config.vecDim);
  linear('vector_in.out_layer', h, h);
  if (config.guidanceEmbed) {
    linear('guidance_in.in_layer', h, 256);
    linear('guidance_in.out_layer', h, h);
  }
  linear('txt_in', h, config.contextDim);
  for (let i = 0; i < config.depthDouble; i++) {
    for (const s of ['img', 'txt']) {
      const p = `double_blocks.${i}.${s}`;
      linear(`${p}_mod.lin`, 6 * h, h);
      linear(`${p}_attn.qkv`, 3 * h, h);
      out.push([`${p}_attn.norm.query_norm.scale`, [d]], [`${p}_attn.norm.key_norm.scale`, [d]]);
      linear(`${p}_attn.proj`, h, h);
      linear(`${p}_mlp.0`, m, h);
      linear(`${p}_mlp.2`, h, m);
    }
  }
  for (let i = 0; i < config.depthSingle; i++) {
    const p = `single_blocks.${i}`;
    linear(`${p}.linear1`, 3 * h + m, h);
    linear(`${p}.linear2`, h, h + m);
    out.push([`${p}.norm.query_norm.scale`, [d]], [`${p}.norm.key_norm.scale`, [d]]);
    linear(`${p}.modulation.lin`, 3 * h, h);
  }
  linear('final_layer.adaLN_modulation.1', 2 * h, h);
  linear('final_layer.linear', config.outChannels, h);
  return out;
}

/**
 * A random model: weights ~ N(0, 1/fan_in) so activations stay O(1) through the blocks, biases and
 * norm scales near their trained magnitudes.
 */
export function randomBflCheckpoint(config: FluxConfig, seed: number, dtype: FloatDtype = 'BF16'): Uint8Array {
  const tensors: TensorToWrite[] = bflTensorShapes(config).map(([name, shape], i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    let values: Float32Array;
    if (name.endsWith('.scale')) values = randn(n, seed + i, 0.1).map((v) => 1 + v);
    else if (name.endsWith('.bias')) values = randn(n, seed + i, 0.1);
    else values = randn(n, seed + i, 1 / Math.sqrt(shape[1]!));
    return { name, dtype, shape, data: fromFloat32(values, dtype) };
  });
  return encodeSafetensors(tensors);
}

/** Rows [start, end) of a [rows, ...] tensor's bytes. */
function rowSlice(data: Uint8Array, shape: Shape, bytesPerElement: number, start: number, end: number): Uint8Array {
  const rowBytes = (shape.slice(1).reduce((a, b) => a * b, 1) || 1) * bytesPerElement;
  return data.slice(start * rowBytes, end * rowBytes);
}

/** Converts a BFL checkpoint to the diffusers layout, as diffusers' single-file conversion does. */
export async function bflToDiffusers(reader: TensorReader, config: FluxConfig): Promise<Uint8Array> {
  const { hiddenSize: h } = config;
  const out: TensorToWrite[] = [];
  const read = async (name: string) => {
    const t = await reader.readTensor(name);
    const bytesPerElement = t.data.byteLength / t.shape.reduce((a, b) => a * b, 1);
    return { ...t, bytesPerElement };
  };
  const rename = async (from: string, to: string): Promise<void> => {
    const t = await read(from);
    out.push({ name: to, dtype: t.dtype, shape: t.shape, data: t.data });
  };
  const linear = async (from: string, to: string): Promise<void> => {
    await rename(`${from}.weight`, `${to}.weight`);
    await rename(`${from}.bias`, `${to}.bias`);
  };
  /** Splits rows of a fused linear into consecutive parts of the given sizes. */
  const split = async (from: string, parts: [string, number][]): Promise<void> => {
    for (const suffix of ['weight', 'bias']) {
      const t = await read(`${from}.${suffix}`);
      let row = 0;
      for (const [to, rows] of parts) {
        const data = rowSlice(t.data, t.shape, t.bytesPerElement, row, row + rows);
        out.push({ name: `${to}.${suffix}`, dtype: t.dtype, shape: [rows, ...t.shape.slice(1)], data });
        row += rows;
      }
    }
  };
  await linear('img_in', 'x_embedder');
  await linear('txt_in', 'context_embedder');
  await linear('time_in.in_layer', 'time_text_embed.timestep_embedder.linear_1');
  await linear('time_in.out_layer', 'time_text_embed.timestep_embedder.linear_2');
  if (config.guidanceEmbed) {
    await linear('guidance_in.in_layer', 'time_text_embed.guidance_embedder.linear_1');
    await linear('guidance_in.out_layer', 'time_text_embed.guidance_embedder.linear_2');
  }
  await linear('vector_in.in_layer', 'time_text_embed.text_embedder.linear_1');
  await linear('vector_in.out_layer', 'time_text_embed.text_embedder.linear_2');
  for (let i = 0; i < config.depthDouble; i++) {
    const b = `double_blocks.${i}`;
    const t = `transformer_blocks.${i}`;
    await linear(`${b}.img_mod.lin`, `${t}.norm1.linear`);
    await linear(`${b}.txt_mod.lin`, `${t}.norm1_context.linear`);
    await split(`${b}.img_attn.qkv`, [[`${t}.attn.to_q`, h], [`${t}.attn.to_k`, h], [`${t}.attn.to_v`, h]]);
    await split(`${b}.txt_attn.qkv`, [[`${t}.attn.add_q_proj`, h], [`${t}.attn.add_k_proj`, h], [`${t}.attn.add_v_proj`, h]]);
    await rename(`${b}.img_attn.norm.query_norm.scale`, `${t}.attn.norm_q.weight`);
    await rename(`${b}.img_attn.norm.key_norm.scale`, `${t}.attn.norm_k.weight`);
    await rename(`${b}.txt_attn.norm.query_norm.scale`, `${t}.attn.norm_added_q.weight`);
    await rename(`${b}.txt_attn.norm.key_norm.scale`, `${t}.attn.norm_added_k.weight`);
    await linear(`${b}.img_attn.proj`, `${t}.attn.to_out.0`);
    await linear(`${b}.txt_attn.proj`, `${t}.attn.to_add_out`);
    await linear(`${b}.img_mlp.0`, `${t}.ff.net.0.proj`);
    await linear(`${b}.img_mlp.2`, `${t}.ff.net.2`);
    await linear(`${b}.txt_mlp.0`, `${t}.ff_context.net.0.proj`);
    await linear(`${b}.txt_mlp.2`, `${t}.ff_context.net.2`);
  }
  for (let i = 0; i < config.depthSingle; i++) {
    const b = `single_blocks.${i}`;
    const t = `single_transformer_blocks.${i}`;
    await split(`${b}.linear1`, [[`${t}.attn.to_q`, h], [`${t}.attn.to_k`, h], [`${t}.attn.to_v`, h], [`${t}.proj_mlp`, config.mlpHidden]]);
    await rename(`${b}.norm.query_norm.scale`, `${t}.attn.norm_q.weight`);
    await rename(`${b}.norm.key_norm.scale`, `${t}.attn.norm_k.weight`);
    await linear(`${b}.linear2`, `${t}.proj_out`);
    await linear(`${b}.modulation.lin`, `${t}.norm.linear`);
  }
  // BFL's final modulation rows are (shift, scale); diffusers' AdaLayerNormContinuous wants (scale, shift).
  for (const suffix of ['weight', 'bias']) {
    const t = await read(`final_layer.adaLN_modulation.1.${suffix}`);
    const shift = rowSlice(t.data, t.shape, t.bytesPerElement, 0, h);
    const scale = rowSlice(t.data, t.shape, t.bytesPerElement, h, 2 * h);
    const data = new Uint8Array(t.data.byteLength);
    data.set(scale);
    data.set(shift, scale.byteLength);
    out.push({ name: `norm_out.linear.${suffix}`, dtype: t.dtype, shape: t.shape, data });
  }
  await linear('final_layer.linear', 'proj_out');
  return encodeSafetensors(out);
}

/** Random inputs: image tokens on a rows x cols patch grid (ids (0, r, c)), text tokens with zero ids. */
export function generatedInputs(config: FluxConfig, imageGrid: [number, number], textTokens: number, seed: number): FluxInputs {
  const [rows, cols] = imageGrid;
  const imgIds = new Float32Array(rows * cols * 3);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) imgIds.set([0, r, c], (r * cols + c) * 3);
  }
  return {
    img: randn(rows * cols * config.inChannels, seed),
    imgIds,
    txt: randn(textTokens * config.contextDim, seed + 1),
    txtIds: new Float32Array(textTokens * 3),
    timestep: 0.6,
    y: randn(config.vecDim, seed + 2),
  };
}
