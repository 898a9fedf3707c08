/**
 * Runs the transformer: owns the activation arena (allocated once per token count and reused across
 * blocks and calls), encodes every block in order into one command batch with no CPU readback inside
 * the block loop, and reads back only the output (and, when asked, the streams after each block).
 */
import { FluxError } from '../errors.ts';
import { CommandBatch } from '../gpu/batch.ts';
import { createBuffer, readFloat32, writeBuffer } from '../gpu/buffers.ts';
import type { GpuContext } from '../gpu/device.ts';
import { GPU_DTYPE_BYTES, type GpuTensor } from '../gpu/tensor.ts';
import { timestepEmbedding } from '../kernels/embed.ts';
import { TIMESTEP_EMBEDDING_DIM } from '../model/layout.ts';
import { ropeTable } from '../model/rope.ts';
import { checkFluxInputs, type FluxInputs } from '../model/inputs.ts';
import type { FluxTransformer, TransformerActivations } from '../model/transformer.ts';

export interface TransformerOutputs {
  /** [imageTokens, outChannels] predicted velocity. */
  readonly out: Float32Array;
  /** With `intermediates`: `double_blocks.N.img|txt`, `single_blocks.N.out`, as in the golden files. */
  readonly streams: ReadonlyMap<string, Float32Array>;
}

interface Arena extends TransformerActivations {
  /** Position ids the RoPE tables currently hold. */
  ropeIds: Float32Array | undefined;
  readonly buffers: readonly GPUBuffer[];
  readonly bytes: number;
  readonly img: GpuTensor;
  readonly txt: GpuTensor;
  readonly pooled: GpuTensor;
  readonly timestepEmbedding: GpuTensor;
  readonly guidanceEmbedding: GpuTensor;
  readonly scratch: { readonly hidden: GpuTensor; readonly vec: GpuTensor; readonly term: GpuTensor };
  readonly out: GpuTensor;
}

export class TransformerRunner {
  private arena: Arena | undefined;

  constructor(readonly model: FluxTransformer) {}

  private get ctx(): GpuContext {
    return this.model.ctx;
  }

  /**
   * Peak activation memory besides weights: the arena, plus the quantized copies of linear inputs, which
   * come from the context's buffer pool.
   */
  get activationBytes(): number {
    return (this.arena?.bytes ?? 0) + this.ctx.pool.peakBytes;
  }

  /**
   * The modulation vectors of every step, computed up front: they depend only on the timestep, the guidance
   * and the pooled text vector, so the denoising loop needs no modulation (or embedder) weights. Returns a
   * [steps, modulationSize] tensor the caller destroys; pass `{ modulations, step }` to forward.
   */
  async precomputeModulations(steps: readonly { readonly timestep: number; readonly guidance?: number }[], pooled: Float32Array): Promise<GpuTensor> {
    const { config, modulationSize } = this.model;
    if (pooled.length !== config.vecDim) throw new FluxError('bad-shape', `y: expected ${config.vecDim} values, got ${pooled.length}`);
    // The conditioning path uses only the arena's small vectors; any token count will do.
    const arena = await this.arenaFor(this.arena?.textRows ?? 0, this.arena?.imageRows ?? 1);
    writeBuffer(this.ctx, arena.pooled.buffer, 0, pooled);
    const bytes = modulationSize * GPU_DTYPE_BYTES.f32;
    const buffer = await createBuffer(this.ctx, steps.length * bytes, 'modulations');
    try {
      for (const [i, step] of steps.entries()) {
        const batch = new CommandBatch(this.ctx, 'modulation');
        await this.encodeConditioning(batch, arena, step.timestep, step.guidance);
        batch.copy(arena.modulation.buffer, 0, buffer, i * bytes, bytes);
        await batch.submit();
      }
    } catch (e) {
      buffer.destroy();
      throw e;
    }
    return { buffer, offset: 0, shape: [steps.length, modulationSize], dtype: 'f32' };
  }

  async forward(
    inputs: FluxInputs,
    options: {
      intermediates?: boolean;
      modulations?: { readonly tensor: GpuTensor; readonly step: number };
      /**
       * Benchmarks: the embeddings, each block and the final layer are submitted on their own and their GPU
       * times (timestamps, else wall clock) pushed here as `{ name, ms }`, in order.
       */
      blockTimes?: { name: string; ms: number }[];
    } = {},
  ): Promise<TransformerOutputs> {
    const { config } = this.model;
    const { imgTokens: imageRows, txtTokens: textRows } = checkFluxInputs(config, inputs);
    const arena = await this.arenaFor(textRows, imageRows);
    const ids = new Float32Array(inputs.txtIds.length + inputs.imgIds.length);
    ids.set(inputs.txtIds);
    ids.set(inputs.imgIds, inputs.txtIds.length);
    // Every denoising step passes the same ids: the table is computed and uploaded once per position set.
    if (!sameValues(ids, arena.ropeIds)) {
      const rope = ropeTable(ids, textRows + imageRows, config.axesDim, config.theta);
      writeBuffer(this.ctx, arena.ropeCos.buffer, 0, rope.cos);
      writeBuffer(this.ctx, arena.ropeSin.buffer, 0, rope.sin);
      arena.ropeIds = ids;
    }
    writeBuffer(this.ctx, arena.img.buffer, 0, inputs.img);
    if (textRows > 0) writeBuffer(this.ctx, arena.txt.buffer, 0, inputs.txt);
    writeBuffer(this.ctx, arena.pooled.buffer, 0, inputs.y);

    let batch = new CommandBatch(this.ctx, 'transformer forward');
    const endSegment = async (name: string): Promise<void> => {
      if (!options.blockTimes) return;
      options.blockTimes.push({ name, ms: (await batch.submitTimed()).ms });
      batch = new CommandBatch(this.ctx, 'transformer forward');
    };
    if (options.modulations) {
      const bytes = this.model.modulationSize * GPU_DTYPE_BYTES.f32;
      batch.copy(options.modulations.tensor.buffer, options.modulations.tensor.offset + options.modulations.step * bytes, arena.modulation.buffer, 0, bytes);
    } else {
      await this.encodeConditioning(batch, arena, inputs.timestep, inputs.guidance);
    }
    await this.model.encodeEmbedding(batch, arena, arena.img, arena.txt);
    await endSegment(options.modulations ? 'embeddings' : 'embeddings + modulation');

    // Streams are copied aside on the GPU as the blocks go, and read back once at the end.
    const snapshots: { name: string; buffer: GPUBuffer; byteOffset: number; bytes: number }[] = [];
    const snapshot = async (name: string, row0: number, rows: number): Promise<void> => {
      const rowBytes = config.hiddenSize * 4;
      const buffer = await createBuffer(this.ctx, rows * rowBytes, name);
      batch.copy(arena.x.buffer, row0 * rowBytes, buffer, 0, rows * rowBytes);
      snapshots.push({ name, buffer, byteOffset: 0, bytes: rows * rowBytes });
    };
    try {
      for (let i = 0; i < this.model.depthDouble; i++) {
        await this.model.encodeDoubleBlock(batch, i, arena);
        await endSegment(`double block ${i}`);
        if (options.intermediates) {
          await snapshot(`double_blocks.${i}.img`, textRows, imageRows);
          await snapshot(`double_blocks.${i}.txt`, 0, textRows);
        }
      }
      for (let i = 0; i < this.model.depthSingle; i++) {
        await this.model.encodeSingleBlock(batch, i, arena);
        await endSegment(`single block ${i}`);
        if (options.intermediates) await snapshot(`single_blocks.${i}.out`, 0, textRows + imageRows);
      }
      await this.model.encodeFinalLayer(batch, arena, arena.out);
      if (options.blockTimes) await endSegment('final layer');
      else await batch.submit();
      const out = await readFloat32(this.ctx, arena.out.buffer, 0, imageRows * config.outChannels);
      const streams = new Map<string, Float32Array>();
      for (const s of snapshots) streams.set(s.name, await readFloat32(this.ctx, s.buffer, s.byteOffset, s.bytes / 4));
      return { out, streams };
    } finally {
      for (const s of snapshots) s.buffer.destroy();
    }
  }

  private async encodeConditioning(batch: CommandBatch, arena: Arena, timestep: number, guidance: number | undefined): Promise<void> {
    const { config } = this.model;
    if (config.guidanceEmbed && guidance === undefined) throw new FluxError('bad-argument', 'guidance is required: this model is guidance-distilled (dev)');
    await timestepEmbedding(batch, { t: timestep, out: arena.timestepEmbedding });
    if (config.guidanceEmbed) await timestepEmbedding(batch, { t: guidance!, out: arena.guidanceEmbedding });
    await this.model.encodeConditioning(batch, {
      timestepEmbedding: arena.timestepEmbedding,
      guidanceEmbedding: config.guidanceEmbed ? arena.guidanceEmbedding : undefined,
      pooled: arena.pooled,
      scratch: arena.scratch,
      modulation: arena.modulation,
    });
  }

  /** Frees the activation arena (weights stay with the model). */
  dispose(): void {
    for (const b of this.arena?.buffers ?? []) b.destroy();
    this.arena = undefined;
  }

  private async arenaFor(textRows: number, imageRows: number): Promise<Arena> {
    if (this.arena && this.arena.textRows === textRows && this.arena.imageRows === imageRows) return this.arena;
    this.dispose();
    const { hiddenSize: h, mlpHidden: m, headDim, inChannels, contextDim, vecDim, outChannels } = this.model.config;
    const rows = textRows + imageRows;
    const buffers: GPUBuffer[] = [];
    let bytes = 0;
    const tensor = async (label: string, shape: number[], buffer?: GPUBuffer): Promise<GpuTensor> => {
      if (!buffer) {
        buffer = await createBuffer(this.ctx, shape.reduce((a, b) => a * b, 1) * GPU_DTYPE_BYTES.f32, label);
        buffers.push(buffer);
        bytes += buffer.size;
      }
      return { buffer, offset: 0, shape, dtype: 'f32' };
    };
    try {
      const qkvSingle = await tensor('qkv', [rows, 3 * h + m]);
      const attnSingle = await tensor('attention', [rows, h + m]);
      this.arena = {
        textRows,
        imageRows,
        x: await tensor('x', [rows, h]),
        normed: await tensor('normed', [rows, h]),
        projected: await tensor('projected', [rows, h]),
        qkvSingle,
        qkvDouble: await tensor('qkv', [rows, 3 * h], qkvSingle.buffer),
        mlpHidden: await tensor('mlp hidden', [rows, m], qkvSingle.buffer),
        attnSingle,
        attnDouble: await tensor('attention', [rows, h], attnSingle.buffer),
        ropeIds: undefined,
        ropeCos: await tensor('rope cos', [rows, headDim / 2]),
        ropeSin: await tensor('rope sin', [rows, headDim / 2]),
        modulation: await tensor('modulation', [this.model.modulationSize]),
        img: await tensor('img', [imageRows, inChannels]),
        txt: await tensor('txt', [textRows, contextDim]),
        pooled: await tensor('pooled', [vecDim]),
        timestepEmbedding: await tensor('timestep embedding', [TIMESTEP_EMBEDDING_DIM]),
        guidanceEmbedding: await tensor('guidance embedding', [TIMESTEP_EMBEDDING_DIM]),
        scratch: { hidden: await tensor('embedder hidden', [h]), vec: await tensor('vec', [h]), term: await tensor('vec term', [h]) },
        out: await tensor('out', [imageRows, outChannels]),
        buffers,
        bytes,
      };
      return this.arena;
    } catch (e) {
      for (const b of buffers) b.destroy();
      throw e;
    }
  }
}

function sameValues(a: Float32Array, b: Float32Array | undefined): boolean {
  return b !== undefined && a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
}
