/**
 * A quantized layer plus a float low-rank branch (SVDQuant-style, src/quant/low-rank.ts):
 *     y = base(x) + (x · L2ᵀ) · L1ᵀ
 * where base holds the residual R = W − L1·L2 (ConvRot INT4/INT8) and L2 [r, in], L1 [out, r] are bf16. The
 * branch is two small f32 GEMMs; the second adds into the base layer's output (gemm_f32 `accumulate`), so the
 * layer writes y once and adds once, with a [tokens, r] scratch from the context's pool in between.
 */
import type { CommandBatch } from '../gpu/batch.ts';
import { uploadBuffer } from '../gpu/buffers.ts';
import type { GpuContext } from '../gpu/device.ts';
import type { GpuTensor } from '../gpu/tensor.ts';
import { viewLayout, type MatrixView } from '../kernels/matrix-view.ts';
import { floatGemm } from '../kernels/gemm.ts';
import type { LowRankSplit } from '../quant/low-rank.ts';
import { fromFloat32 } from '../weights/dtypes.ts';
import type { LinearInput, LinearLayer } from './linear.ts';

export class LowRankLinear implements LinearLayer {
  private constructor(
    private readonly ctx: GpuContext,
    private readonly base: LinearLayer,
    /** L2 [rank, in] bf16. */
    private readonly down: GpuTensor,
    /** L1 [out, rank] bf16. */
    private readonly up: GpuTensor,
  ) {}

  /** Uploads the branch of `split` (whose residual `base` was built from); the layer owns `base` from here on. */
  static async create(ctx: GpuContext, base: LinearLayer, split: Pick<LowRankSplit, 'rank' | 'up' | 'down'>, label: string): Promise<LowRankLinear> {
    const { rank } = split;
    const bf16 = async (values: Float32Array, shape: [number, number], what: string): Promise<GpuTensor> => ({
      buffer: await uploadBuffer(ctx, fromFloat32(values, 'BF16'), `${label} ${what}`),
      offset: 0,
      shape,
      dtype: 'bf16',
    });
    const down = await bf16(split.down, [rank, base.inFeatures], 'low-rank down');
    try {
      return new LowRankLinear(ctx, base, down, await bf16(split.up, [base.outFeatures, rank], 'low-rank up'));
    } catch (e) {
      down.buffer.destroy();
      throw e;
    }
  }

  get inFeatures(): number {
    return this.base.inFeatures;
  }

  get outFeatures(): number {
    return this.base.outFeatures;
  }

  get precision() {
    return this.base.precision;
  }

  get rank(): number {
    return this.down.shape[0]!;
  }

  get weightBytes(): number {
    return this.base.weightBytes + this.down.buffer.size + this.up.buffer.size;
  }

  async encode(batch: CommandBatch, input: LinearInput, y: MatrixView): Promise<void> {
    await this.base.encode(batch, input, y);
    const rows = viewLayout(input.x, 'low-rank x').rows;
    const scratch = await this.ctx.pool.acquire(rows * this.rank * 4, 'low-rank branch');
    try {
      const t: GpuTensor = { buffer: scratch, offset: 0, shape: [rows, this.rank], dtype: 'f32' };
      await floatGemm(batch, { x: input.x, w: this.down, y: { tensor: t } });
      await floatGemm(batch, { x: { tensor: t }, w: this.up, y, accumulate: true });
    } finally {
      // Later dispatches of the queue run after these two, so the scratch can be handed out again now.
      this.ctx.pool.release(scratch);
    }
  }

  destroy(): void {
    this.base.destroy();
    this.down.buffer.destroy();
    this.up.buffer.destroy();
  }
}
