/**
 * The CPU fake-quantized ConvRot forward against the golden quantized references: checks that our
 * reading of the method (rotation, scales, rounding, clamping, which layers) is the one the golden
 * outputs were computed with, before any GPU kernel is involved.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { FluxConfig } from '../../src/model/config.ts';
import { makeQuantPlan, type PrecisionPreset } from '../../src/model/precision.ts';
import type { FluxInputs } from '../../src/model/inputs.ts';
import { fluxForward, floatLinear, type LinearHook } from '../../src/model/reference/flux-ref.ts';
import { fakeQuantLinearRef } from '../../src/quant/conv-linear-ref.ts';
import type { RotationKind } from '../../src/quant/hadamard.ts';
import { relativeL2Error } from '../helpers/random.ts';
import { BFL_TRANSFORMER, loadPlanned, loadTinyGolden, type PlannedCheckpoint } from './helpers.ts';

let config: FluxConfig;
let inputs: FluxInputs;
let checkpoint: PlannedCheckpoint;
let golden: Map<string, Float32Array>;

beforeAll(async () => {
  ({ config, golden, inputs } = await loadTinyGolden());

  checkpoint = await loadPlanned(BFL_TRANSFORMER, config);
});

function fakeQuantForward(preset: PrecisionPreset, rotation: RotationKind): Float32Array {
  const plan = makeQuantPlan(config, { preset, rotation, modulation: 'float' }); // as the golden references
  const float = floatLinear(checkpoint.float32);
  const hook: LinearHook = (name, x, rows) => {
    const precision = plan.layers.get(name) ?? 'float';
    if (precision === 'float') return float(name, x, rows);
    const w = checkpoint.float32(`${name}.weight`);
    const b = checkpoint.float32(`${name}.bias`);
    const out = b.length;
    return fakeQuantLinearRef(x, w, b, rows, w.length / out, out, { rotation, groupSize: plan.groupSize, format: precision });
  };
  return fluxForward(config, checkpoint.float32, inputs, hook).out;
}

describe('CPU fake-quantized ConvRot forward vs the golden quantized references', () => {
  // The golden outputs come from the same math in PyTorch; only float summation order differs, which
  // moves a few activations across rounding boundaries. 2 % of the reference error covers that.
  const SAME_MATH_TOLERANCE = 0.02;
  it.each([
    ['w4a4', 'regular', 'ref_w4a4_regular256'],
    ['w4a4', 'none', 'ref_w4a4_none'],
    ['w4a4', 'sylvester', 'ref_w4a4_sylvester256'],
    ['w8a8', 'regular', 'ref_w8a8_regular256'],
  ] as const)('%s with %s rotation reproduces %s', (preset, rotation, refName) => {
    const out = fakeQuantForward(preset, rotation);
    const ref = golden.get(refName)!;
    const exact = golden.get('out')!;
    const ourError = relativeL2Error(out, exact);
    const refError = relativeL2Error(ref, exact);
    expect(Math.abs(ourError - refError) / refError).toBeLessThan(SAME_MATH_TOLERANCE);
    expect(relativeL2Error(out, ref)).toBeLessThan(refError);
  });
});
