/**
 * The FLUX.1 transformer on WebGPU: weights loaded from a checkpoint at the precision the plan gives each
 * layer, and the blocks as compositions of kernels over an activation arena the caller owns.
 *
 * Streams live as row ranges of one [L, H] buffer, text rows first (the joint order of attention and of
 * the single blocks), so joining them before the single blocks costs nothing.
 */
import { FluxError } from '../errors.ts';
import type { CommandBatch } from '../gpu/batch.ts';
import type { GpuContext } from '../gpu/device.ts';
import type { GpuTensor } from '../gpu/tensor.ts';
import { attention } from '../kernels/attention.ts';
import type { MatrixView } from '../kernels/matrix-view.ts';
import { add, gatedResidualAdd, geluTanh, silu } from '../kernels/elementwise.ts';
import { layerNormModulate, qkNormRope, type QkNormScales } from '../kernels/norm.ts';
import { FluxCheckpoint } from './checkpoint.ts';
import type { FluxConfig } from './config.ts';
import {
  DOUBLE_MODULATION_CHUNKS,
  DOUBLE_STREAMS,
  doubleBlockPrefix,
  FINAL_MODULATION_CHUNKS,
  SINGLE_BLOCK,
  SINGLE_MODULATION_CHUNKS,
  singleBlockPrefix,
  TOP_LEVEL,
  type DoubleStreamNames,
} from './layout.ts';
import type { LinearSlot } from '../nn/factory.ts';
import { encodeLinear, withInput, type LinearLayer } from '../nn/linear.ts';
import type { QuantPlan } from './precision.ts';
import { checkpointSource, WeightLoader, type LinearGroup, type Modulation, type TransformerLoadOptions, type TransformerWeightSource } from './weight-loader.ts';

export type { LoadProgress, TransformerLoadOptions } from './weight-loader.ts';

interface StreamWeights {
  readonly modulation: Modulation;
  readonly qkv: LinearGroup;
  readonly norm: QkNormScales;
  readonly attnOut: LinearLayer;
  readonly mlpIn: LinearLayer;
  readonly mlpOut: LinearLayer;
}

interface DoubleBlockWeights {
  readonly img: StreamWeights;
  readonly txt: StreamWeights;
}

interface SingleBlockWeights {
  readonly modulation: Modulation;
  /** q, k, v and the MLP input projection: [L, 3H + M] columns. */
  readonly linear1: LinearGroup;
  readonly norm: QkNormScales;
  readonly out: LinearLayer;
}

/**
 * The activation buffers one forward pass works in, for L = textRows + imageRows tokens. Owned by the
 * scheduler (src/pipeline), which reuses them across blocks and steps.
 */
export interface TransformerActivations {
  readonly textRows: number;
  readonly imageRows: number;
  /** [L, H]: the residual streams, text rows first. */
  readonly x: GpuTensor;
  /** [L, H]: normalised-and-modulated input of the next linear. */
  readonly normed: GpuTensor;
  /** [L, H]: a projection's output before its gated residual add. */
  readonly projected: GpuTensor;
  /** [L, 3H] view of the fused-projection buffer (double blocks: q | k | v). */
  readonly qkvDouble: GpuTensor;
  /** [L, 3H + M] view of the same buffer (single blocks: q | k | v | mlp). */
  readonly qkvSingle: GpuTensor;
  /** [L, M] view of the same buffer: the double blocks' MLP hidden layer (q/k/v are dead by then). */
  readonly mlpHidden: GpuTensor;
  /** [L, H] view of the attention buffer (double blocks). */
  readonly attnDouble: GpuTensor;
  /** [L, H + M] view of the same buffer: concat(attention, gelu(mlp)), the single block's output projection input. */
  readonly attnSingle: GpuTensor;
  /** [L, headDim / 2] RoPE tables for the joint sequence. */
  readonly ropeCos: GpuTensor;
  readonly ropeSin: GpuTensor;
  /** [modulationSize] every modulation linear's output, for the current timestep. */
  readonly modulation: GpuTensor;
}

/** Rows [row0, row0 + rows) of a matrix tensor as a kernel block. */
export function rowsOf(tensor: GpuTensor, row0: number, rows: number): MatrixView {
  return { tensor, row0, rows };
}

export class FluxTransformer {
  private constructor(
    readonly ctx: GpuContext,
    readonly config: FluxConfig,
    readonly quant: QuantPlan,
    private readonly top: {
      readonly imgIn: LinearLayer;
      readonly txtIn: LinearLayer;
      readonly timeIn: readonly [LinearLayer, LinearLayer];
      readonly guidanceIn: readonly [LinearLayer, LinearLayer] | undefined;
      readonly vecIn: readonly [LinearLayer, LinearLayer];
      readonly finalModulation: Modulation;
      readonly finalLinear: LinearLayer;
    },
    private readonly doubles: readonly DoubleBlockWeights[],
    private readonly singles: readonly SingleBlockWeights[],
    /** Elements of the modulation buffer. */
    readonly modulationSize: number,
    private readonly ownedTensors: readonly GpuTensor[],
    private readonly slots: ReadonlyMap<string, LinearSlot>,
  ) {}

  /** Loads from a checkpoint (quantizing as the plan says) or any other weight source (packed file, cache). */
  static async load(ctx: GpuContext, weights: FluxCheckpoint | TransformerWeightSource, options: TransformerLoadOptions): Promise<FluxTransformer> {
    const source = weights instanceof FluxCheckpoint ? checkpointSource(ctx, weights, (name) => options.quant.ranks?.get(name) ?? 0) : weights;
    const loader = new WeightLoader(ctx, source, options);
    try {
      const config = source.config;
      const h = config.hiddenSize;
      const top = {
        imgIn: await loader.linear(TOP_LEVEL.imgIn),
        txtIn: await loader.linear(TOP_LEVEL.txtIn),
        timeIn: [await loader.linear(TOP_LEVEL.timeIn1), await loader.linear(TOP_LEVEL.timeIn2)] as const,
        guidanceIn: config.guidanceEmbed
          ? ([await loader.linear(TOP_LEVEL.guidanceIn1), await loader.linear(TOP_LEVEL.guidanceIn2)] as const)
          : undefined,
        vecIn: [await loader.linear(TOP_LEVEL.vecIn1), await loader.linear(TOP_LEVEL.vecIn2)] as const,
      };
      const doubles: DoubleBlockWeights[] = [];
      for (let i = 0; i < config.depthDouble; i++) {
        const prefix = doubleBlockPrefix(i);
        const stream = async (names: DoubleStreamNames): Promise<StreamWeights> => ({
          modulation: await loader.modulation(prefix + names.modulation, DOUBLE_MODULATION_CHUNKS * h),
          qkv: await loader.group([names.q, names.k, names.v].map((n) => prefix + n)),
          norm: { q: await loader.vector(`${prefix}${names.normQ}.weight`), k: await loader.vector(`${prefix}${names.normK}.weight`) },
          attnOut: await loader.linear(prefix + names.attnOut),
          mlpIn: await loader.linear(prefix + names.mlpIn),
          mlpOut: await loader.linear(prefix + names.mlpOut),
        });
        doubles.push({ img: await stream(DOUBLE_STREAMS.img), txt: await stream(DOUBLE_STREAMS.txt) });
      }
      const singles: SingleBlockWeights[] = [];
      for (let i = 0; i < config.depthSingle; i++) {
        const prefix = singleBlockPrefix(i);
        const b = SINGLE_BLOCK;
        singles.push({
          modulation: await loader.modulation(prefix + b.modulation, SINGLE_MODULATION_CHUNKS * h),
          linear1: await loader.group([b.q, b.k, b.v, b.mlpIn].map((n) => prefix + n)),
          norm: { q: await loader.vector(`${prefix}${b.normQ}.weight`), k: await loader.vector(`${prefix}${b.normK}.weight`) },
          out: await loader.linear(prefix + b.out),
        });
      }
      const finalModulation = await loader.modulation(TOP_LEVEL.finalModulation, FINAL_MODULATION_CHUNKS * h);
      const finalLinear = await loader.linear(TOP_LEVEL.finalLinear);
      return new FluxTransformer(ctx, config, options.quant, { ...top, finalModulation, finalLinear }, doubles, singles, loader.modulationSize, loader.vectors, loader.slots);
    } catch (e) {
      loader.destroyAll();
      throw e;
    }
  }

  /** Bytes of GPU memory held by the weights. */
  get weightBytes(): number {
    let bytes = 0;
    for (const layer of this.slots.values()) bytes += layer.weightBytes;
    for (const t of this.ownedTensors) bytes += t.buffer.size;
    return bytes;
  }

  /**
   * vec = time_in(temb(t)) [+ guidance_in(temb(g))] + vector_in(y), then every modulation linear applied to
   * silu(vec), written to `modulation`. Embeddings are [256] f32; the scratch vectors are [H] f32 each.
   */
  async encodeConditioning(
    batch: CommandBatch,
    a: {
      readonly timestepEmbedding: GpuTensor;
      readonly guidanceEmbedding: GpuTensor | undefined;
      readonly pooled: GpuTensor;
      readonly scratch: { readonly hidden: GpuTensor; readonly vec: GpuTensor; readonly term: GpuTensor };
      readonly modulation: GpuTensor;
    },
  ): Promise<void> {
    const { hidden, vec, term } = a.scratch;
    // Each embedder MLP is Linear, SiLU, Linear; the results are summed into vec.
    const mlps: [readonly [LinearLayer, LinearLayer], GpuTensor][] = [[this.top.timeIn, a.timestepEmbedding], [this.top.vecIn, a.pooled]];
    if (this.top.guidanceIn) {
      if (!a.guidanceEmbedding) throw new FluxError('bad-argument', 'this model is guidance-distilled (dev): a guidance value is required');
      mlps.push([this.top.guidanceIn, a.guidanceEmbedding]);
    }
    for (const [i, [[first, second], input]] of mlps.entries()) {
      await encodeLinear(batch, first, { tensor: input }, { tensor: hidden });
      await silu(batch, { src: { tensor: hidden } });
      await encodeLinear(batch, second, { tensor: hidden }, { tensor: i === 0 ? vec : term });
      if (i > 0) await add(batch, { x: { tensor: vec }, y: { tensor: term } });
    }
    // Every modulation linear reads silu(vec), which `term` now holds.
    await silu(batch, { src: { tensor: vec }, dst: { tensor: term } });
    await withInput({ tensor: term }, async (siluVec) => {
      for (const m of this.modulations()) await m.layer.encode(batch, siluVec, { tensor: a.modulation, col0: m.offset, cols: m.layer.outFeatures });
    });
  }

  /** img_in on the image tokens and txt_in on the text tokens, into their rows of x. */
  async encodeEmbedding(batch: CommandBatch, acts: TransformerActivations, img: GpuTensor, txt: GpuTensor): Promise<void> {
    await encodeLinear(batch, this.top.txtIn, { tensor: txt }, rowsOf(acts.x, 0, acts.textRows));
    await encodeLinear(batch, this.top.imgIn, { tensor: img }, rowsOf(acts.x, acts.textRows, acts.imageRows));
  }

  async encodeDoubleBlock(batch: CommandBatch, index: number, acts: TransformerActivations): Promise<void> {
    const block = this.doubles[index];
    if (!block) throw new FluxError('bad-argument', `no double block ${index}`);
    const { hiddenSize: h, numHeads, headDim } = this.config;
    const streams: [StreamWeights, number, number][] = [
      [block.txt, 0, acts.textRows],
      [block.img, acts.textRows, acts.imageRows],
    ];
    const mod = acts.modulation;
    // Attention: each stream's modulated LayerNorm and q/k/v, then one joint attention over both.
    for (const [s, row0, rows] of streams) {
      const shift1 = s.modulation.offset;
      await layerNormModulate(batch, { x: rowsOf(acts.x, row0, rows), y: rowsOf(acts.normed, row0, rows), modulation: mod, shiftOffset: shift1, scaleOffset: shift1 + h });
      await encodeGroup(batch, s.qkv, rowsOf(acts.normed, row0, rows), acts.qkvDouble, row0, rows);
    }
    await qkNormRope(batch, { qkv: acts.qkvDouble, heads: numHeads, headDim, text: block.txt.norm, image: block.img.norm, textRows: acts.textRows, cos: acts.ropeCos, sin: acts.ropeSin });
    await attention(batch, { qkv: acts.qkvDouble, heads: numHeads, headDim, out: { tensor: acts.attnDouble } });
    for (const [s, row0, rows] of streams) {
      const gate1 = s.modulation.offset + 2 * h;
      await encodeLinear(batch, s.attnOut, rowsOf(acts.attnDouble, row0, rows), rowsOf(acts.projected, row0, rows));
      await gatedResidualAdd(batch, { x: rowsOf(acts.x, row0, rows), y: rowsOf(acts.projected, row0, rows), modulation: mod, gateOffset: gate1 });
    }
    // MLP, per stream, on the updated streams.
    for (const [s, row0, rows] of streams) {
      const shift2 = s.modulation.offset + 3 * h;
      await layerNormModulate(batch, { x: rowsOf(acts.x, row0, rows), y: rowsOf(acts.normed, row0, rows), modulation: mod, shiftOffset: shift2, scaleOffset: shift2 + h });
      await encodeLinear(batch, s.mlpIn, rowsOf(acts.normed, row0, rows), rowsOf(acts.mlpHidden, row0, rows));
      await geluTanh(batch, { src: rowsOf(acts.mlpHidden, row0, rows) });
      await encodeLinear(batch, s.mlpOut, rowsOf(acts.mlpHidden, row0, rows), rowsOf(acts.projected, row0, rows));
      await gatedResidualAdd(batch, { x: rowsOf(acts.x, row0, rows), y: rowsOf(acts.projected, row0, rows), modulation: mod, gateOffset: shift2 + 2 * h });
    }
  }

  async encodeSingleBlock(batch: CommandBatch, index: number, acts: TransformerActivations): Promise<void> {
    const block = this.singles[index];
    if (!block) throw new FluxError('bad-argument', `no single block ${index}`);
    const { hiddenSize: h, numHeads, headDim, mlpHidden: m } = this.config;
    const rows = acts.textRows + acts.imageRows;
    const shift = block.modulation.offset;
    await layerNormModulate(batch, { x: { tensor: acts.x }, y: { tensor: acts.normed }, modulation: acts.modulation, shiftOffset: shift, scaleOffset: shift + h });
    await encodeGroup(batch, block.linear1, { tensor: acts.normed }, acts.qkvSingle, 0, rows);
    await qkNormRope(batch, { qkv: acts.qkvSingle, heads: numHeads, headDim, text: block.norm, image: block.norm, textRows: acts.textRows, cos: acts.ropeCos, sin: acts.ropeSin });
    await attention(batch, { qkv: acts.qkvSingle, heads: numHeads, headDim, out: { tensor: acts.attnSingle, cols: h } });
    await geluTanh(batch, { src: { tensor: acts.qkvSingle, col0: 3 * h, cols: m }, dst: { tensor: acts.attnSingle, col0: h, cols: m } });
    await encodeLinear(batch, block.out, { tensor: acts.attnSingle }, { tensor: acts.projected });
    await gatedResidualAdd(batch, { x: { tensor: acts.x }, y: { tensor: acts.projected }, modulation: acts.modulation, gateOffset: shift + 2 * h });
  }

  /** The final modulated LayerNorm and linear on the image rows; out is [imageRows, outChannels]. */
  async encodeFinalLayer(batch: CommandBatch, acts: TransformerActivations, out: GpuTensor): Promise<void> {
    const h = this.config.hiddenSize;
    const image = (t: GpuTensor): MatrixView => rowsOf(t, acts.textRows, acts.imageRows);
    const shift = this.top.finalModulation.offset;
    await layerNormModulate(batch, { x: image(acts.x), y: image(acts.normed), modulation: acts.modulation, shiftOffset: shift, scaleOffset: shift + h });
    await encodeLinear(batch, this.top.finalLinear, image(acts.normed), { tensor: out });
  }

  /**
   * Every linear of the model by canonical (diffusers) name, e.g. `single_transformer_blocks.3.attn.to_v`.
   * `slot.rebuild(precision, provider)` swaps one in place (the demo's INT4/INT8 toggles, the weight cache).
   */
  layers(): ReadonlyMap<string, LinearSlot> {
    return this.slots;
  }

  get depthDouble(): number {
    return this.doubles.length;
  }

  get depthSingle(): number {
    return this.singles.length;
  }

  destroy(): void {
    for (const layer of this.slots.values()) layer.destroy();
    for (const t of this.ownedTensors) t.buffer.destroy();
  }

  private *modulations(): Generator<Modulation> {
    for (const d of this.doubles) yield d.img.modulation, yield d.txt.modulation;
    for (const s of this.singles) yield s.modulation;
    yield this.top.finalModulation;
  }
}

/** The group on x, into rows [row0, row0 + rows) of `output`, each part into its own column range. */
function encodeGroup(batch: CommandBatch, group: LinearGroup, x: MatrixView, output: GpuTensor, row0: number, rows: number): Promise<void> {
  return withInput(x, async (input) => {
    for (const { layer, col0 } of group.parts) await layer.encode(batch, input, { tensor: output, row0, rows, col0, cols: layer.outFeatures });
  });
}
