/**
 * CLIP-L's text model on WebGPU (docs/text-encoders.md): token + position embeddings (looked up on the CPU),
 * pre-norm layers with causal attention and a quick_gelu MLP, the final LayerNorm; pooled output = the final
 * state at the first EOS. Linears run at the precision the plan gives them (float, ConvRot INT8 or INT4).
 */
import { CommandBatch } from '../gpu/batch.ts';
import { readFloat32 } from '../gpu/buffers.ts';
import type { GpuContext } from '../gpu/device.ts';
import type { GpuTensor } from '../gpu/tensor.ts';
import { attention } from '../kernels/attention.ts';
import { add, geluTanh, quickGelu } from '../kernels/elementwise.ts';
import { layerNorm } from '../kernels/norm.ts';
import { encodeLinear, withInput, type LinearLayer } from '../nn/linear.ts';
import { FluxError } from '../errors.ts';
import type { TensorReader } from '../weights/safetensors.ts';
import { CLIP_NAMES, firstEos, type ClipOutputs, type ClipTextConfig } from './text-config.ts';
import { Activations, destroyWeights, EmbeddingTable, TextWeightLoader, type TextModelLoadOptions } from './text-weights.ts';

interface Norm {
  readonly weight: GpuTensor;
  readonly bias: GpuTensor;
}

interface ClipLayer {
  readonly ln1: Norm;
  readonly q: LinearLayer;
  readonly k: LinearLayer;
  readonly v: LinearLayer;
  readonly out: LinearLayer;
  readonly ln2: Norm;
  readonly fc1: LinearLayer;
  readonly fc2: LinearLayer;
}

/** Tensors per layer (4 linears with bias, 2 norms with bias, 2 more linears) plus embeddings and final norm. */
const CLIP_TENSORS_PER_LAYER = 16;
const CLIP_OTHER_TENSORS = 4;

export class ClipTextModel {
  private constructor(
    readonly ctx: GpuContext,
    readonly config: ClipTextConfig,
    private readonly tokenEmbedding: EmbeddingTable,
    /** [maxPositions, hidden] f32 on the CPU. */
    private readonly positionEmbedding: Float32Array,
    private readonly layers: readonly ClipLayer[],
    private readonly finalNorm: Norm,
    private readonly weights: ReturnType<TextWeightLoader['take']>,
    readonly weightBytes: number,
  ) {}

  static async load(ctx: GpuContext, reader: TensorReader, config: ClipTextConfig, options: TextModelLoadOptions): Promise<ClipTextModel> {
    const { hiddenSize: h, intermediateSize: m } = config;
    const loader = new TextWeightLoader(ctx, reader, options, CLIP_TENSORS_PER_LAYER * config.numLayers + CLIP_OTHER_TENSORS);
    const norm = async (name: string): Promise<Norm> => ({ weight: await loader.vector(`${name}.weight`, [h]), bias: await loader.vector(`${name}.bias`, [h]) });
    try {
      const tokenEmbedding = await loader.embedding(CLIP_NAMES.tokenEmbedding, config.vocabSize, h);
      const positionTable = await loader.embedding(CLIP_NAMES.positionEmbedding, config.maxPositions, h);
      const positionEmbedding = positionTable.gather(Int32Array.from({ length: config.maxPositions }, (_, i) => i), 'CLIP positions');
      const layers: ClipLayer[] = [];
      for (let i = 0; i < config.numLayers; i++) {
        const n = CLIP_NAMES.layer(i);
        layers.push({
          ln1: await norm(n.ln1),
          q: await loader.linear(n.q, h, h, true),
          k: await loader.linear(n.k, h, h, true),
          v: await loader.linear(n.v, h, h, true),
          out: await loader.linear(n.out, h, h, true),
          ln2: await norm(n.ln2),
          fc1: await loader.linear(n.fc1, m, h, true),
          fc2: await loader.linear(n.fc2, h, m, true),
        });
      }
      const finalNorm = await norm(CLIP_NAMES.finalNorm);
      return new ClipTextModel(ctx, config, tokenEmbedding, positionEmbedding, layers, finalNorm, loader.take(), loader.weightBytes);
    } catch (e) {
      loader.destroyAll();
      throw e;
    }
  }

  /** hidden [ids.length, hidden] after the final LayerNorm, and the pooled state at the first EOS. */
  async encode(ids: Int32Array): Promise<ClipOutputs> {
    const { hiddenSize: h, intermediateSize: m, numHeads, layerNormEps: eps } = this.config;
    const rows = ids.length;
    if (rows < 1 || rows > this.config.maxPositions) {
      throw new FluxError('bad-argument', `CLIP: ${rows} ids, expected 1 to ${this.config.maxPositions} (max_position_embeddings)`);
    }
    const pooledAt = firstEos(ids, this.config.eosId);
    const embedded = this.tokenEmbedding.gather(ids, 'CLIP ids');
    for (let i = 0; i < embedded.length; i++) embedded[i]! += this.positionEmbedding[i]!;

    const acts = new Activations(this.ctx);
    try {
      const x = await acts.f32('clip x', rows, h, embedded);
      const normed = await acts.f32('clip normed', rows, h);
      const qkv = await acts.f32('clip qkv', rows, 3 * h);
      const attn = await acts.f32('clip attention', rows, h);
      const projected = await acts.f32('clip projected', rows, h);
      const hidden = await acts.f32('clip mlp', rows, m);
      const batch = new CommandBatch(this.ctx, 'clip text model');
      const activation = this.config.activation === 'quick_gelu' ? quickGelu : geluTanh;
      for (const l of this.layers) {
        await layerNorm(batch, { x: { tensor: x }, y: { tensor: normed }, weight: l.ln1.weight, bias: l.ln1.bias, eps });
        await withInput({ tensor: normed }, async (input) => {
          for (const [i, layer] of [l.q, l.k, l.v].entries()) await layer.encode(batch, input, { tensor: qkv, col0: i * h, cols: h });
        });
        await attention(batch, { qkv, heads: numHeads, headDim: h / numHeads, out: { tensor: attn }, causal: true });
        await encodeLinear(batch, l.out, { tensor: attn }, { tensor: projected });
        await add(batch, { x: { tensor: x }, y: { tensor: projected } });
        await layerNorm(batch, { x: { tensor: x }, y: { tensor: normed }, weight: l.ln2.weight, bias: l.ln2.bias, eps });
        await encodeLinear(batch, l.fc1, { tensor: normed }, { tensor: hidden });
        await activation(batch, { src: { tensor: hidden } });
        await encodeLinear(batch, l.fc2, { tensor: hidden }, { tensor: projected });
        await add(batch, { x: { tensor: x }, y: { tensor: projected } });
      }
      await layerNorm(batch, { x: { tensor: x }, y: { tensor: normed }, weight: this.finalNorm.weight, bias: this.finalNorm.bias, eps });
      await batch.submit();
      const out = await readFloat32(this.ctx, normed.buffer, 0, rows * h);
      return { hidden: out, pooled: out.slice(pooledAt * h, (pooledAt + 1) * h) };
    } finally {
      acts.destroy();
    }
  }

  destroy(): void {
    destroyWeights(this.weights);
  }
}
