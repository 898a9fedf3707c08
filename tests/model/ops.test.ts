import { describe, expect, it } from 'vitest';
import {
  applyRope,
  attention,
  gatedResidual,
  geluTanh,
  layerNormModulate,
  linear,
  rmsNorm,
  ropeTable,
  silu,
  timestepEmbedding,
} from '../../src/model/reference/ops.ts';

const f32 = (values: number[]) => new Float32Array(values);
const FLUX_AXES = [16, 56, 56];
const F32_DIGITS = 6;

describe('timestepEmbedding', () => {
  it('matches the timestep embedding of docs/architecture.md ([cos | sin] of 1000·t·f_i)', () => {
    const t1 = timestepEmbedding(1);
    expect(t1.length).toBe(256);
    expect(t1[0]).toBeCloseTo(0.5623791, F32_DIGITS); // cos(1000)
    expect(t1[128]).toBeCloseTo(0.8268795, F32_DIGITS); // sin(1000)
    expect(t1[1]).toBeCloseTo(0.7896147, F32_DIGITS); // cos(930.572041)
    const g = timestepEmbedding(3.5);
    expect(g[0]).toBeCloseTo(0.9648869, F32_DIGITS);
    expect(g[128]).toBeCloseTo(0.2626657, F32_DIGITS);
  });

  it('is [1…1 | 0…0] at t = 0', () => {
    const t0 = timestepEmbedding(0, 8);
    expect([...t0]).toEqual([1, 1, 1, 1, 0, 0, 0, 0]);
  });
});

describe('ropeTable / applyRope', () => {
  it('gives each axis its own pairs and frequencies (FLUX axes 16/56/56)', () => {
    // One image token at (0, row 3, column 5).
    const { cos, sin } = ropeTable(f32([0, 3, 5]), 1, FLUX_AXES, 10000);
    expect(cos.length).toBe(64);
    for (let p = 0; p < 8; p++) expect([cos[p], sin[p]]).toEqual([1, 0]); // axis 0: position 0
    expect(cos[8]).toBeCloseTo(-0.9899925, F32_DIGITS); // cos(3), j = 0
    expect(sin[8]).toBeCloseTo(0.14112, F32_DIGITS);
    expect(cos[9]).toBeCloseTo(-0.5549149, F32_DIGITS); // cos(3·10000^(−2/56))
    expect(sin[9]).toBeCloseTo(0.8319071, F32_DIGITS);
    expect(cos[36]).toBeCloseTo(0.2836622, F32_DIGITS); // cos(5): first pair of axis 2
    expect(sin[36]).toBeCloseTo(-0.9589243, F32_DIGITS);
    expect(sin[63]).toBeCloseTo(0.000694748, F32_DIGITS); // sin(5·10000^(−54/56))
  });

  it('rotates interleaved pairs, not halves', () => {
    // One token, one head of 4 dims = 2 pairs: pair 0 turns by 90°, pair 1 not at all.
    const table = { cos: f32([0, 1]), sin: f32([1, 0]) };
    const y = applyRope(f32([1, 2, 3, 4]), 1, 1, 4, table);
    expect([...y]).toEqual([-2, 1, 3, 4]);
  });
});

describe('norms', () => {
  it('layerNormModulate normalizes each row, then applies (1 + scale)·x + shift', () => {
    const y = layerNormModulate(f32([1, 2, 3, 4, 10, 10, 10, 10]), 2, 4, f32([0, 0, 1, 1]), f32([0, 1, 0, 1]));
    const s = 1 / Math.sqrt(1.25 + 1e-6);
    const expected = [-1.5 * s, -0.5 * s * 2, 0.5 * s + 1, 1.5 * s * 2 + 1, 0, 0, 1, 1];
    y.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, F32_DIGITS));
  });

  it('rmsNorm normalizes every head vector and applies the shared scale', () => {
    // Two heads of 2 dims; rms of (3, 4) is √12.5.
    const y = rmsNorm(f32([3, 4, 0, 2]), 1, 2, 2, f32([1, 2]));
    const inv = 1 / Math.sqrt(12.5 + 1e-6);
    const expected = [3 * inv, 8 * inv, 0, (2 / Math.sqrt(2 + 1e-6)) * 2];
    y.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, F32_DIGITS));
  });
});

describe('attention', () => {
  it('averages v uniformly when all scores tie, per head', () => {
    const q = new Float32Array(3 * 4);
    const v = f32([1, 2, 10, 20, 3, 4, 30, 40, 5, 6, 50, 60]);
    const o = attention(q, q, v, 3, 2, 2);
    for (let t = 0; t < 3; t++) expect([...o.subarray(t * 4, t * 4 + 4)].map((x) => Math.round(x * 1e5) / 1e5)).toEqual([3, 4, 30, 40]);
  });

  it('weights keys by softmax(q·k/√d)', () => {
    // One head of dim 1, scores q·k = [0, ln 3] → weights [1/4, 3/4].
    const o = attention(f32([1, 1]), f32([0, Math.log(3)]), f32([4, 8]), 2, 1, 1);
    expect(o[0]).toBeCloseTo(7, F32_DIGITS);
  });
});

describe('elementwise and linear', () => {
  it('geluTanh and silu', () => {
    const g = geluTanh(f32([0, 1, -1, 3]));
    [0, 0.8411920071, -0.1588079929, 2.9963627].forEach((e, i) => expect(g[i]).toBeCloseTo(e, F32_DIGITS));
    const s = silu(f32([0, 1, -2]));
    [0, 0.7310585786, -0.2384058440].forEach((e, i) => expect(s[i]).toBeCloseTo(e, F32_DIGITS));
  });

  it('linear computes x·Wᵀ + b with W stored [out, in]', () => {
    const y = linear(f32([1, 2, 3, 4]), 2, f32([1, 0, 1, 1, 0, -1]), f32([10, 20, 30]));
    expect([...y]).toEqual([11, 23, 28, 13, 27, 26]);
  });

  it('gatedResidual broadcasts the gate over rows', () => {
    expect([...gatedResidual(f32([1, 1, 1, 1]), f32([2, 0]), f32([1, 5, 3, 7]))]).toEqual([3, 1, 7, 1]);
  });
});
