/**
 * The memory planner: GPU bytes per component of a FLUX pipeline at a precision and image size, from checkpoint
 * headers alone (no tensor data is read), before anything is loaded. It follows the engine's phases:
 *   encode    T5 + CLIP weights (released before denoising: FluxPipeline's `releaseEncoders`) and their
 *             activations;
 *   condition the modulation linears and the time / guidance / pooled-text embedders compute every step's
 *             modulation vectors up front (transformer-runner's precomputeModulations), then the modulation
 *             linears are released (FluxPipeline's `releaseModulation`);
 *   denoise   the block weights, the per-step embedders and proj_out, the activation arena and the
 *             quantized-activation pool: `residentBytes` (the modulation table stays in CPU memory, one row is
 *             uploaded per step);
 *   decode    the VAE decoder's weights (loaded for the decode: FluxPipeline's `releaseVae`) and activations on top
 *             of what stays.
 * When `residentBytes` is over the budget, whole blocks stay in CPU memory and are streamed to the GPU each step,
 * one block ahead (prefetch), and the plan reports the resident and peak bytes of that schedule. Any single
 * GPU tensor over the adapter's maxStorageBufferBindingSize is listed with the row shards it needs.
 */
import { FluxError } from '../errors.ts';
import { packedWordsPerRow } from '../kernels/convrot.ts';
import type { FluxCheckpoint } from '../model/checkpoint.ts';
import type { FluxConfig } from '../model/config.ts';
import { canonicalLinears, canonicalNormScales, doubleBlockPrefix, singleBlockPrefix, TOP_LEVEL, type CanonicalLinear } from '../model/layout.ts';
import { makeQuantPlan, type LayerPrecision, type PrecisionPreset, type QuantPlan } from '../model/precision.ts';
import { textQuantPlan, type TextPrecision } from '../model/text-precision.ts';
import { linearWeightBytes } from '../model/quality/evaluate.ts';
import { packedWeightBytes } from '../nn/conv-linear.ts';
import { WEIGHT_ONLY_QUANTIZATION } from '../nn/weight-only-linear.ts';
import { DTYPE_BYTES } from '../weights/dtypes.ts';
import type { TensorReader } from '../weights/safetensors.ts';
import { PATCH } from './sampler.ts';
import { DEFAULT_TEXT_PRECISION } from './text-encoders.ts';
import { arenaShapes } from './transformer-runner.ts';

/** WebGPU's default maxStorageBufferBindingSize: what every adapter grants, so the safe assumption. */
export const WEBGPU_DEFAULT_MAX_BINDING = 134_217_728;
/** FLUX pads the T5 prompt to 512 tokens (dev; schnell uses 256, 512 is the larger plan). */
export const DEFAULT_TEXT_TOKENS = 512;
export const DEFAULT_PLAN_SIZE = 1024;
const VAE_SCALE = 8;
const F32 = 4;
/** Per quantized activation row: the same metadata. */
const ACTIVATION_ROW_META_BYTES = 8;
/** Blocks in flight while streaming: the one running and the one being prefetched. */
const STREAM_BUFFERS = 2;

export type ComponentName = 'transformer' | 'modulation' | 't5' | 'clip' | 'vae' | 'activations';

export interface ComponentPlan {
  readonly name: ComponentName;
  /** Bytes of the component's tensors in its files (0 when not in the source). */
  readonly sourceBytes: number;
  /** GPU bytes of the component as loaded at this precision. */
  readonly gpuBytes: number;
  /** Of gpuBytes, what stays on the GPU while denoising. */
  readonly residentBytes: number;
  readonly note: string;
}

/** A GPU tensor over the binding limit, split by rows into `shards` bindings. */
export interface ShardPlan {
  readonly tensor: string;
  readonly bytes: number;
  readonly shards: number;
}

export interface OffloadPlan {
  /** Blocks (double + single) kept on the GPU; the others are streamed every step. */
  readonly residentBlocks: number;
  readonly streamedBlocks: number;
  /** CPU bytes holding the streamed blocks. */
  readonly cpuBytes: number;
  /** Bytes uploaded per denoising step (every streamed block once; twice a step with true CFG). */
  readonly streamedBytesPerStep: number;
}

export interface MemoryPlan {
  readonly precision: string;
  readonly width: number;
  readonly height: number;
  readonly textTokens: number;
  readonly steps: number;
  /** Bytes of the source transformer's tensors (what the checkpoint stores). */
  readonly sourceBytes: number;
  /** The transformer as stored at this precision (GPU layout), modulation linears included. */
  readonly weightBytes: number;
  /** GPU bytes resident while denoising (with offload: the streamed schedule's steady state). */
  readonly residentBytes: number;
  /** Most GPU bytes at once over all phases. */
  readonly peakBytes: number;
  readonly peakPhase: 'encode' | 'condition' | 'denoise' | 'decode';
  readonly budget: number | undefined;
  readonly fits: boolean;
  readonly offload: OffloadPlan | undefined;
  readonly maxBindingBytes: number;
  readonly shards: readonly ShardPlan[];
  readonly components: readonly ComponentPlan[];
}

/** The other components' headers, each optional (a transformer file alone plans the transformer only). */
export interface PlanSources {
  readonly transformer: FluxCheckpoint;
  readonly t5?: TensorReader;
  readonly clip?: TensorReader;
  readonly vae?: TensorReader;
}

export interface PlanOptions {
  readonly precision?: PrecisionPreset;
  /** Overrides what the preset gives the modulation linears. */
  readonly modulation?: LayerPrecision;
  readonly textPrecision?: { readonly clip?: TextPrecision; readonly t5?: TextPrecision };
  readonly width?: number;
  readonly height?: number;
  readonly textTokens?: number;
  /** Denoising steps (the modulation table holds one vector per step); default dev 28, schnell 4. */
  readonly steps?: number;
  /** GPU bytes available; when the plan is over it, blocks are streamed. */
  readonly budget?: number;
  readonly maxBindingBytes?: number;
  /** Peak activation bytes of the VAE decode at this size (planVaeDecode needs a GPU context); default estimated. */
  readonly vaeDecodeActivationBytes?: number;
}

const DEV_STEPS = 28;
const SCHNELL_STEPS = 4;

/** GPU bytes of a float weight as loaded: bf16 stays 16-bit, every other dtype is widened to f32. */
function floatWeightBytes(values: number, sourceDtype: string): number {
  return values * (sourceDtype === 'BF16' ? 2 : F32);
}

/** GPU bytes of one linear (weights, scales, bias) at `precision`, its float weights loaded from `sourceDtype`. */
function linearBytes(l: CanonicalLinear, precision: LayerPrecision, plan: QuantPlan, sourceDtype: string, hasBias = true): number {
  return linearWeightBytes(l, precision, plan, sourceDtype === 'BF16' ? 2 : F32, hasBias);
}

/** The largest GPU tensor a linear needs, transient ones included (the float source a quantized layer is built from). */
function linearLargestTensor(l: CanonicalLinear, precision: LayerPrecision, plan: QuantPlan, sourceDtype: string): number {
  const source = floatWeightBytes(l.outFeatures * l.inFeatures, sourceDtype);
  if (precision === 'float') return source;
  const rows = l.role === 'modulation' ? WEIGHT_ONLY_QUANTIZATION : { rotation: plan.rotation, groupSize: plan.groupSize };
  return Math.max(source, packedWeightBytes(l.inFeatures, l.outFeatures, { format: precision, ...rows }));
}

function blockOf(name: string, config: FluxConfig): string | undefined {
  for (let i = 0; i < config.depthDouble; i++) if (name.startsWith(doubleBlockPrefix(i))) return doubleBlockPrefix(i);
  for (let i = 0; i < config.depthSingle; i++) if (name.startsWith(singleBlockPrefix(i))) return singleBlockPrefix(i);
  return undefined;
}

function readerBytes(reader: TensorReader | undefined, keep: (name: string) => boolean = () => true): number {
  if (!reader) return 0;
  return reader.names().filter(keep).reduce((n, name) => n + reader.info(name).byteLength, 0);
}

/** A text encoder's GPU bytes: its 2-D `.weight` linears at the text precision, embeddings on the CPU, the rest f32. */
function textEncoderBytes(reader: TensorReader, precision: TextPrecision, embeddings: (name: string) => boolean, what: string): { gpu: number; largest: number; name: string } {
  const linears = reader.names().filter((n) => n.endsWith('.weight') && reader.info(n).shape.length === 2 && !embeddings(n));
  const plan = textQuantPlan(
    linears.map((n) => n.slice(0, -'.weight'.length)),
    precision,
    what,
  );
  let gpu = 0;
  const largest = { bytes: 0, name: '' };
  for (const name of reader.names()) {
    if (embeddings(name)) continue;
    const info = reader.info(name);
    const values = info.shape.reduce((a, b) => a * b, 1);
    if (!linears.includes(name)) {
      gpu += values * F32;
      continue;
    }
    const [outFeatures, inFeatures] = info.shape as [number, number];
    const layer: CanonicalLinear = { name: name.slice(0, -'.weight'.length), inFeatures, outFeatures, role: 'block' };
    gpu += linearBytes(layer, plan.layers.get(layer.name) ?? 'float', plan, info.dtype, false);
    const source = floatWeightBytes(values, info.dtype);
    if (source > largest.bytes) Object.assign(largest, { bytes: source, name });
  }
  return { gpu, largest: largest.bytes, name: largest.name };
}

/** Token embedding tables are gathered on the CPU (src/model/text-weights.ts EmbeddingTable). */
const isEmbedding = (name: string): boolean => /embed|shared\.weight|position_embedding/.test(name) && !/embedder/.test(name);

function shardsOf(tensor: string, bytes: number, limit: number): ShardPlan | undefined {
  return bytes > limit ? { tensor, bytes, shards: Math.ceil(bytes / limit) } : undefined;
}

/**
 * Peak bytes of the VAE decode without a GPU: the decoder holds about its input, its hidden tensor and its
 * output at the largest resolution level (full size, the last level's channels), in f32.
 */
function estimateVaeDecodeBytes(width: number, height: number, lastChannels: number): number {
  const ACTIVE_TENSORS = 3;
  return ACTIVE_TENSORS * width * height * lastChannels * F32;
}

export function planMemory(sources: PlanSources, options: PlanOptions = {}): MemoryPlan {
  const checkpoint = sources.transformer;
  const config = checkpoint.config;
  const preset = options.precision ?? 'mixed';
  const quant = makeQuantPlan(config, { preset, modulation: options.modulation });
  const width = options.width ?? DEFAULT_PLAN_SIZE;
  const height = options.height ?? DEFAULT_PLAN_SIZE;
  for (const [what, side] of [['width', width], ['height', height]] as const) {
    if (!Number.isInteger(side) || side <= 0 || side % (VAE_SCALE * PATCH) !== 0) throw new FluxError('bad-argument', `${what} must be a positive multiple of ${VAE_SCALE * PATCH}, got ${side}`);
  }
  const textTokens = options.textTokens ?? DEFAULT_TEXT_TOKENS;
  const steps = options.steps ?? (config.guidanceEmbed ? DEV_STEPS : SCHNELL_STEPS);
  const limit = options.maxBindingBytes ?? WEBGPU_DEFAULT_MAX_BINDING;
  const shards: ShardPlan[] = [];
  const addShard = (tensor: string, bytes: number) => {
    const s = shardsOf(tensor, bytes, limit);
    if (s) shards.push(s);
  };

  // Transformer: every canonical parameter's source dtype and size, from the weight plan (headers only).
  const dtypeOf = (param: string): string => checkpoint.param(param).slices[0]!.dtype;
  const sourceBytes = checkpoint.reader.names().reduce((n, name) => n + checkpoint.reader.info(name).byteLength, 0);
  const conditioningEmbedders = new Set<string>([TOP_LEVEL.timeIn1, TOP_LEVEL.timeIn2, TOP_LEVEL.vecIn1, TOP_LEVEL.vecIn2, TOP_LEVEL.guidanceIn1, TOP_LEVEL.guidanceIn2]);
  const blockBytes = new Map<string, number>();
  let perStepBytes = 0;
  let conditioningBytes = 0;
  let modulationBytes = 0;
  for (const l of canonicalLinears(config)) {
    const precision = quant.layers.get(l.name) ?? 'float';
    const dtype = dtypeOf(`${l.name}.weight`);
    const bytes = linearBytes(l, precision, quant, dtype);
    addShard(`${l.name}.weight`, linearLargestTensor(l, precision, quant, dtype));
    if (l.role === 'modulation') {
      modulationBytes += bytes;
      conditioningBytes += bytes;
    } else if (conditioningEmbedders.has(l.name)) conditioningBytes += bytes;
    else {
      const block = blockOf(l.name, config);
      if (block) blockBytes.set(block, (blockBytes.get(block) ?? 0) + bytes);
      else perStepBytes += bytes;
    }
  }
  for (const name of canonicalNormScales(config)) {
    const block = blockOf(name, config);
    blockBytes.set(block!, (blockBytes.get(block!) ?? 0) + config.headDim * F32);
  }
  const blocksTotal = [...blockBytes.values()].reduce((a, b) => a + b, 0);
  const weightBytes = blocksTotal + perStepBytes + conditioningBytes;

  // Activations while denoising: the arena, the pool's quantized inputs, and the modulation table.
  const imageRows = (width / VAE_SCALE / PATCH) * (height / VAE_SCALE / PATCH);
  const modulationSize = canonicalLinears(config)
    .filter((l) => l.role === 'modulation')
    .reduce((n, l) => n + l.outFeatures, 0);
  const arena = Object.entries(arenaShapes(config, textTokens, imageRows, modulationSize));
  let activationBytes = 0;
  for (const [name, shape] of arena) {
    const bytes = shape.reduce((a, b) => a * b, 1) * F32;
    activationBytes += bytes;
    addShard(`activation ${name}`, bytes);
  }
  activationBytes += quantizedActivationPoolBytes(config, quant, textTokens, imageRows);
  // Computed on the GPU one step at a time, kept in CPU memory (transformer-runner's precomputeModulations).
  const modulationVector = modulationSize * F32;

  const components: ComponentPlan[] = [];
  const modulationSourceBytes = canonicalLinears(config)
    .filter((l) => l.role === 'modulation' || conditioningEmbedders.has(l.name))
    .reduce((n, l) => n + (l.inFeatures * l.outFeatures + l.outFeatures) * DTYPE_BYTES[dtypeOf(`${l.name}.weight`) as 'BF16'], 0);
  components.push({
    name: 'transformer',
    sourceBytes: sourceBytes - modulationSourceBytes,
    gpuBytes: blocksTotal + perStepBytes,
    residentBytes: blocksTotal + perStepBytes,
    note: `${config.depthDouble} double + ${config.depthSingle} single blocks, embedders, proj_out (${preset})`,
  });
  components.push({
    name: 'modulation',
    sourceBytes: modulationSourceBytes,
    gpuBytes: conditioningBytes,
    residentBytes: 0,
    note: `modulation linears (${quant.layers.get(TOP_LEVEL.finalModulation)}, weight-only) and conditioning embedders; released once the ${steps} steps' vectors (${formatBytes(steps * modulationVector)}, CPU) are computed`,
  });

  const t5Precision = options.textPrecision?.t5 ?? DEFAULT_TEXT_PRECISION.t5;
  const clipPrecision = options.textPrecision?.clip ?? DEFAULT_TEXT_PRECISION.clip;
  let encodeBytes = 0;
  for (const [name, reader, precision] of [['t5', sources.t5, t5Precision], ['clip', sources.clip, clipPrecision]] as const) {
    if (!reader) {
      components.push({ name, sourceBytes: 0, gpuBytes: 0, residentBytes: 0, note: 'not in the source' });
      continue;
    }
    const text = textEncoderBytes(reader, precision, isEmbedding, name);
    addShard(text.name, text.largest);
    encodeBytes += text.gpu;
    components.push({
      name,
      sourceBytes: readerBytes(reader),
      gpuBytes: text.gpu,
      residentBytes: 0,
      note: `${typeof precision === 'string' ? precision : 'map'}; token embedding on the CPU; released before denoising`,
    });
  }

  let vaeWeights = 0;
  let vaeDecode = 0;
  if (sources.vae) {
    const vae = sources.vae;
    const decoder = vae.names().filter((n) => n.startsWith('decoder.') || n.startsWith('post_quant_conv.'));
    vaeWeights = decoder.reduce((n, name) => n + vae.info(name).shape.reduce((a, b) => a * b, 1) * F32, 0);
    const convOut = decoder.find((n) => /decoder\.conv_out\.weight$/.test(n));
    const lastChannels = convOut ? vae.info(convOut).shape[1]! : 128;
    vaeDecode = options.vaeDecodeActivationBytes ?? estimateVaeDecodeBytes(width, height, lastChannels);
    components.push({
      name: 'vae',
      sourceBytes: readerBytes(vae, (n) => decoder.includes(n)),
      gpuBytes: vaeWeights,
      residentBytes: 0,
      note: `decoder f32, on the GPU for the decode, which adds ${formatBytes(vaeDecode)} of activations at ${width}x${height} (banded)`,
    });
  } else components.push({ name: 'vae', sourceBytes: 0, gpuBytes: 0, residentBytes: 0, note: 'not in the source' });

  components.push({
    name: 'activations',
    sourceBytes: 0,
    gpuBytes: activationBytes,
    residentBytes: activationBytes,
    note: `${textTokens} text + ${imageRows} image tokens at ${width}x${height}: arena and quantized inputs`,
  });

  const resident = blocksTotal + perStepBytes + activationBytes;
  const phases = {
    encode: encodeBytes + encodeActivationBytes(sources.t5, textTokens),
    condition: blocksTotal + perStepBytes + conditioningBytes + modulationVector,
    denoise: resident,
    decode: resident + vaeWeights + vaeDecode,
  };
  const budget = options.budget;
  let offload: OffloadPlan | undefined;
  let residentBytes = resident;
  let fits = budget === undefined || Math.max(...Object.values(phases)) <= budget;
  if (budget !== undefined && !fits) {
    // Keep as many blocks as fit beside two streaming slots of the largest block; stream the rest. The decode
    // runs after the last step, so it can use the slots' room too.
    const blocks = [...blockBytes.values()];
    const slots = STREAM_BUFFERS * Math.max(...blocks);
    const fixed = perStepBytes + Math.max(activationBytes + slots, activationBytes + vaeWeights + vaeDecode);
    let kept = 0;
    let keptBytes = 0;
    for (const bytes of blocks) {
      if (fixed + keptBytes + bytes > budget) break;
      kept++;
      keptBytes += bytes;
    }
    const streamedBytes = blocksTotal - keptBytes;
    offload = { residentBlocks: kept, streamedBlocks: blocks.length - kept, cpuBytes: streamedBytes, streamedBytesPerStep: streamedBytes };
    residentBytes = perStepBytes + activationBytes + keptBytes + slots;
    phases.denoise = residentBytes;
    phases.decode = perStepBytes + activationBytes + keptBytes + vaeWeights + vaeDecode;
    // Conditioning runs before the first step; its weights (each block's modulation linear is smaller than the
    // block) stream through the same slots.
    phases.condition = perStepBytes + keptBytes + slots + modulationVector;
    fits = Math.max(...Object.values(phases)) <= budget;
  }
  const [peakPhase, peakBytes] = (Object.entries(phases) as [MemoryPlan['peakPhase'], number][]).reduce((a, b) => (b[1] > a[1] ? b : a));
  return {
    precision: preset,
    width,
    height,
    textTokens,
    steps,
    sourceBytes,
    weightBytes,
    residentBytes,
    peakBytes,
    peakPhase,
    budget,
    fits,
    offload,
    maxBindingBytes: limit,
    shards,
    components,
  };
}

/** The pool keeps one quantized copy per distinct (tokens, input width, format) a quantized block linear reads. */
function quantizedActivationPoolBytes(config: FluxConfig, quant: QuantPlan, textRows: number, imageRows: number): number {
  const kinds = new Map<string, number>();
  for (const l of canonicalLinears(config)) {
    const precision = quant.layers.get(l.name) ?? 'float';
    if (l.role !== 'block' || precision === 'float') continue;
    const rowCounts = l.name.startsWith('single_') ? [textRows + imageRows] : [textRows, imageRows];
    for (const rows of rowCounts) {
      const words = packedWordsPerRow(l.inFeatures, { format: precision, rotation: quant.rotation, groupSize: quant.groupSize });
      kinds.set(`${rows} ${l.inFeatures} ${precision}`, rows * (words * 4 + ACTIVATION_ROW_META_BYTES));
    }
  }
  return [...kinds.values()].reduce((a, b) => a + b, 0);
}

/** T5's activations while encoding: the residual, normed, q/k/v/o and the gated FF hidden pair, f32. */
function encodeActivationBytes(t5: TensorReader | undefined, tokens: number): number {
  if (!t5) return 0;
  const wi = t5.names().find((n) => n.endsWith('DenseReluDense.wi_0.weight'));
  if (!wi) return 0;
  const [ff, d] = t5.info(wi).shape as [number, number];
  const RESIDUAL_TENSORS = 6;
  const FF_TENSORS = 2;
  return tokens * (RESIDUAL_TENSORS * d + FF_TENSORS * ff) * F32;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 2)} ${UNITS[unit]}`;
}

/** The plan as a text table, one row per component, then the totals. */
export function formatPlan(plan: MemoryPlan): string {
  const rows = [['component', 'source', 'gpu', 'resident', 'note'], ...plan.components.map((c) => [c.name, formatBytes(c.sourceBytes), formatBytes(c.gpuBytes), formatBytes(c.residentBytes), c.note])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((cell, i) => (i === 0 || i === 4 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ').trimEnd());
  lines.push(
    '',
    `precision ${plan.precision}, ${plan.width}x${plan.height}, ${plan.textTokens} text tokens, ${plan.steps} steps`,
    `transformer source ${formatBytes(plan.sourceBytes)} -> stored ${formatBytes(plan.weightBytes)} (${(plan.sourceBytes / plan.weightBytes).toFixed(2)}x smaller)`,
    `resident while denoising ${formatBytes(plan.residentBytes)}; peak ${formatBytes(plan.peakBytes)} (${plan.peakPhase}); with the text encoders, modulation linears and VAE released between uses (FluxPipeline releaseEncoders, releaseModulation, releaseVae)`,
  );
  if (plan.budget !== undefined) lines.push(`budget ${formatBytes(plan.budget)}: ${plan.fits ? 'fits' : 'does not fit'}`);
  if (plan.offload) {
    const o = plan.offload;
    lines.push(`offload: ${o.residentBlocks} blocks resident, ${o.streamedBlocks} streamed from CPU memory (${formatBytes(o.cpuBytes)}), ${formatBytes(o.streamedBytesPerStep)} uploaded per step, one block prefetched`);
  }
  if (plan.shards.length > 0) {
    lines.push(`over the ${formatBytes(plan.maxBindingBytes)} binding limit (split by rows): ${plan.shards.map((s) => `${s.tensor} ${formatBytes(s.bytes)} -> ${s.shards}`).join(', ')}`);
  }
  return lines.join('\n');
}
