/**
 * Loading a transformer's weights: canonical tensors read from the checkpoint (each file tensor once), dtype
 * handling (bf16 stays 16-bit, f16 widened), and one layer slot per canonical linear at its planned precision.
 * The forward composition is in transformer.ts.
 */
import { FluxError } from '../errors.ts';
import { uploadBuffer } from '../gpu/buffers.ts';
import type { GpuContext } from '../gpu/device.ts';
import type { GpuTensor } from '../gpu/tensor.ts';
import { LinearSlot, type LinearSource, type LinearSpec, type WeightsProvider } from '../nn/factory.ts';
import { lowRankSplit, roundToBf16 } from '../quant/low-rank.ts';
import { toFloat32 } from '../weights/dtypes.ts';
import type { CanonicalTensor, FluxCheckpoint } from './checkpoint.ts';
import type { FluxConfig } from './config.ts';
import { canonicalLinears, canonicalNormScales } from './layout.ts';
import { modulationLinearNames, type LayerPrecision, type QuantPlan } from './precision.ts';
import { uploadTensor } from './upload.ts';

/**
 * Several canonical linears reading the same input and writing adjacent column ranges of one output. Each
 * part is its own slot, so one can be rebuilt at another precision while it keeps its column range.
 */
export interface LinearGroup {
  readonly parts: readonly { readonly layer: LinearSlot; readonly col0: number }[];
}

/** A modulation linear and where its output (shift, scale, gate, …) sits in the modulation buffer. */
export interface Modulation {
  readonly layer: LinearSlot;
  /** Element offset of the first chunk in the modulation buffer. */
  readonly offset: number;
}

export interface LoadProgress {
  readonly done: number;
  readonly total: number;
  readonly layer: string;
}

export interface TransformerLoadOptions {
  readonly quant: QuantPlan;
  readonly onProgress?: (p: LoadProgress) => void;
}

/**
 * Float weights of canonical linears, uploaded as layer sources. All weights are read before the biases: parts
 * of one fused file tensor (BFL qkv, linear1) are adjacent, so each file tensor is read once per call. A linear
 * with a low-rank rank (`rankOf`) is split on the CPU: its source holds the f32 residual and the bf16 branch.
 */
export async function readLinearSources(
  ctx: GpuContext,
  checkpoint: FluxCheckpoint,
  names: readonly string[],
  rankOf: (name: string) => number = () => 0,
): Promise<LinearSource[]> {
  const weights: (CanonicalTensor | undefined)[] = [];
  const biases: CanonicalTensor[] = [];
  for (const n of names) weights.push(await checkpoint.read(`${n}.weight`));
  for (const n of names) biases.push(await checkpoint.read(`${n}.bias`));
  const sources: LinearSource[] = [];
  for (const [i, name] of names.entries()) {
    const w = weights[i]!;
    // Released as soon as they are on the GPU, so at most this call's file tensors are in JS memory.
    weights[i] = undefined;
    const [outFeatures, inFeatures] = w.shape as [number, number];
    const rank = rankOf(name);
    const lowRank = rank > 0 ? lowRankSplit(toFloat32(w.bytes, w.dtype), outFeatures, inFeatures, rank, roundToBf16) : undefined;
    // The low-rank split is CPU math on f32; otherwise the file's bytes are uploaded and widened on the GPU.
    const weight: GpuTensor = lowRank
      ? { buffer: await uploadBuffer(ctx, lowRank.residual, `${name}.weight`), offset: 0, shape: w.shape, dtype: 'f32' }
      : await uploadTensor(ctx, w, `${name}.weight`, { keepBf16: true });
    const bias = await uploadTensor(ctx, biases[i]!, `${name}.bias`);
    sources.push({ kind: 'float', weight, bias, lowRank });
  }
  return sources;
}

/** Rebuilds slots from the checkpoint's float weights: `slot.rebuild('int8', checkpointWeights(ctx, checkpoint))`. */
export function checkpointWeights(ctx: GpuContext, checkpoint: FluxCheckpoint): WeightsProvider {
  return async (name) => (await readLinearSources(ctx, checkpoint, [name]))[0]!;
}

/**
 * Where a transformer's weights come from: a source checkpoint (float weights, quantized while loading), a
 * packed model file, or the browser's weight cache. Linears are asked for in groups that read one input, so a
 * checkpoint reads each fused file tensor once.
 */
export interface TransformerWeightSource {
  readonly config: FluxConfig;
  /** Sources of canonical linears, one per name, each for the layer its spec describes. */
  linears(names: readonly string[], specs: readonly LinearSpec[]): Promise<LinearSource[]>;
  /** A float32 vector parameter by full name (`….norm_q.weight`). */
  vector(name: string): Promise<Float32Array<ArrayBuffer>>;
}

/** A checkpoint as a weight source; `rankOf` gives a linear's low-rank branch rank (default none). */
export function checkpointSource(ctx: GpuContext, checkpoint: FluxCheckpoint, rankOf: (name: string) => number = () => 0): TransformerWeightSource {
  return {
    config: checkpoint.config,
    linears: (names) => readLinearSources(ctx, checkpoint, names, rankOf),
    vector: (name) => checkpoint.readFloat32(name),
  };
}

/** A weight source as a slot provider: `slot.rebuild('int8', sourceWeights(source))`. */
export function sourceWeights(source: TransformerWeightSource): WeightsProvider {
  return async (name, spec) => (await source.linears([name], [spec]))[0]!;
}

/** Weights and vector parameters the loader reports progress over: every canonical linear and QK-norm scale. */
export function parameterCount(config: FluxConfig): number {
  return canonicalLinears(config).length + canonicalNormScales(config).length;
}

/** Reads canonical tensors and turns them into GPU layers at the plan's precision. */
export class WeightLoader {
  readonly vectors: GpuTensor[] = [];
  readonly slots = new Map<string, LinearSlot>();
  private done = 0;
  private readonly total: number;
  modulationSize = 0;
  /** Linears that see one vector per step: weight-only when quantized. */
  private readonly modulationNames: ReadonlySet<string>;

  constructor(
    private readonly ctx: GpuContext,
    private readonly source: TransformerWeightSource,
    private readonly options: TransformerLoadOptions,
  ) {
    this.total = parameterCount(source.config);
    this.modulationNames = new Set(modulationLinearNames(source.config));
  }

  /** A float32 vector parameter (QK-norm scales). */
  async vector(name: string): Promise<GpuTensor> {
    const values = await this.source.vector(name);
    const tensor: GpuTensor = { buffer: await uploadBuffer(this.ctx, values, name), offset: 0, shape: [values.length], dtype: 'f32' };
    this.vectors.push(tensor);
    this.progress(name);
    return tensor;
  }

  async modulation(name: string, size: number): Promise<Modulation> {
    const layer = await this.linear(name);
    if (layer.outFeatures !== size) throw new FluxError('bad-shape', `${name}: ${layer.outFeatures} outputs, expected ${size}`);
    const offset = this.modulationSize;
    this.modulationSize += size;
    return { layer, offset };
  }

  /** Canonical linears reading the same input, one slot each, at adjacent column ranges. */
  async group(names: readonly string[]): Promise<LinearGroup> {
    const layers = await this.linears(names);
    let col0 = 0;
    return {
      parts: layers.map((layer) => {
        const part = { layer, col0 };
        col0 += layer.outFeatures;
        return part;
      }),
    };
  }

  async linear(name: string): Promise<LinearSlot> {
    return (await this.linears([name]))[0]!;
  }

  /** Slots for canonical linears, each at its planned precision. */
  private async linears(names: readonly string[]): Promise<LinearSlot[]> {
    const specs = names.map((name) => this.specOf(name));
    const sources = await this.source.linears(names, specs);
    const slots: LinearSlot[] = [];
    for (const [i, name] of names.entries()) {
      const slot = await LinearSlot.build(this.ctx, name, specs[i]!, sources[i]!);
      this.slots.set(name, slot);
      slots.push(slot);
      this.progress(name);
    }
    return slots;
  }

  destroyAll(): void {
    for (const layer of this.slots.values()) layer.destroy();
    for (const t of this.vectors) t.buffer.destroy();
  }

  private specOf(name: string): LinearSpec {
    const { layers, rotation, groupSize } = this.options.quant;
    const precision: LayerPrecision = layers.get(name) ?? 'float';
    return { precision, rotation, groupSize, weightOnly: this.modulationNames.has(name) };
  }

  private progress(layer: string): void {
    this.done++;
    this.options.onProgress?.({ done: this.done, total: this.total, layer });
  }
}
