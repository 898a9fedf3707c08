import { describe, expect, it } from 'vitest';
import { FluxError } from '../../src/errors.ts';
import {
  convLinearRef,
  dequantRef,
  fakeQuantLinearRef,
  integerGemmRef,
  linearRef,
  makeConvLinearRef,
  quantizeActivationsRef,
  quantizeWeightsRef,
  type ConvRotOptions,
} from '../../src/quant/conv-linear-ref.ts';
import type { RotationKind } from '../../src/quant/hadamard.ts';
import type { QuantFormatName } from '../../src/quant/quantize.ts';
import { maxRelError, randn, rng } from '../helpers/random.ts';

/** ‖a − b‖₂ / ‖b‖₂ in f64. */
function relativeL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let ref = 0;
  for (let i = 0; i < b.length; i++) {
    diff += (a[i] - b[i]) ** 2;
    ref += b[i] ** 2;
  }
  return Math.sqrt(diff / ref);
}

function layerData(tokens: number, inFeatures: number, outFeatures: number, seed: number) {
  return {
    x: randn(tokens * inFeatures, seed),
    w: randn(outFeatures * inFeatures, seed + 1, 1 / Math.sqrt(inFeatures)),
    bias: randn(outFeatures, seed + 2, 0.5),
  };
}

describe('rotation only (quantization off)', () => {
  const cases: [RotationKind, number][] = [];
  for (const kind of ['regular', 'sylvester', 'none'] as const) for (const k of [64, 300, 3072]) cases.push([kind, k]);

  it.each(cases)('%s, K = %i: the rotated layer equals the plain linear', (rotation, inFeatures) => {
    const tokens = 6;
    const outFeatures = 20;
    const { x, w, bias } = layerData(tokens, inFeatures, outFeatures, inFeatures);
    const rotated = fakeQuantLinearRef(x, w, bias, tokens, inFeatures, outFeatures, {
      rotation,
      groupSize: 256,
      format: 'int4',
      quantizeLinear: false,
    });
    expect(maxRelError(rotated, linearRef(x, w, bias, tokens, inFeatures, outFeatures))).toBeLessThan(1e-5);
  });
});

describe('quantized operands', () => {
  it('pad K to the group size and pack K-contiguously', () => {
    const { w } = layerData(1, 300, 5, 3);
    const weights = quantizeWeightsRef(w, 5, 300, { rotation: 'regular', groupSize: 256, format: 'int4' });
    expect(weights.paddedK).toBe(512);
    expect(weights.packed.length).toBe((5 * 512) / 8);
    expect(weights.q.length).toBe(5 * 512);
    expect(weights.scales.length).toBe(5);
    for (let o = 0; o < 5; o++) {
      let sum = 0;
      for (let k = 0; k < 512; k++) sum += weights.q[o * 512 + k];
      expect(weights.rowSums[o]).toBe(sum);
    }
    const int8 = quantizeWeightsRef(w, 5, 300, { rotation: 'regular', groupSize: 256, format: 'int8' });
    expect(int8.packed.length).toBe((5 * 512) / 4);
  });

  it('reject an unknown format or a bad group size', () => {
    const x = new Float32Array(256);
    const bad = { rotation: 'regular', groupSize: 256, format: 'int3' } as unknown as ConvRotOptions;
    expect(() => quantizeActivationsRef(x, 1, 256, bad)).toThrow(FluxError);
    expect(() => quantizeActivationsRef(x, 1, 256, { rotation: 'regular', groupSize: 128, format: 'int4' })).toThrow(
      FluxError,
    );
  });
});

describe('integer GEMM and dequantization', () => {
  const cases: [QuantFormatName, RotationKind, number][] = [
    ['int4', 'regular', 300],
    ['int4', 'sylvester', 512],
    ['int4', 'none', 64],
    ['int8', 'regular', 300],
  ];

  it.each(cases)('%s %s K = %i: equals a float matmul of the unpacked values', (format, rotation, inFeatures) => {
    const tokens = 7;
    const outFeatures = 12;
    const { x, w, bias } = layerData(tokens, inFeatures, outFeatures, 40 + inFeatures);
    const options: ConvRotOptions = { rotation, groupSize: 256, format };
    const layer = makeConvLinearRef(w, bias, outFeatures, inFeatures, options);
    const act = quantizeActivationsRef(x, tokens, inFeatures, options);
    const k = act.paddedK;
    const acc = integerGemmRef(act.packed, layer.weights.packed, tokens, outFeatures, k, format);
    const y = convLinearRef(x, tokens, layer);
    // Independent reference from the UNPACKED q (so packing errors are not shared), in f64.
    const expected = new Float64Array(tokens * outFeatures);
    for (let t = 0; t < tokens; t++) {
      for (let o = 0; o < outFeatures; o++) {
        let exactAcc = 0;
        let sum = 0;
        for (let i = 0; i < k; i++) {
          const qx = act.q[t * k + i];
          const qw = layer.weights.q[o * k + i];
          exactAcc += qx * qw;
          sum += qx * act.scales[t] * (qw * layer.weights.scales[o]);
        }
        expect(acc[t * outFeatures + o]).toBe(exactAcc);
        expected[t * outFeatures + o] = sum + bias[o];
      }
    }
    expect(maxRelError(y, expected)).toBeLessThan(1e-5);
    // The float (fake-quant) path is the same computation up to rounding.
    const fake = fakeQuantLinearRef(x, w, bias, tokens, inFeatures, outFeatures, options);
    expect(maxRelError(fake, expected)).toBeLessThan(1e-5);
  });

  it('dequantizes as f32(f32(f32(s_x · s_w) · f32(acc)) + b)', () => {
    const acc = Int32Array.from([123, -4567, 0, 89012, 33, -1]);
    const sx = Float32Array.from([0.0123, 3.7]);
    const sw = Float32Array.from([0.77, 1e-3, 0.3]);
    const bias = Float32Array.from([0.1, -0.2, 0.3]);
    const f = Math.fround;
    const expected = [0, 1].flatMap((t) =>
      [0, 1, 2].map((o) => f(f(f(sx[t] * sw[o]) * acc[t * 3 + o]) + bias[o])),
    );
    expect(Array.from(dequantRef(acc, sx, sw, bias))).toEqual(expected);
    expect(Array.from(dequantRef(acc, sx, sw))).toEqual(
      [0, 1].flatMap((t) => [0, 1, 2].map((o) => f(f(sx[t] * sw[o]) * acc[t * 3 + o]))),
    );
  });

  it('gives exactly the bias for an all-zero token', () => {
    const tokens = 3;
    const { x, w, bias } = layerData(tokens, 512, 16, 77);
    x.fill(0, 512, 1024); // token 1
    for (const format of ['int4', 'int8'] as const) {
      const layer = makeConvLinearRef(w, bias, 16, 512, { rotation: 'regular', groupSize: 256, format });
      const y = convLinearRef(x, tokens, layer);
      expect(Array.from(y.subarray(16, 32))).toEqual(Array.from(bias));
      expect(y.every(Number.isFinite)).toBe(true);
    }
  });

  it('rejects packed operands of the wrong size', () => {
    expect(() => integerGemmRef(new Uint32Array(8), new Uint32Array(8), 2, 2, 64, 'int4')).toThrow(FluxError);
    expect(() => dequantRef(new Int32Array(5), new Float32Array(2), new Float32Array(3))).toThrow(FluxError);
  });
});

describe('quantization error with DiT-like outliers (K = 3072)', () => {
  // A few channels ×50 in every token, and one row-wise outlier token whose channels are all shifted by +8.
  const tokens = 24;
  const inFeatures = 3072;
  const outFeatures = 64;
  const { x, w, bias } = layerData(tokens, inFeatures, outFeatures, 1);
  const pick = rng(101);
  const outlierChannels = Array.from({ length: 6 }, () => Math.floor(pick() * inFeatures));
  for (let t = 0; t < tokens; t++) for (const c of outlierChannels) x[t * inFeatures + c] *= 50;
  const outlierToken = 5;
  for (let k = 0; k < inFeatures; k++) x[outlierToken * inFeatures + k] += 8;
  const reference = linearRef(x, w, bias, tokens, inFeatures, outFeatures);

  function error(rotation: RotationKind, format: QuantFormatName): number {
    const layer = makeConvLinearRef(w, bias, outFeatures, inFeatures, { rotation, groupSize: 256, format });
    return relativeL2(convLinearRef(x, tokens, layer), reference);
  }

  it('W4A4: regular beats no rotation and Sylvester; W8A8 is far more accurate', () => {
    const regular = error('regular', 'int4');
    const sylvester = error('sylvester', 'int4');
    const none = error('none', 'int4');
    const regular8 = error('regular', 'int8');
    expect(regular).toBeLessThan(none);
    expect(regular).toBeLessThan(sylvester);
    expect(regular8).toBeLessThan(regular / 10);
  });
});
