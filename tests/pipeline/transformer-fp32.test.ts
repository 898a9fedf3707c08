/** The whole transformer on the GPU in float32 against the golden reference outputs. */
import { beforeAll, describe, expect, it } from 'vitest';
import { FluxCheckpoint } from '../../src/model/checkpoint.ts';
import type { FluxConfig } from '../../src/model/config.ts';
import { makeQuantPlan } from '../../src/model/precision.ts';
import { FluxTransformer } from '../../src/model/transformer.ts';
import { TransformerRunner } from '../../src/pipeline/transformer-runner.ts';
import { testGpu } from '../helpers/gpu.ts';
import { BFL_TRANSFORMER, DIFFUSERS_TRANSFORMER, FLOAT_MATCH_TOLERANCE, goldenErrors, goldenStreamNames, loadTinyGolden, openSafetensors } from '../model/helpers.ts';
import type { FluxInputs } from '../../src/model/inputs.ts';

let config: FluxConfig;
let golden: Map<string, Float32Array>;
let inputs: FluxInputs;

beforeAll(async () => {
  ({ config, golden, inputs } = await loadTinyGolden());
});

describe.each([
  ['reference (BFL) file', BFL_TRANSFORMER],
  ['diffusers file', DIFFUSERS_TRANSFORMER],
])('GPU transformer, fp32, from the %s', (_, path) => {
  it('matches forward.safetensors: out and every block stream within 1e-4', async () => {
    const ctx = await testGpu();
    const checkpoint = FluxCheckpoint.open(await openSafetensors(path), config);
    const model = await FluxTransformer.load(ctx, checkpoint, { quant: makeQuantPlan(config, { preset: 'float' }) });
    await checkpoint.close();
    const runner = new TransformerRunner(model);
    try {
      const { out, streams } = await runner.forward(inputs, { intermediates: true });
      expect([...streams.keys()].sort()).toEqual(goldenStreamNames(golden));
      for (const [name, error] of Object.entries(goldenErrors(out, streams, golden))) expect(error, name).toBeLessThanOrEqual(FLOAT_MATCH_TOLERANCE);
    } finally {
      runner.dispose();
      model.destroy();
    }
  });
});
