/**
 * The T5 v1.1 encoder on WebGPU (docs/text-encoders.md): token embedding (looked up on the CPU), pre-norm
 * layers with RMSNorm, unscaled self-attention plus the relative position bias computed from layer 0's table
 * and shared by every layer, a gated-GELU feed-forward, and the final RMSNorm. No attention mask: FLUX runs T5
 * over the padding too. All sums are f32 (T5 overflows f16). Linears run at the plan's precision.
 */
import { CommandBatch } from '../gpu/batch.ts';
import { readFloat32 } from '../gpu/buffers.ts';
import type { GpuContext } from '../gpu/device.ts';
import type { GpuTensor } from '../gpu/tensor.ts';
import { attention } from '../kernels/attention.ts';
import { add, gatedGeluTanh } from '../kernels/elementwise.ts';
import { rmsNorm } from '../kernels/norm.ts';
import { positionBias } from '../kernels/position-bias.ts';
import { encodeLinear, withInput, type LinearLayer } from '../nn/linear.ts';
import { FluxError } from '../errors.ts';
import type { TensorReader } from '../weights/safetensors.ts';
import { relativePositionBuckets } from './t5-buckets.ts';
import { T5_NAMES, t5EmbeddingName, type T5Config } from './text-config.ts';
import { Activations, destroyWeights, EmbeddingTable, TextWeightLoader, type TextModelLoadOptions } from './text-weights.ts';

interface T5Layer {
  readonly attnNorm: GpuTensor;
  readonly q: LinearLayer;
  readonly k: LinearLayer;
  readonly v: LinearLayer;
  readonly o: LinearLayer;
  readonly ffNorm: GpuTensor;
  readonly wi0: LinearLayer;
  readonly wi1: LinearLayer;
  readonly wo: LinearLayer;
}

/** Tensors per layer (7 linears, 2 norms), plus the embedding, the bias table and the final norm. */
const T5_TENSORS_PER_LAYER = 9;
const T5_OTHER_TENSORS = 3;

export class T5Encoder {
  private constructor(
    readonly ctx: GpuContext,
    readonly config: T5Config,
    private readonly embedding: EmbeddingTable,
    /** [numBuckets, heads] f32. */
    private readonly biasTable: GpuTensor,
    private readonly layers: readonly T5Layer[],
    private readonly finalNorm: GpuTensor,
    private readonly weights: ReturnType<TextWeightLoader['take']>,
    readonly weightBytes: number,
  ) {}

  /** Loads the encoder; the token embedding may be stored as `shared.weight` or `encoder.embed_tokens.weight`. */
  static async load(ctx: GpuContext, reader: TensorReader, config: T5Config, options: TextModelLoadOptions): Promise<T5Encoder> {
    const { dModel: d, dFf: f, numHeads } = config;
    const inner = numHeads * config.dKv;
    const loader = new TextWeightLoader(ctx, reader, options, T5_TENSORS_PER_LAYER * config.numLayers + T5_OTHER_TENSORS);
    try {
      const embedding = await loader.embedding(t5EmbeddingName(reader), config.vocabSize, d);
      const biasTable = await loader.vector(T5_NAMES.relativeBias, [config.numBuckets, numHeads]);
      const layers: T5Layer[] = [];
      for (let i = 0; i < config.numLayers; i++) {
        const n = T5_NAMES.layer(i);
        layers.push({
          attnNorm: await loader.vector(n.attnNorm, [d]),
          q: await loader.linear(n.q, inner, d, false),
          k: await loader.linear(n.k, inner, d, false),
          v: await loader.linear(n.v, inner, d, false),
          o: await loader.linear(n.o, d, inner, false),
          ffNorm: await loader.vector(n.ffNorm, [d]),
          wi0: await loader.linear(n.wi0, f, d, false),
          wi1: await loader.linear(n.wi1, f, d, false),
          wo: await loader.linear(n.wo, d, f, false),
        });
      }
      const finalNorm = await loader.vector(T5_NAMES.finalNorm, [d]);
      return new T5Encoder(ctx, config, embedding, biasTable, layers, finalNorm, loader.take(), loader.weightBytes);
    } catch (e) {
      loader.destroyAll();
      throw e;
    }
  }

  /** The final hidden states [ids.length, dModel]. */
  async encode(ids: Int32Array): Promise<Float32Array> {
    const { dModel: d, dFf: f, numHeads, dKv, layerNormEps: eps } = this.config;
    const inner = numHeads * dKv;
    const rows = ids.length;
    if (rows < 1) throw new FluxError('bad-argument', 'T5: no ids to encode');
    const embedded = this.embedding.gather(ids, 'T5 ids');
    const acts = new Activations(this.ctx);
    try {
      const x = await acts.f32('t5 x', rows, d, embedded);
      const normed = await acts.f32('t5 normed', rows, d);
      const qkv = await acts.f32('t5 qkv', rows, 3 * inner);
      const attn = await acts.f32('t5 attention', rows, inner);
      const projected = await acts.f32('t5 projected', rows, d);
      const ff = await acts.f32('t5 wi_0 | wi_1', rows, 2 * f);
      const gated = await acts.f32('t5 gated', rows, f);
      const buckets = await acts.u32('t5 buckets', relativePositionBuckets(rows, this.config.numBuckets, this.config.maxDistance));
      const bias = await acts.f32('t5 position bias', numHeads, 2 * rows - 1);

      const batch = new CommandBatch(this.ctx, 't5 encoder');
      await positionBias(batch, { buckets, table: this.biasTable, heads: numHeads, out: bias });
      for (const l of this.layers) {
        await rmsNorm(batch, { x: { tensor: x }, y: { tensor: normed }, weight: l.attnNorm, eps });
        await withInput({ tensor: normed }, async (input) => {
          for (const [i, layer] of [l.q, l.k, l.v].entries()) await layer.encode(batch, input, { tensor: qkv, col0: i * inner, cols: inner });
        });
        // T5 folds the 1/√d scaling into its initialisation: scores are plain q·k plus the bias.
        await attention(batch, { qkv, heads: numHeads, headDim: dKv, out: { tensor: attn }, scale: 1, offsetBias: bias });
        await encodeLinear(batch, l.o, { tensor: attn }, { tensor: projected });
        await add(batch, { x: { tensor: x }, y: { tensor: projected } });
        await rmsNorm(batch, { x: { tensor: x }, y: { tensor: normed }, weight: l.ffNorm, eps });
        await withInput({ tensor: normed }, async (input) => {
          await l.wi0.encode(batch, input, { tensor: ff, col0: 0, cols: f });
          await l.wi1.encode(batch, input, { tensor: ff, col0: f, cols: f });
        });
        await gatedGeluTanh(batch, { gate: { tensor: ff, col0: 0, cols: f }, up: { tensor: ff, col0: f, cols: f }, dst: { tensor: gated } });
        await encodeLinear(batch, l.wo, { tensor: gated }, { tensor: projected });
        await add(batch, { x: { tensor: x }, y: { tensor: projected } });
      }
      await rmsNorm(batch, { x: { tensor: x }, y: { tensor: normed }, weight: this.finalNorm, eps });
      await batch.submit();
      return await readFloat32(this.ctx, normed.buffer, 0, rows * d);
    } finally {
      acts.destroy();
    }
  }

  destroy(): void {
    destroyWeights(this.weights);
  }
}
