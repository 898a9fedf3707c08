/**
 * CPU float references of the text encoders (docs/text-encoders.md), written from the model descriptions
 * with the plain ops of ./ops.ts. The GPU encoders are tested against these, and these against the golden
 * outputs of an independent implementation.
 */
import type { TensorReader } from '../../weights/safetensors.ts';
import { relativePositionBuckets } from '../t5-buckets.ts';
import { CLIP_NAMES, firstEos, T5_NAMES, t5EmbeddingName, type ClipOutputs, type ClipTextConfig, type T5Config } from '../text-config.ts';
import { attention, gatedGeluTanh, geluTanh, layerNorm, linear, quickGelu, rmsNormRows } from './ops.ts';

/** y = x·Wᵀ + b for x [rows, in]: the float linear, or a fake-quantized one to mirror a quantized engine. */
export type ReferenceLinear = (x: Float32Array, rows: number, weight: Float32Array, bias: Float32Array, name: string) => Float32Array;

const floatLinear: ReferenceLinear = (x, rows, weight, bias) => linear(x, rows, weight, bias);

/** Rows `ids` of an embedding table [vocab, dim]. */
function gather(table: Float32Array, dim: number, ids: Int32Array): Float32Array {
  const out = new Float32Array(ids.length * dim);
  ids.forEach((id, t) => out.set(table.subarray(id * dim, (id + 1) * dim), t * dim));
  return out;
}

function add(x: Float32Array, y: Float32Array): Float32Array {
  return x.map((v, i) => v + y[i]!);
}

/** CLIP text model: token + position embeddings, pre-norm causal layers with quick_gelu MLPs, final LayerNorm. */
export async function clipReference(reader: TensorReader, config: ClipTextConfig, ids: Int32Array, linearOf: ReferenceLinear = floatLinear): Promise<ClipOutputs> {
  const { hiddenSize: h, numHeads, layerNormEps: eps } = config;
  const rows = ids.length;
  const read = (name: string) => reader.readFloat32(name);
  const headDim = h / numHeads;
  const positions = Int32Array.from({ length: rows }, (_, i) => i);
  let x = add(gather(await read(CLIP_NAMES.tokenEmbedding), h, ids), gather(await read(CLIP_NAMES.positionEmbedding), h, positions));
  const lin = async (input: Float32Array, name: string) => linearOf(input, rows, await read(`${name}.weight`), await read(`${name}.bias`), name);
  const norm = async (input: Float32Array, name: string) => layerNorm(input, rows, await read(`${name}.weight`), await read(`${name}.bias`), eps);
  for (let i = 0; i < config.numLayers; i++) {
    const l = CLIP_NAMES.layer(i);
    const a = await norm(x, l.ln1);
    const o = attention(await lin(a, l.q), await lin(a, l.k), await lin(a, l.v), rows, numHeads, headDim, { causal: true });
    x = add(x, await lin(o, l.out));
    const m = await lin(await norm(x, l.ln2), l.fc1);
    x = add(x, await lin(config.activation === 'quick_gelu' ? quickGelu(m) : geluTanh(m), l.fc2));
  }
  const hidden = await norm(x, CLIP_NAMES.finalNorm);
  const at = firstEos(ids, config.eosId);
  return { hidden, pooled: hidden.slice(at * h, (at + 1) * h) };
}

/** T5 v1.1 encoder: RMSNorm pre-norm layers, unscaled attention with layer 0's relative bias, gated GELU. */
export async function t5Reference(reader: TensorReader, config: T5Config, ids: Int32Array, linearOf: ReferenceLinear = floatLinear): Promise<Float32Array> {
  const { dModel: d, numHeads, dKv, dFf, layerNormEps: eps } = config;
  const rows = ids.length;
  const read = (name: string) => reader.readFloat32(name);
  const noBias = (n: number) => new Float32Array(n);
  const lin = async (input: Float32Array, name: string, outFeatures: number) => linearOf(input, rows, await read(`${name}.weight`), noBias(outFeatures), name);
  const inner = numHeads * dKv;
  // bias[h, o] = table[bucket(o − (rows − 1)), h]
  const table = await read(T5_NAMES.relativeBias);
  const buckets = relativePositionBuckets(rows, config.numBuckets, config.maxDistance);
  const bias = new Float32Array(numHeads * buckets.length);
  for (let hd = 0; hd < numHeads; hd++) buckets.forEach((b, o) => (bias[hd * buckets.length + o] = table[b * numHeads + hd]!));

  let x = gather(await read(t5EmbeddingName(reader)), d, ids);
  for (let i = 0; i < config.numLayers; i++) {
    const l = T5_NAMES.layer(i);
    const a = rmsNormRows(x, rows, await read(l.attnNorm), eps);
    const o = attention(await lin(a, l.q, inner), await lin(a, l.k, inner), await lin(a, l.v, inner), rows, numHeads, dKv, { scale: 1, offsetBias: bias });
    x = add(x, await lin(o, l.o, d));
    const f = rmsNormRows(x, rows, await read(l.ffNorm), eps);
    const gated = gatedGeluTanh(await lin(f, l.wi0, dFf), await lin(f, l.wi1, dFf));
    x = add(x, await lin(gated, l.wo, d));
  }
  return rmsNormRows(x, rows, await read(T5_NAMES.finalNorm), eps);
}
