/** The low-rank layer on the GPU against its CPU form, alone and inside the transformer (flux-tiny-a). */
import { describe, expect, it } from 'vitest';
import { CommandBatch } from '../../src/gpu/batch.ts';
import { uploadBuffer } from '../../src/gpu/buffers.ts';
import { FluxCheckpoint } from '../../src/model/checkpoint.ts';
import { makeQuantPlan } from '../../src/model/precision.ts';
import { FakeQuantModel, planWeightBytes } from '../../src/model/quality/evaluate.ts';
import { createLinear } from '../../src/nn/factory.ts';
import { encodeLinear } from '../../src/nn/linear.ts';
import { LowRankLinear } from '../../src/nn/low-rank-linear.ts';
import { loadTransformer } from '../../src/pipeline/load.ts';
import { TransformerRunner } from '../../src/pipeline/transformer-runner.ts';
import { FakeQuantLinear } from '../../src/quant/fake-quant-layer.ts';
import { lowRankSplit, roundToBf16 } from '../../src/quant/low-rank.ts';
import { readColumnRange, testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn, relativeL2Error } from '../helpers/random.ts';
import { BFL_TRANSFORMER, loadTinyGolden, openSafetensors } from '../model/helpers.ts';
import { loadParams } from '../model/quality/helpers.ts';

describe('LowRankLinear (ConvRot residual + bf16 branch)', () => {
  it('matches the fake-quantized CPU layer, writing a column block of a wider output', async () => {
    const ctx = await testGpu();
    const [tokens, inF, out, rank, wide, col0] = [9, 256, 70, 5, 90, 11];
    const x = randn(tokens * inF, 1);
    const w = randn(out * inF, 2, 0.05);
    for (let r = 0; r < out; r++) for (let i = 0; i < inF; i += 9) w[r * inF + i]! += 0.8 * Math.sin(r + i);
    const b = randn(out, 3);
    const split = lowRankSplit(w, out, inF, rank, roundToBf16);
    const plan = makeQuantPlan({ ...(await loadTinyGolden()).config }, { preset: 'w4a4' });
    const tensor = async (values: Float32Array, shape: number[], label: string) => ({ buffer: await uploadBuffer(ctx, values, label), offset: 0, shape, dtype: 'f32' as const });
    const residual = await tensor(split.residual, [out, inF], 'residual');
    const base = await createLinear(ctx, { precision: 'int4', rotation: plan.rotation, groupSize: plan.groupSize }, residual, await tensor(b, [out], 'bias'));
    const layer = await LowRankLinear.create(ctx, base, split, 'test');
    const xt = await tensor(x, [tokens, inF], 'x');
    const yt = await tensor(new Float32Array(tokens * wide).fill(7), [tokens, wide], 'y');
    try {
      const batch = new CommandBatch(ctx, 'low-rank test');
      await encodeLinear(batch, layer, { tensor: xt }, { tensor: yt, col0, cols: out });
      await batch.submit();
      const got = await readColumnRange(ctx, yt.buffer, tokens, wide, col0, out, 7);
      const cpu = FakeQuantLinear.prepare(w, b, out, inF, { rotation: 'regular', groupSize: 256, format: 'int4', rank }).apply(x, tokens);
      expect(maxRelError(got, cpu)).toBeLessThan(1e-5);
      expect(layer.weightBytes).toBe(base.weightBytes + 2 * rank * (inF + out));
    } finally {
      layer.destroy();
      xt.buffer.destroy();
      yt.buffer.destroy();
    }
  });

  it('in the transformer: the CPU method\'s error and the accounted weight bytes', async () => {
    const { config, golden, inputs } = await loadTinyGolden();
    const base = makeQuantPlan(config, { preset: 'mixed' });
    // A branch on some layers of every kind (grouped q/k/v, INT8 and INT4, double and single blocks), rank 0 on others.
    const ranked = ['transformer_blocks.0.attn.to_k', 'transformer_blocks.1.attn.to_out.0', 'transformer_blocks.1.ff_context.net.2', 'single_transformer_blocks.0.attn.to_v', 'single_transformer_blocks.2.proj_mlp', 'single_transformer_blocks.3.proj_out'];
    const ranks = new Map([...base.layers].filter(([, p]) => p !== 'float').map(([name], i) => [name, ranked.includes(name) ? 4 + (i % 5) : 0]));
    const plan = makeQuantPlan(config, { preset: 'mixed', ranks });
    const checkpoint = FluxCheckpoint.open(await openSafetensors(BFL_TRANSFORMER), config);
    const model = await loadTransformer(await testGpu(), checkpoint, { preset: 'mixed', ranks });
    await checkpoint.close();
    const runner = new TransformerRunner(model);
    try {
      const exact = golden.get('out')!;
      const gpuError = relativeL2Error((await runner.forward(inputs)).out, exact);
      const cpuError = relativeL2Error(new FakeQuantModel(config, await loadParams(BFL_TRANSFORMER, config), plan).forward(inputs), exact);
      expect(Math.abs(gpuError - cpuError) / cpuError).toBeLessThan(0.02);
      expect(gpuError).toBeLessThan(relativeL2Error(golden.get('ref_w4a4_regular256')!, exact));
      expect(model.weightBytes).toBe(planWeightBytes(config, plan, 2).total);
    } finally {
      runner.dispose();
      model.destroy();
    }
  });
});
