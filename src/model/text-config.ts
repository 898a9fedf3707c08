/**
 * Text encoder hyper-parameters from the Hugging Face `config.json` of FLUX's `text_encoder/` (CLIPTextModel)
 * and `text_encoder_2/` (T5EncoderModel), checked against the weights' shapes, and the names of their tensors.
 */
import { FluxError } from '../errors.ts';
import type { TensorReader } from '../weights/safetensors.ts';

export type ClipActivation = 'quick_gelu' | 'gelu_tanh';

export interface ClipTextConfig {
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHeads: number;
  readonly numLayers: number;
  readonly activation: ClipActivation;
  readonly layerNormEps: number;
  /** Position embeddings: the longest sequence (77). */
  readonly maxPositions: number;
  readonly vocabSize: number;
  /**
   * The pooled output is the final state at the first EOS. Undefined for configs with the legacy
   * eos_token_id 2 (openai/clip-vit-large-patch14, FLUX.1's text_encoder/): the EOS is then found as the
   * largest id, which is where the reference implementations look in that case.
   */
  readonly eosId: number | undefined;
}

export interface T5Config {
  readonly dModel: number;
  /** Per-head width; inner = numHeads · dKv may differ from dModel. */
  readonly dKv: number;
  readonly numHeads: number;
  readonly dFf: number;
  readonly numLayers: number;
  readonly vocabSize: number;
  readonly layerNormEps: number;
  readonly numBuckets: number;
  readonly maxDistance: number;
}

type Json = Record<string, unknown>;

function field(json: Json, key: string, what: string, fallback?: number): number {
  const v = json[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new FluxError('bad-format', `${what} config.json: "${key}" is missing or not a number`);
  return v;
}

function count(json: Json, key: string, what: string, fallback?: number): number {
  const v = field(json, key, what, fallback);
  if (!Number.isInteger(v) || v < 1) throw new FluxError('bad-format', `${what} config.json: "${key}" = ${v} is not a positive integer`);
  return v;
}

function asJson(json: unknown, what: string): Json {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new FluxError('bad-format', `${what} config.json is not a JSON object`);
  return json as Json;
}

/** Old CLIP configs say eos_token_id 2, which is not CLIP's EOS (49407); see ClipTextConfig.eosId. */
const LEGACY_CLIP_EOS_ID = 2;

/** Hugging Face activation names and the kernel that computes each. */
const CLIP_ACTIVATIONS: Readonly<Record<string, ClipActivation>> = { quick_gelu: 'quick_gelu', gelu_new: 'gelu_tanh', gelu_pytorch_tanh: 'gelu_tanh' };

export function clipConfigFromJson(raw: unknown): ClipTextConfig {
  const json = asJson(raw, 'CLIP');
  const what = 'CLIP';
  const act = String(json.hidden_act ?? 'quick_gelu');
  const activation = CLIP_ACTIVATIONS[act];
  if (!activation) throw new FluxError('bad-format', `CLIP config.json: hidden_act "${act}" is not supported (${Object.keys(CLIP_ACTIVATIONS).join(', ')})`);
  const config: ClipTextConfig = {
    hiddenSize: count(json, 'hidden_size', what),
    intermediateSize: count(json, 'intermediate_size', what),
    numHeads: count(json, 'num_attention_heads', what),
    numLayers: count(json, 'num_hidden_layers', what),
    activation,
    layerNormEps: field(json, 'layer_norm_eps', what, 1e-5),
    maxPositions: count(json, 'max_position_embeddings', what),
    vocabSize: count(json, 'vocab_size', what),
    eosId: field(json, 'eos_token_id', what) === LEGACY_CLIP_EOS_ID ? undefined : field(json, 'eos_token_id', what),
  };
  if (config.hiddenSize % config.numHeads !== 0) throw new FluxError('bad-format', `CLIP config.json: hidden_size ${config.hiddenSize} is not a multiple of ${config.numHeads} heads`);
  return config;
}

export function t5ConfigFromJson(raw: unknown): T5Config {
  const json = asJson(raw, 'T5');
  const what = 'T5';
  const proj = String(json.feed_forward_proj ?? 'gated-gelu');
  if (proj !== 'gated-gelu') throw new FluxError('bad-format', `T5 config.json: feed_forward_proj "${proj}" is not supported (T5 v1.1 "gated-gelu")`);
  return {
    dModel: count(json, 'd_model', what),
    dKv: count(json, 'd_kv', what),
    numHeads: count(json, 'num_heads', what),
    dFf: count(json, 'd_ff', what),
    numLayers: count(json, 'num_layers', what),
    vocabSize: count(json, 'vocab_size', what),
    layerNormEps: field(json, 'layer_norm_epsilon', what, 1e-6),
    numBuckets: count(json, 'relative_attention_num_buckets', what, 32),
    maxDistance: count(json, 'relative_attention_max_distance', what, 128),
  };
}

/** A tensor the model needs: its checkpoint name and expected shape. */
export interface TextTensor {
  readonly name: string;
  readonly shape: readonly number[];
}

export interface ClipLayerNames {
  readonly ln1: string;
  readonly q: string;
  readonly k: string;
  readonly v: string;
  readonly out: string;
  readonly ln2: string;
  readonly fc1: string;
  readonly fc2: string;
}

const CLIP_PREFIX = 'text_model.';
export const CLIP_NAMES = {
  tokenEmbedding: `${CLIP_PREFIX}embeddings.token_embedding.weight`,
  positionEmbedding: `${CLIP_PREFIX}embeddings.position_embedding.weight`,
  finalNorm: `${CLIP_PREFIX}final_layer_norm`,
  layer(i: number): ClipLayerNames {
    const p = `${CLIP_PREFIX}encoder.layers.${i}.`;
    return {
      ln1: `${p}layer_norm1`,
      q: `${p}self_attn.q_proj`,
      k: `${p}self_attn.k_proj`,
      v: `${p}self_attn.v_proj`,
      out: `${p}self_attn.out_proj`,
      ln2: `${p}layer_norm2`,
      fc1: `${p}mlp.fc1`,
      fc2: `${p}mlp.fc2`,
    };
  },
};

export interface T5LayerNames {
  readonly attnNorm: string;
  readonly q: string;
  readonly k: string;
  readonly v: string;
  readonly o: string;
  readonly ffNorm: string;
  readonly wi0: string;
  readonly wi1: string;
  readonly wo: string;
}

/** The token embedding's two names: T5EncoderModel's tied `shared`, or the encoder's own copy. */
export const T5_EMBEDDING_NAMES = ['shared.weight', 'encoder.embed_tokens.weight'] as const;
export const T5_NAMES = {
  /** Layer 0 computes the bias; every layer uses it. */
  relativeBias: 'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight',
  finalNorm: 'encoder.final_layer_norm.weight',
  layer(i: number): T5LayerNames {
    const p = `encoder.block.${i}.layer.`;
    return {
      attnNorm: `${p}0.layer_norm.weight`,
      q: `${p}0.SelfAttention.q`,
      k: `${p}0.SelfAttention.k`,
      v: `${p}0.SelfAttention.v`,
      o: `${p}0.SelfAttention.o`,
      ffNorm: `${p}1.layer_norm.weight`,
      wi0: `${p}1.DenseReluDense.wi_0`,
      wi1: `${p}1.DenseReluDense.wi_1`,
      wo: `${p}1.DenseReluDense.wo`,
    };
  },
};

/** The checkpoint's T5 embedding name (either layout). */
export function t5EmbeddingName(reader: TensorReader): string {
  const name = T5_EMBEDDING_NAMES.find((n) => reader.has(n));
  if (!name) throw new FluxError('bad-format', `${reader.name}: no T5 token embedding (${T5_EMBEDDING_NAMES.join(' or ')})`);
  return name;
}

/** Every linear of the CLIP text model, for precision maps (no `.weight`). */
export function clipLinearNames(config: ClipTextConfig): string[] {
  const names: string[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const l = CLIP_NAMES.layer(i);
    names.push(l.q, l.k, l.v, l.out, l.fc1, l.fc2);
  }
  return names;
}

/** Every linear of the T5 encoder, for precision maps (no `.weight`). */
export function t5LinearNames(config: T5Config): string[] {
  const names: string[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const l = T5_NAMES.layer(i);
    names.push(l.q, l.k, l.v, l.o, l.wi0, l.wi1, l.wo);
  }
  return names;
}

/**
 * Throws a one-line FluxError unless the tensor exists with the config's shape (a config that does not
 * match the weights would otherwise run with wrong strides).
 */
export function checkTensor(reader: TensorReader, name: string, shape: readonly number[]): void {
  if (!reader.has(name)) throw new FluxError('bad-format', `${reader.name}: missing tensor "${name}"`);
  const actual = reader.info(name).shape;
  if (actual.length !== shape.length || actual.some((n, i) => n !== shape[i])) {
    throw new FluxError('bad-shape', `${reader.name}: "${name}" is [${actual}], but config.json implies [${shape}]`);
  }
}

export interface ClipOutputs {
  /** [tokens, hidden], after the final LayerNorm. */
  readonly hidden: Float32Array;
  /** [hidden]: the final state at the first EOS. */
  readonly pooled: Float32Array;
}

/** The index of the first EOS (or, for a legacy config, of the first largest id): CLIP's pooled position. */
export function firstEos(ids: Int32Array, eosId: number | undefined): number {
  if (eosId === undefined) return ids.indexOf(ids.reduce((a, b) => Math.max(a, b), -Infinity));
  const at = ids.indexOf(eosId);
  if (at < 0) throw new FluxError('bad-argument', `CLIP ids hold no EOS (${eosId}): the pooled output is the state at the first EOS`);
  return at;
}

