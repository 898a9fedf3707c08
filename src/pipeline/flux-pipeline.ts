/**
 * Text to image: `FluxPipeline.load(source)` reads a diffusers FLUX folder (model_index.json, transformer/,
 * text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/, vae/, scheduler/) or named single files, and
 * `generate` runs prompt → T5 + CLIP → Euler denoising → VAE decode → RGBA, with progress per phase,
 * cancellation between steps and defaults from the model (schnell: 4 steps, no guidance, plain schedule;
 * dev: 28 steps, guidance 3.5, shifted schedule), overridable by a folder's generation_defaults.json.
 */
import { FluxError } from '../errors.ts';
import { GpuContext } from '../gpu/device.ts';
import type { TextPrecision } from '../model/text-precision.ts';
import { decodePrecisionMap, makeQuantPlan, modulationLinearNames, type LayerPrecision, type PrecisionMap, type PrecisionPresetName, type QuantPlan } from '../model/precision.ts';
import { CachedTransformer, type CacheLoadStats } from '../model/cached-weights.ts';
import { sourceWeights, type TransformerWeightSource } from '../model/weight-loader.ts';
import type { WeightCache } from '../weights/cache.ts';
import type { LinearSlot, LinearSpec } from '../nn/factory.ts';
import { FluxTransformer } from '../model/transformer.ts';
import type { VaeConfig } from '../model/vae/config.ts';
import type { VaeDecoder } from '../model/vae/decoder.ts';
import { LoadMeter, type ByteProgress } from '../weights/progress.ts';
import { CheckpointCache } from '../weights/checkpoint-cache.ts';
import { openCheckpoint, sibling, type ReaderOptions } from '../weights/safetensors.ts';
import { openSource, readJson } from '../weights/sources.ts';
import { imageToRgba } from './image.ts';
import { DEFAULT_PRESET, openTransformerWeights } from './load.ts';
import { loadVaeDecoder } from './load-vae.ts';
import { gaussianNoise } from './noise.ts';
import { denoise, flowSchedule, imagePositionIds, packLatent, PATCH, throwIfAborted, unpackLatent } from './sampler.ts';
import { TextEncoders, type TextEncoderSources } from './text-encoders.ts';
import { TransformerRunner } from './transformer-runner.ts';

/** The autoencoder tensors the decoder reads (the encoder half is never loaded). */
const VAE_DECODER_TENSOR = /^(decoder\.|post_quant_conv\.)/;

/** Image pixels per latent pixel, and the side multiple FLUX needs (8× VAE, 2×2 patches). */
const VAE_SCALE = 8;
export const SIZE_MULTIPLE = VAE_SCALE * PATCH;

/** Where the components are: a diffusers folder, or each file/folder named. */
export type FluxPipelineSource =
  | string
  | {
      readonly transformer: string;
      readonly transformerConfig?: string;
      readonly vae: string;
      readonly vaeConfig?: string;
      readonly text: TextEncoderSources;
      /** Overrides of the model's defaults, as generation_defaults.json holds them. */
      readonly defaults?: GenerationDefaultsJson;
      /** The scheduler's dynamic shifting; default: on for guidance-distilled (dev) models. */
      readonly shift?: boolean;
    };

/** The optional `generation_defaults.json` of a demo model folder. */
export interface GenerationDefaultsJson {
  readonly num_inference_steps?: number;
  readonly width?: number;
  readonly height?: number;
  readonly true_cfg_scale?: number;
  readonly negative_prompt?: string;
  readonly guidance_scale?: number;
}

export interface GenerationDefaults {
  readonly steps: number;
  readonly width: number;
  readonly height: number;
  readonly guidance: number | undefined;
  readonly trueCfgScale: number;
  readonly negativePrompt: string;
}

export type PipelinePhase = 'load' | 'encode' | 'step' | 'decode' | 'done';

export interface PipelineProgress {
  readonly phase: PipelinePhase;
  /** Load: bytes and tensors read of the whole model so far, with rate and ETA. */
  readonly load?: ByteProgress;
  /** Steps: 1-based step and count. */
  readonly step?: number;
  readonly steps?: number;
  /** Duration of the finished piece of work (a step, the encoding, the decode). */
  readonly ms?: number;
  /** Since generate (or load) started. */
  readonly elapsedMs: number;
  readonly detail?: string;
  /** Steps: the latent [16, height/8, width/8] after the step, for a live preview. */
  readonly latent?: Float32Array;
}

export interface FluxPipelineLoadOptions {
  /** The GPU to run on; default: a new context, destroyed with the pipeline. */
  readonly gpu?: GpuContext;
  /**
   * Transformer precision preset (default w4a4 with INT8 where the preset says: 'mixed'). A packed model loads
   * at the precision it was quantized at; asking it for another is an error.
   */
  readonly precision?: PrecisionPresetName;
  /** Text encoder precision (default: the text encoders' own). */
  readonly textPrecision?: TextPrecision | { readonly clip?: TextPrecision; readonly t5?: TextPrecision };
  /** Free the text encoders after each encoding (they are reloaded for the next prompt). */
  readonly releaseEncoders?: boolean;
  /** Free the VAE decoder after each decode (reloaded, from the cache when there is one, for the next). */
  readonly releaseVae?: boolean;
  /**
   * Free the modulation linears' weights once a generation's modulation vectors are computed, before its first
   * step (rebuilt, from the cache when there is one, for the next generation): what the memory planner's
   * `residentBytes` assumes. On FLUX.1 they are 3.2 B parameters (1.6 GB at INT4).
   */
  readonly releaseModulation?: boolean;
  readonly onProgress?: (p: PipelineProgress) => void;
  readonly signal?: AbortSignal;
  /**
   * Keep the quantized transformer in this browser cache: a later load with the same source and precision
   * reads it from IndexedDB without touching the source's weights.
   */
  readonly cache?: WeightCache;
  /** What identifies the source's weights in the cache; default its transformer location (URL or path). */
  readonly cacheIdentity?: string;
}

export interface GenerateOptions {
  readonly prompt: string;
  readonly negativePrompt?: string;
  /** True classifier-free guidance (two transformer passes per step) when > 1. */
  readonly trueCfgScale?: number;
  readonly width?: number;
  readonly height?: number;
  readonly steps?: number;
  /** Default: a random seed (returned in the result). */
  readonly seed?: number;
  /** Embedded guidance of dev models; ignored by schnell. */
  readonly guidance?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: PipelineProgress) => void;
  readonly onStep?: (step: number, steps: number, ms: number) => void;
}

export interface GenerateTimings {
  readonly encodeMs: number;
  readonly stepMs: readonly number[];
  readonly decodeMs: number;
  readonly totalMs: number;
}

export interface GenerateResult {
  readonly rgba: Uint8ClampedArray<ArrayBuffer>;
  readonly width: number;
  readonly height: number;
  /** The denoised latent [16, height/8, width/8], before the VAE's scale/shift. */
  readonly latent: Float32Array;
  readonly seed: number;
  readonly steps: number;
  readonly guidance: number | undefined;
  /** True classifier-free guidance scale used (1: off). */
  readonly trueCfgScale: number;
  readonly timings: GenerateTimings;
}

export interface ResolvedSource {
  readonly transformer: string;
  readonly transformerConfig?: string;
  readonly vae: string;
  readonly vaeConfig?: string;
  readonly text: TextEncoderSources;
  readonly defaults?: GenerationDefaultsJson;
  readonly shift?: boolean;
  readonly name: string;
  /** A folder's AUTO_PRECISION_FILE, as read (decoded against the transformer's config at load). */
  readonly autoPrecision?: { readonly location: string; readonly json: unknown };
}

async function optionalJson(location: string): Promise<unknown> {
  return readJson(location).catch((e: unknown) => {
    if (e instanceof FluxError && e.code === 'io') return undefined;
    throw e;
  });
}

/** Whether a file can be opened (a local path, or an http(s) URL answering a Range probe). */
async function exists(location: string): Promise<boolean> {
  try {
    await (await openSource(location)).close();
    return true;
  } catch (e) {
    if (e instanceof FluxError && e.code === 'io') return false;
    throw e;
  }
}

/** The reference single files a FLUX repository folder may hold instead of (or besides) transformer/ and vae/. */
export const REFERENCE_TRANSFORMER_FILES = ['flux1-dev.safetensors', 'flux1-schnell.safetensors'] as const;
export const REFERENCE_VAE_FILE = 'ae.safetensors';
/**
 * A folder's calibrated INT4/INT8 choice per linear (`flux-w4a4 calibrate --precision-map`): the demo's "auto"
 * preset. Optional: models without one offer the fixed presets only.
 */
export const AUTO_PRECISION_FILE = 'precision-auto.json';

/**
 * Where each component of a folder is: diffusers subfolders (transformer/, vae/, text_encoder/, text_encoder_2/,
 * tokenizer/, tokenizer_2/), with the reference single files (flux1-dev/schnell.safetensors, ae.safetensors)
 * used when the diffusers transformer/ or vae/ folder is absent.
 */
export async function resolvePipelineSource(source: FluxPipelineSource): Promise<ResolvedSource> {
  if (typeof source !== 'string') return { ...source, name: source.transformer };
  const at = (name: string) => sibling(source, name);
  const index = await optionalJson(at('model_index.json'));
  if (index === undefined) throw new FluxError('io', `${source}: not a diffusers FLUX folder (no model_index.json)`);
  const scheduler = (await optionalJson(at('scheduler/scheduler_config.json'))) as { use_dynamic_shifting?: unknown } | undefined;
  const defaults = (await optionalJson(at('generation_defaults.json'))) as GenerationDefaultsJson | undefined;
  const autoPrecision = await optionalJson(at(AUTO_PRECISION_FILE));
  let transformer = at('transformer');
  if ((await optionalJson(at('transformer/config.json'))) === undefined) {
    for (const file of REFERENCE_TRANSFORMER_FILES) {
      if (await exists(at(file))) {
        transformer = at(file);
        break;
      }
    }
  }
  const vae = (await optionalJson(at('vae/config.json'))) === undefined && (await exists(at(REFERENCE_VAE_FILE))) ? at(REFERENCE_VAE_FILE) : at('vae');
  return {
    transformer,
    vae,
    text: { clip: at('text_encoder'), clipTokenizer: at('tokenizer'), t5: at('text_encoder_2'), t5Tokenizer: at('tokenizer_2') },
    defaults,
    shift: typeof scheduler?.use_dynamic_shifting === 'boolean' ? scheduler.use_dynamic_shifting : undefined,
    name: source.replace(/[/\\]+$/, '').split(/[/\\]/).pop() ?? source,
    autoPrecision: autoPrecision === undefined ? undefined : { location: at(AUTO_PRECISION_FILE), json: autoPrecision },
  };
}

/** What names the source's weights in the weight cache. */
function cacheIdentity(options: FluxPipelineLoadOptions, source: ResolvedSource): string {
  return options.cacheIdentity ?? source.transformer;
}

/** The weight cache for the VAE and text encoders, kept as stored (undefined without a cache). */
function checkpointCacheFor(options: FluxPipelineLoadOptions, source: ResolvedSource): CheckpointCache | undefined {
  return options.cache && new CheckpointCache(options.cache, cacheIdentity(options, source));
}

function checkSide(name: string, value: number): void {
  if (!Number.isInteger(value) || value < SIZE_MULTIPLE || value % SIZE_MULTIPLE !== 0) {
    throw new FluxError('bad-argument', `${name} must be a positive multiple of ${SIZE_MULTIPLE}, got ${value}`);
  }
}

function randomSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0]!;
}

export class FluxPipeline {
  private encoders: TextEncoders | undefined;
  /** Undefined between decodes with releaseVae. */
  private decoder: VaeDecoder | undefined;
  readonly vaeConfig: VaeConfig;
  private readonly runner: TransformerRunner;

  private constructor(
    readonly ctx: GpuContext,
    private readonly source: ResolvedSource,
    readonly transformer: FluxTransformer,
    vae: VaeDecoder,
    encoders: TextEncoders | undefined,
    private readonly options: FluxPipelineLoadOptions,
    readonly defaults: GenerationDefaults,
    /** The shifted (dev) or plain (schnell) schedule. */
    readonly shift: boolean,
    /** The cached weights the transformer came from, which layer swaps go through. */
    private readonly cached: CachedTransformer | undefined,
    /** Every quantizable linear's precision in the folder's AUTO_PRECISION_FILE; undefined without one. */
    readonly autoPrecision: PrecisionMap | undefined,
  ) {
    this.encoders = encoders;
    this.decoder = vae;
    this.vaeConfig = vae.config;
    this.runner = new TransformerRunner(transformer);
  }

  static async load(source: FluxPipelineSource, options: FluxPipelineLoadOptions = {}): Promise<FluxPipeline> {
    const ctx = options.gpu ?? (await GpuContext.create());
    try {
      return await FluxPipeline.loadOn(ctx, source, options);
    } catch (e) {
      if (!options.gpu) ctx.destroy();
      throw e;
    }
  }

  private static async loadOn(ctx: GpuContext, source: FluxPipelineSource, options: FluxPipelineLoadOptions): Promise<FluxPipeline> {
    const start = performance.now();
    const resolved = await resolvePipelineSource(source);
    // The VAE and text encoders go through the cache as stored; the transformer has its own quantized records.
    const checkpoints = checkpointCacheFor(options, resolved);
    const meter = await FluxPipeline.loadMeter(resolved, options, checkpoints, (load) => options.onProgress?.({ phase: 'load', elapsedMs: performance.now() - start, load }));
    const progress = (detail: string) => options.onProgress?.({ phase: 'load', elapsedMs: performance.now() - start, detail, load: meter.progress() });
    const reading = { onRead: meter.read };
    const weights = await FluxPipeline.openWeights(ctx, resolved, options, reading);
    const componentReading: ReaderOptions = { ...reading, cache: checkpoints };
    let transformer: FluxTransformer | undefined;
    let vae: VaeDecoder | undefined;
    let encoders: TextEncoders | undefined;
    try {
      transformer = await FluxTransformer.load(ctx, weights.source, {
        quant: weights.plan,
        onProgress: (p) => {
          throwIfAborted(options.signal);
          progress(`transformer ${p.done}/${p.total} ${p.layer}`);
        },
      });
      const auto = resolved.autoPrecision;
      const autoPrecision = auto && makeQuantPlan(transformer.config, decodePrecisionMap(auto.json, auto.location)).layers;
      throwIfAborted(options.signal);
      progress('vae');
      vae = await loadVaeDecoder(ctx, resolved.vae, resolved.vaeConfig, componentReading);
      throwIfAborted(options.signal);
      encoders = options.releaseEncoders ? undefined : await FluxPipeline.loadEncoders(ctx, resolved, options, progress, componentReading);
      await weights.commit(checkpoints?.records);
      const dev = transformer.config.guidanceEmbed;
      const d = resolved.defaults ?? {};
      const defaults: GenerationDefaults = {
        steps: d.num_inference_steps ?? (dev ? 28 : 4),
        width: d.width ?? 1024,
        height: d.height ?? 1024,
        guidance: dev ? (d.guidance_scale ?? 3.5) : undefined,
        trueCfgScale: d.true_cfg_scale ?? 1,
        negativePrompt: d.negative_prompt ?? '',
      };
      return new FluxPipeline(ctx, resolved, transformer, vae, encoders, options, defaults, resolved.shift ?? dev, weights.cached, autoPrecision);
    } catch (e) {
      transformer?.destroy();
      vae?.destroy();
      encoders?.destroy();
      // Out of quota the transformer's records are gone again (CachedTransformer); so are the others.
      if (e instanceof FluxError && e.code === 'quota-exceeded') await checkpoints?.discard();
      throw e;
    } finally {
      await weights.close();
    }
  }

  /**
   * Totals for the load's progress from the headers of what it will read: every transformer tensor (unless a
   * cache may supply them), the VAE's decoder, and (unless released after each prompt) the text encoders.
   */
  private static async loadMeter(
    source: ResolvedSource,
    options: FluxPipelineLoadOptions,
    checkpoints: CheckpointCache | undefined,
    onProgress: (p: ByteProgress) => void,
  ): Promise<LoadMeter> {
    // With a cache the transformer may come from IndexedDB without a request to its source, so its headers are
    // not fetched for the totals (a cold cached load then counts the transformer's bytes beyond them).
    const parts: [string, (name: string) => boolean][] = [[source.vae, (name) => VAE_DECODER_TENSOR.test(name)]];
    if (!options.cache) parts.push([source.transformer, () => true]);
    if (!options.releaseEncoders) for (const location of [source.text.clip, source.text.t5]) if (location !== undefined) parts.push([location, () => true]);
    let bytes = 0;
    let tensors = 0;
    for (const [location, reads] of parts) {
      // With a cache (so without the transformer here) the headers come from it once it has them.
      const reader = await openCheckpoint(location, { cache: checkpoints });
      try {
        for (const name of reader.names().filter(reads)) {
          bytes += reader.info(name).byteLength;
          tensors++;
        }
      } finally {
        await reader.close();
      }
    }
    return new LoadMeter(bytes, tensors, onProgress);
  }

  /** The transformer's weights: through the cache when given one, else straight from the source. */
  private static async openWeights(
    ctx: GpuContext,
    resolved: ResolvedSource,
    options: FluxPipelineLoadOptions,
    readerOptions: ReaderOptions,
  ): Promise<{ source: TransformerWeightSource; plan: QuantPlan; commit(alsoOwns?: readonly string[]): Promise<void>; close(): Promise<void>; cached?: CachedTransformer }> {
    const plan = options.precision === undefined ? undefined : { preset: options.precision };
    const open = () => openTransformerWeights(ctx, resolved.transformer, resolved.transformerConfig, plan, { reader: readerOptions });
    if (!options.cache) {
      const opened = await open();
      return { ...opened, commit: async () => {} };
    }
    let openedPlan: QuantPlan | undefined;
    const cached = await CachedTransformer.open(ctx, {
      cache: options.cache,
      identity: cacheIdentity(options, resolved),
      label: resolved.name,
      precision: options.precision ?? DEFAULT_PRESET,
      open: async () => {
        const opened = await open();
        openedPlan = opened.plan;
        return opened;
      },
      plan: () => openedPlan!,
    });
    return { source: cached, plan: cached.plan, commit: (alsoOwns) => cached.commit(alsoOwns), close: () => cached.close(), cached };
  }

  private static loadEncoders(
    ctx: GpuContext,
    source: ResolvedSource,
    options: FluxPipelineLoadOptions,
    progress: (detail: string) => void,
    reading: ReaderOptions,
  ): Promise<TextEncoders> {
    return TextEncoders.load(ctx, source.text, {
      ...reading,
      precision: options.textPrecision,
      signal: options.signal,
      onProgress: (p) => progress(`${p.model} ${p.done}/${p.total} ${p.layer}`),
    });
  }

  /**
   * The transformer's linears by canonical name (`single_transformer_blocks.3.attn.to_v`), each a slot the
   * demo's INT4/INT8 toggles rebuild in place.
   */
  layerSlots(): ReadonlyMap<string, LinearSlot> {
    return this.transformer.layers();
  }

  /**
   * Rebuilds the named linears at `precision`: from the weight cache when the pipeline has one and holds that
   * layer at that precision (else built from the source and stored), otherwise from the source's float weights
   * (reopened for the purpose; a packed model cannot change precision without its source).
   */
  async setPrecision(names: readonly string[], precision: LayerPrecision): Promise<void> {
    const slots = this.transformer.layers();
    for (const name of names) if (!slots.has(name)) throw new FluxError('bad-argument', `no transformer layer named ${name}`);
    await this.rebuildSlots(names.map((name) => [name, precision]));
  }

  /**
   * Puts every transformer linear at `plan`'s precision, rotation and group size (the adherence report's
   * methods); only the slots that differ are rebuilt. Low-rank ranks are not applied.
   */
  async applyQuantPlan(plan: QuantPlan): Promise<void> {
    const specs = new Map<string, LinearSpec>();
    for (const [name, slot] of this.transformer.layers()) {
      const precision = plan.layers.get(name);
      if (precision === undefined) throw new FluxError('bad-argument', `the plan has no precision for transformer layer ${name}`);
      // weightOnly is the layer's kind (a modulation linear), not the plan's to change.
      specs.set(name, { ...slot.spec, precision, rotation: plan.rotation, groupSize: plan.groupSize });
    }
    await this.applyLayerSpecs(specs);
  }

  /** Rebuilds the named linears whose precision (or, quantized, rotation or group size) differs from `specs`. */
  async applyLayerSpecs(specs: ReadonlyMap<string, LinearSpec>): Promise<void> {
    const slots = this.transformer.layers();
    const changes: [string, LinearSpec][] = [];
    for (const [name, spec] of specs) {
      const current = slots.get(name)?.spec;
      if (!current) throw new FluxError('bad-argument', `no transformer layer named ${name}`);
      const differs = current.precision !== spec.precision || (spec.precision !== 'float' && (current.rotation !== spec.rotation || current.groupSize !== spec.groupSize));
      if (differs) changes.push([name, spec]);
    }
    await this.rebuildSlots(changes);
  }

  private async rebuildSlots(changes: readonly (readonly [string, LayerPrecision | LinearSpec])[]): Promise<void> {
    if (changes.length === 0) return;
    const slots = this.transformer.layers();
    const weights = this.cached ?? (await openTransformerWeights(this.ctx, this.source.transformer, this.source.transformerConfig));
    try {
      const provider = sourceWeights(weights instanceof CachedTransformer ? weights : weights.source);
      for (const [name, spec] of changes) await slots.get(name)!.rebuild(spec, provider);
    } finally {
      await weights.close();
    }
  }

  /** GPU bytes of the VAE decoder's weights (0 while released). */
  get vaeWeightBytes(): number {
    return this.decoder?.weightBytes ?? 0;
  }

  private modulationSlots(): LinearSlot[] {
    const slots = this.transformer.layers();
    return modulationLinearNames(this.transformer.config).map((name) => slots.get(name)!);
  }

  /** Rebuilds released modulation linears at their own spec (from the cache, else the source). */
  private async restoreModulation(): Promise<void> {
    const released = this.modulationSlots().filter((slot) => slot.released);
    await this.rebuildSlots(released.map((slot) => [slot.name, slot.spec]));
  }

  /** Cache use of the load (records read, built, found corrupt), when loaded with a cache. */
  get cacheStats(): CacheLoadStats | undefined {
    return this.cached && { ...this.cached.stats };
  }

  /** T5 tokens per prompt, the text rows of every transformer call (undefined while the encoders are released). */
  get textTokens(): number | undefined {
    return this.encoders?.t5MaxLength;
  }

  /** Bytes of GPU memory the text encoders hold (0 while released). */
  get textEncoderBytes(): number {
    return this.encoders?.weightBytes ?? 0;
  }

  /** The model's name (its folder), for metadata. */
  get name(): string {
    return this.source.name;
  }

  async generate(o: GenerateOptions): Promise<GenerateResult> {
    const start = performance.now();
    const elapsed = () => performance.now() - start;
    const d = this.defaults;
    const width = o.width ?? d.width;
    const height = o.height ?? d.height;
    checkSide('width', width);
    checkSide('height', height);
    const steps = o.steps ?? d.steps;
    if (!Number.isInteger(steps) || steps < 1) throw new FluxError('bad-argument', `steps must be a positive integer, got ${steps}`);
    const seed = o.seed ?? randomSeed();
    const guidance = this.transformer.config.guidanceEmbed ? (o.guidance ?? d.guidance) : undefined;
    const trueCfgScale = o.trueCfgScale ?? d.trueCfgScale;
    const report = (p: Omit<PipelineProgress, 'elapsedMs'>) => o.onProgress?.({ ...p, elapsedMs: elapsed() });

    throwIfAborted(o.signal);
    report({ phase: 'encode' });
    const encodeStart = performance.now();
    this.encoders ??= await FluxPipeline.loadEncoders(this.ctx, this.source, { ...this.options, signal: o.signal }, () => {}, { cache: checkpointCacheFor(this.options, this.source) });
    const positive = await this.encoders.encode(o.prompt);
    const negative = trueCfgScale > 1 ? await this.encoders.encode(o.negativePrompt ?? d.negativePrompt) : undefined;
    if (this.options.releaseEncoders) {
      this.encoders.destroy();
      this.encoders = undefined;
    }
    const encodeMs = performance.now() - encodeStart;
    report({ phase: 'encode', ms: encodeMs });

    const [h, w] = [height / VAE_SCALE, width / VAE_SCALE];
    const channels = this.vaeConfig.latentChannels;
    const tokens = (h / PATCH) * (w / PATCH);
    const stepMs: number[] = [];
    await this.restoreModulation();
    const packed = await denoise(this.runner, {
      img: packLatent(gaussianNoise(seed, channels * h * w), channels, h, w),
      imgIds: imagePositionIds(h, w),
      positive: { txt: positive.txt, pooled: positive.pooled },
      negative: negative && { txt: negative.txt, pooled: negative.pooled },
      trueCfgScale,
      timesteps: flowSchedule(steps, tokens, this.shift),
      guidance,
      signal: o.signal,
      onConditioned: () => {
        if (this.options.releaseModulation) for (const slot of this.modulationSlots()) slot.release();
      },
      onStep: (k, n, ms, img) => {
        stepMs.push(ms);
        o.onStep?.(k, n, ms);
        if (o.onProgress) report({ phase: 'step', step: k, steps: n, ms, latent: unpackLatent(img, channels, h, w) });
      },
    });
    throwIfAborted(o.signal);
    report({ phase: 'decode' });
    const decodeStart = performance.now();
    const latent = unpackLatent(packed, channels, h, w);
    this.decoder ??= await loadVaeDecoder(this.ctx, this.source.vae, this.source.vaeConfig, { cache: checkpointCacheFor(this.options, this.source) });
    const decoded = await this.decoder.decode(latent, h, w);
    if (this.options.releaseVae) {
      this.decoder.destroy();
      this.decoder = undefined;
    }
    const decodeMs = performance.now() - decodeStart;
    report({ phase: 'decode', ms: decodeMs });
    const rgba = imageToRgba(decoded.image, decoded.width, decoded.height);
    const totalMs = elapsed();
    report({ phase: 'done', ms: totalMs });
    return { rgba, width: decoded.width, height: decoded.height, latent, seed, steps, guidance, trueCfgScale, timings: { encodeMs, stepMs, decodeMs, totalMs } };
  }

  /** Frees every GPU buffer the pipeline holds (the context stays). */
  destroy(): void {
    this.runner.dispose();
    this.transformer.destroy();
    this.decoder?.destroy();
    this.encoders?.destroy();
    this.encoders = undefined;
    if (!this.options.gpu) this.ctx.destroy();
  }
}
