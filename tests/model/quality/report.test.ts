/**
 * Automatic INT4/INT8 selection and the quality report on flux-tiny-a. The calibration fixture (maxima and
 * sensitivities over seeded random inputs, `flux-w4a4 calibrate` defaults) is independent of the golden
 * call the errors are measured on.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { FluxConfig } from '../../../src/model/config.ts';
import type { FluxInputs } from '../../../src/model/inputs.ts';
import { canonicalLinears } from '../../../src/model/layout.ts';
import { paramGetter } from '../../../src/model/params.ts';
import { makeQuantPlan } from '../../../src/model/precision.ts';
import { autoPrecisionMap, measureSensitivity, parsePrecisionSpec, resolvePrecisionSpec } from '../../../src/model/quality/auto-precision.ts';
import { readCalibration, type Calibration } from '../../../src/model/quality/calibration.ts';
import { FakeQuantModel, planWeightBytes } from '../../../src/model/quality/evaluate.ts';
import { randomFluxInputs } from '../../../src/model/quality/random-inputs.ts';
import { BASELINE_METHOD, formatReport, qualityReport, REPORT_BYTE_BUDGET } from '../../../src/model/quality/report.ts';
import { fluxForward } from '../../../src/model/reference/flux-ref.ts';
import { relativeL2Error } from '../../helpers/random.ts';
import { BFL_TRANSFORMER, loadTinyGolden, openSafetensors } from '../helpers.ts';
import { loadParams } from './helpers.ts';

const CALIBRATION = BFL_TRANSFORMER.replace(/\.safetensors$/, '.calibration.safetensors');

let config: FluxConfig;
let inputs: FluxInputs;
let params: Map<string, Float32Array>;
let calibration: Calibration;

beforeAll(async () => {
  ({ config, inputs } = await loadTinyGolden());
  params = await loadParams(BFL_TRANSFORMER, config);
  const file = await openSafetensors(CALIBRATION);
  calibration = await readCalibration(file, config);
  await file.close();
});

const blocks = () => canonicalLinears(config).filter((l) => l.role === 'block');
const paramCount = (l: { inFeatures: number; outFeatures: number }) => l.inFeatures * l.outFeatures;

describe('automatic mixed precision', () => {
  it('measures a layer by replaying the all-INT8 run up to it: the same as running it from scratch', () => {
    const call = randomFluxInputs(config, 3, { imageSide: 4, textTokens: 4 });
    const layers = ['transformer_blocks.1.ff.net.2', 'single_transformer_blocks.2.proj_out'];
    const measured = measureSensitivity(config, params, [call], { layers });
    expect([...measured.keys()]).toEqual(layers);
    expect(() => measureSensitivity(config, params, [call], { layers, signal: AbortSignal.abort() })).toThrow(/abort/i);
    const run = (int4?: string) =>
      new FakeQuantModel(config, params, makeQuantPlan(config, { preset: 'w8a8', overrides: int4 ? [{ pattern: int4, precision: 'int4' }] : [] })).forward(call);
    const int8 = run();
    const float = fluxForward(config, paramGetter(params), call).out;
    for (const layer of layers) {
      const direct = relativeL2Error(run(layer), int8) * Math.hypot(...int8) / Math.hypot(...float);
      expect(measured.get(layer)! / direct).toBeCloseTo(1, 10);
    }
  });

  it('keeps the most valuable layers at INT8 within the parameter budget', () => {
    const sensitivity = calibration.sensitivity!;
    const total = blocks().reduce((n, l) => n + paramCount(l), 0);
    for (const fraction of [0, 0.1, 0.2, 0.5, 1]) {
      const map = autoPrecisionMap(config, sensitivity, fraction);
      const int8 = blocks().filter((l) => map.get(l.name) === 'int8');
      expect(int8.reduce((n, l) => n + paramCount(l), 0)).toBeLessThanOrEqual(fraction * total);
      expect([...map.values()].every((p) => p === 'int8' || p === 'int4')).toBe(true);
      if (fraction === 1) expect(int8).toHaveLength(blocks().length);
      if (fraction === 0) expect(int8).toHaveLength(0);
    }
    // The chosen layers outrank every left-out one that would still have fit.
    const map = autoPrecisionMap(config, sensitivity, 0.2);
    const gain = (name: string) => sensitivity.get(name)! ** 2 / paramCount(blocks().find((l) => l.name === name)!);
    const chosen = blocks().filter((l) => map.get(l.name) === 'int8');
    expect(chosen.length).toBeGreaterThan(0);
    const weakest = Math.min(...chosen.map((l) => gain(l.name)));
    const left = blocks().filter((l) => map.get(l.name) === 'int4' && paramCount(l) <= paramCount(chosen.find((c) => gain(c.name) === weakest)!));
    for (const l of left) expect(gain(l.name)).toBeLessThanOrEqual(weakest);
  });

  it('parses --precision values; auto needs sensitivities', () => {
    expect(parsePrecisionSpec('w4a4')).toEqual({ preset: 'w4a4' });
    expect(parsePrecisionSpec('auto')).toEqual({ auto: 0.2 });
    expect(parsePrecisionSpec('auto:0.35')).toEqual({ auto: 0.35 });
    for (const bad of ['auto:', 'auto:1.5', 'auto:x', 'w3a3']) expect(() => parsePrecisionSpec(bad)).toThrow(/precision/);
    expect(() => resolvePrecisionSpec({ auto: 0.2 }, config, undefined)).toThrow(/calibrate/);
    const map = resolvePrecisionSpec({ auto: 0.2 }, config, calibration.sensitivity);
    expect(makeQuantPlan(config, { preset: map }).layers.get('x_embedder')).toBe('float');
  });
});

describe('quality report', () => {
  it(`has a method within ${REPORT_BYTE_BUDGET}x the W4A4 bytes with at least 25 % lower error than W4A4 regular 256`, async () => {
    const report = await qualityReport(config, params, calibration, [inputs], 'golden', { only: [BASELINE_METHOD, 'smooth-regular', 'lowrank-regular', 'auto', 'smooth-auto'] });
    const row = (id: string) => report.rows.find((r) => r.id === id)!;
    // Plain W4A4 is the golden reference's 0.1913.
    expect(row(BASELINE_METHOD).relativeL2).toBeCloseTo(0.1914, 3);
    expect(row(BASELINE_METHOD).bytesVsW4a4).toBe(1);
    // Each method alone helps...
    for (const id of ['smooth-regular', 'lowrank-regular', 'auto']) expect(row(id).relativeL2, id).toBeLessThan(row(BASELINE_METHOD).relativeL2 * 0.95);
    // ...and the best affordable one clears the bar.
    expect(report.best!.errorReduction).toBeGreaterThanOrEqual(0.25);
    expect(row(report.best!.id).bytesVsW4a4).toBeLessThanOrEqual(REPORT_BYTE_BUDGET);
    expect(row('lowrank-regular').weightBytes.blockLinears).toBeGreaterThan(row(BASELINE_METHOD).weightBytes.blockLinears);
    const table = formatReport(report);
    expect(table.split('\n').filter((l) => l.startsWith('| '))).toHaveLength(1 + report.rows.length);
    expect(table).toContain('lower error than W4A4 regular 256');
  });

  it('counts weight bytes as the engine stores them', () => {
    const w4 = planWeightBytes(config, makeQuantPlan(config, { preset: 'w4a4' }), 2);
    const w8 = planWeightBytes(config, makeQuantPlan(config, { preset: 'w8a8' }), 2);
    const float = planWeightBytes(config, makeQuantPlan(config, { preset: 'float' }), 2);
    const params = blocks().reduce((n, l) => n + paramCount(l), 0);
    const rows = blocks().reduce((n, l) => n + l.outFeatures, 0);
    // Per row: an f32 bias, an f32 scale and an i32 sum of q; then 4, 8 or 16 bits a weight.
    expect(w4.blockLinears).toBe(params / 2 + rows * 12);
    expect(w8.blockLinears).toBe(params + rows * 12);
    expect(float.blockLinears).toBe(params * 2 + rows * 4);
    expect(float.total - float.blockLinears - float.modulationLinears).toBe(w4.total - w4.blockLinears - w4.modulationLinears);
    // Modulation: weight-only INT4 under w4a4 (half a byte a weight, 12 bytes a row), float under fp32.
    const modulation = canonicalLinears(config).filter((l) => l.role === 'modulation');
    expect(w4.modulationLinears).toBe(modulation.reduce((n, l) => n + paramCount(l) / 2 + l.outFeatures * 12, 0));
    expect(float.modulationLinears).toBe(modulation.reduce((n, l) => n + paramCount(l) * 2 + l.outFeatures * 4, 0));
  });
});
