/**
 * Calibration and SmoothQuant folded into the weights, on flux-tiny-a with quantization off: the smoothed
 * model must compute the same function (δy < 1e-5 after every double and single block, both layouts), while
 * the same trick across the MLP's GELU (MLP down) must not.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { FluxConfig } from '../../../src/model/config.ts';
import type { FluxInputs } from '../../../src/model/inputs.ts';
import { DOUBLE_STREAMS, doubleBlockPrefix, SINGLE_BLOCK, singleBlockPrefix } from '../../../src/model/layout.ts';
import { paramGetter, type CanonicalParams } from '../../../src/model/params.ts';
import { calibrate, encodeCalibration, readCalibration, type Calibration } from '../../../src/model/quality/calibration.ts';
import { randomFluxInputs } from '../../../src/model/quality/random-inputs.ts';
import { applySmoothing, divideOutputRows, multiplyInputColumns, ParamEditor, smoothingFactorsFor, smoothingPairs } from '../../../src/model/quality/smoothing.ts';
import { fluxForward, type FluxReferenceResult } from '../../../src/model/reference/flux-ref.ts';
import { SafetensorsFile } from '../../../src/weights/safetensors.ts';
import { rng } from '../../helpers/random.ts';
import { BFL_TRANSFORMER, DIFFUSERS_TRANSFORMER, loadTinyGolden } from '../helpers.ts';
import { loadParams, streamDeltas } from './helpers.ts';
import { blobSource } from '../../../src/weights/sources.ts';

/** The equivalence bar for a fused transform with quantization off. */
const EQUIVALENCE = 1e-5;

let config: FluxConfig;
let inputs: FluxInputs;
const layouts: Record<string, { params: Map<string, Float32Array>; reference: FluxReferenceResult; calibration: Calibration }> = {};

const forward = (params: CanonicalParams): FluxReferenceResult => fluxForward(config, paramGetter(params), inputs);

/** Log-uniform factors in [1/20, 20]: far harsher than calibrated ones, so rounding problems would show. */
function harshFactors(width: number, seed: number): Float32Array {
  const u = rng(seed);
  return Float32Array.from({ length: width }, () => Math.exp((u() * 2 - 1) * Math.log(20)));
}

beforeAll(async () => {
  ({ config, inputs } = await loadTinyGolden());
  for (const [layout, path] of [['bfl', BFL_TRANSFORMER], ['diffusers', DIFFUSERS_TRANSFORMER]] as const) {
    const params = await loadParams(path, config);
    layouts[layout] = { params, reference: forward(params), calibration: calibrate(config, params, [inputs], 'golden') };
  }
});

describe('calibration', () => {
  it('records max |x| per input channel of every block linear, the same from both layouts', () => {
    const { calibration } = layouts.bfl!;
    const b = doubleBlockPrefix(0);
    const q = calibration.inputAbsMax.get(b + DOUBLE_STREAMS.img.q)!;
    expect(q).toHaveLength(config.hiddenSize);
    // q, k and v read one input.
    expect(calibration.inputAbsMax.get(b + DOUBLE_STREAMS.img.v)).toEqual(q);
    // proj_out reads concat(attention, gelu(mlp)).
    expect(calibration.inputAbsMax.get(singleBlockPrefix(0) + SINGLE_BLOCK.out)).toHaveLength(config.hiddenSize + config.mlpHidden);
    // The tiny model has massive-activation channels: a few channels far above the median.
    const sorted = [...q].sort((x, y) => x - y);
    expect(sorted.at(-1)! / sorted[sorted.length >> 1]!).toBeGreaterThan(10);
    for (const [name, m] of calibration.inputAbsMax) {
      expect(m.every((v) => v >= 0 && Number.isFinite(v)), name).toBe(true);
      expect(layouts.diffusers!.calibration.inputAbsMax.get(name)).toEqual(m);
    }
  });

  it('takes the maximum over calls, and round-trips through its file', async () => {
    const { params, calibration } = layouts.bfl!;
    const random = randomFluxInputs(config, 7);
    const both = calibrate(config, params, [inputs, random], 'golden+random');
    const alone = calibrate(config, params, [random], 'random');
    for (const [name, m] of both.inputAbsMax) {
      const expected = calibration.inputAbsMax.get(name)!.map((v, j) => Math.max(v, alone.inputAbsMax.get(name)![j]!));
      expect(m, name).toEqual(expected);
    }
    const file = await SafetensorsFile.open(blobSource(new Blob([encodeCalibration({ ...both, sensitivity: new Map([...both.inputAbsMax.keys()].map((n, i) => [n, i / 8])) })]), 'calib.safetensors'));
    const read = await readCalibration(file, config);
    expect(read.calls).toBe(2);
    expect(read.source).toBe('golden+random');
    expect(read.inputAbsMax).toEqual(both.inputAbsMax);
    expect(read.sensitivity!.get(singleBlockPrefix(3) + SINGLE_BLOCK.out)).toBe((read.inputAbsMax.size - 1) / 8);
  });
});

describe('smoothing folded into AdaLN and V -> out', () => {
  it('covers both streams of every double block and every single block', () => {
    const pairs = smoothingPairs(config);
    expect(pairs.filter((p) => p.kind === 'adaln-attention')).toHaveLength(2 * config.depthDouble + config.depthSingle);
    expect(pairs.filter((p) => p.kind === 'adaln-mlp')).toHaveLength(2 * config.depthDouble);
    expect(pairs.filter((p) => p.kind === 'v-out')).toHaveLength(config.depthDouble + config.depthSingle);
  });

  it.each(['bfl', 'diffusers'])('calibrated (α = 0.5) and harsh factors leave every block output unchanged, %s layout', (layout) => {
    const { params, reference, calibration } = layouts[layout]!;
    const calibrated = smoothingFactorsFor(config, params, calibration);
    const harsh = new Map([...calibrated.keys()].map((id, i) => [id, harshFactors(config.hiddenSize, 100 + i)]));
    for (const factors of [calibrated, harsh]) {
      const smoothed = applySmoothing(config, params, factors);
      // The transform really changed the weights it folds into...
      const q = `${doubleBlockPrefix(0)}${DOUBLE_STREAMS.img.q}.weight`;
      expect(smoothed.get(q)).not.toEqual(params.get(q));
      // ...and the function stayed the same.
      const deltas = streamDeltas(reference, forward(smoothed));
      expect(Object.keys(deltas)).toHaveLength(1 + 2 * config.depthDouble + config.depthSingle);
      for (const [name, delta] of Object.entries(deltas)) expect(delta, name).toBeLessThan(EQUIVALENCE);
    }
  });

  it('flattens the calibrated activation maxima the quantizer sees', () => {
    const { params, calibration } = layouts.bfl!;
    const factors = smoothingFactorsFor(config, params, calibration);
    const smoothed = applySmoothing(config, params, factors);
    const after = calibrate(config, smoothed, [inputs], 'golden');
    const spread = (m: Float32Array) => Math.max(...m) / (m.reduce((a, b) => a + b, 0) / m.length);
    const name = singleBlockPrefix(0) + SINGLE_BLOCK.q;
    expect(spread(after.inputAbsMax.get(name)!)).toBeLessThan(spread(calibration.inputAbsMax.get(name)!) / 2);
  });

  it('is not fusable across the MLP (GELU between up and down): the outputs differ', () => {
    const { params, reference } = layouts.bfl!;
    const editor = new ParamEditor(params);
    const b = doubleBlockPrefix(0);
    const s = harshFactors(config.mlpHidden, 5);
    divideOutputRows(editor, b + DOUBLE_STREAMS.img.mlpIn, 0, s);
    multiplyInputColumns(editor, b + DOUBLE_STREAMS.img.mlpOut, 0, s);
    const deltas = streamDeltas(reference, forward(editor.out));
    expect(deltas[`double_blocks.0.img`]).toBeGreaterThan(1e-2);
    expect(deltas.out).toBeGreaterThan(1e-2);
  });
});
