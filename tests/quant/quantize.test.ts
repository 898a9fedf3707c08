import { describe, expect, it } from 'vitest';
import { FluxError } from '../../src/errors.ts';
import {
  dequantizeRows,
  QUANT_FORMATS,
  quantFormat,
  quantizeActivationRows,
  quantizeWeightRows,
  roundHalfEven,
  SCALE_FLOOR,
  type QuantFormatName,
} from '../../src/quant/quantize.ts';
import { randn } from '../helpers/random.ts';

describe('roundHalfEven', () => {
  it.each([
    [0.5, 0],
    [1.5, 2],
    [2.5, 2],
    [3.5, 4],
    [-0.5, 0],
    [-1.5, -2],
    [-2.5, -2],
    [2.4999999, 2],
    [2.5000001, 3],
    [-2.5000001, -3],
    [6.5, 6],
    [-7.5, -8],
    [7, 7],
    [0, 0],
    [-0.4, 0],
  ])('%f -> %i', (v, expected) => {
    expect(roundHalfEven(v)).toBe(expected);
  });
});

describe('format table', () => {
  it('describes INT4 and INT8 as ConvRot uses them', () => {
    expect(QUANT_FORMATS.int4).toMatchObject({ bits: 4, qmaxWeight: 7, qminAct: -8, qmaxAct: 7 });
    expect(QUANT_FORMATS.int8).toMatchObject({ bits: 8, qmaxWeight: 127, qminAct: -127, qmaxAct: 127 });
  });

  it('rejects an unknown format', () => {
    expect(() => quantFormat('int2' as QuantFormatName)).toThrow(FluxError);
  });
});

describe('row quantizers', () => {
  it('follow the f32 recipe: s = f32(absmax / qmax), q = clamp(round(f32(v / s)))', () => {
    const rows = 4;
    const cols = 64;
    const v = randn(rows * cols, 9);
    for (const name of ['int4', 'int8'] as const) {
      const format = QUANT_FORMATS[name];
      const act = quantizeActivationRows(v, rows, cols, format);
      for (let r = 0; r < rows; r++) {
        let absmax = 0;
        for (let k = 0; k < cols; k++) absmax = Math.max(absmax, Math.abs(v[r * cols + k]));
        const s = Math.fround(absmax / format.qmaxAct);
        expect(act.scales[r]).toBe(s);
        let sum = 0;
        for (let k = 0; k < cols; k++) {
          const expected = roundHalfEven(Math.fround(v[r * cols + k] / s));
          expect(act.q[r * cols + k]).toBe(expected);
          sum += expected;
        }
        expect(act.rowSums[r]).toBe(sum);
      }
    }
  });

  it('map the row absmax to ±qmax and stay in range', () => {
    const v = Float32Array.from([3, -1, 0.2, -6, 6, 1.5, 0, 0.01]);
    const w = quantizeWeightRows(v, 1, 8, QUANT_FORMATS.int4);
    expect(w.scales[0]).toBe(Math.fround(6 / 7));
    expect(Array.from(w.q)).toEqual([4, -1, 0, -7, 7, 2, 0, 0]);
    expect(w.rowSums[0]).toBe(5);
  });

  it('rounds ties to even in the quantizer', () => {
    // absmax 7 gives s = 1, so q = round(v) exactly.
    const v = Float32Array.from([7, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, -7]);
    const act = quantizeActivationRows(v, 1, 8, QUANT_FORMATS.int4);
    expect(act.scales[0]).toBe(1);
    expect(Array.from(act.q)).toEqual([7, 0, 2, 2, 0, -2, -2, -7]);
  });

  it('give an all-zero row the floor scale, q = 0 and an exact zero dequantization', () => {
    for (const name of ['int4', 'int8'] as const) {
      const v = new Float32Array(2 * 16);
      v.fill(1, 16); // row 1 is non-zero, row 0 all zeros
      for (const quantize of [quantizeActivationRows, quantizeWeightRows]) {
        const { q, scales, rowSums } = quantize(v, 2, 16, QUANT_FORMATS[name]);
        expect(scales[0]).toBe(SCALE_FLOOR);
        expect(Array.from(q.subarray(0, 16))).toEqual(new Array(16).fill(0));
        expect(rowSums[0]).toBe(0);
        const back = dequantizeRows(q, scales, 2, 16);
        expect(Array.from(back.subarray(0, 16))).toEqual(new Array(16).fill(0));
        expect(Array.from(back.subarray(16))).toEqual(new Array(16).fill(1));
      }
    }
  });

  it('dequantize as f32(q · s)', () => {
    const q = Int8Array.from([1, -3, 7, 0]);
    const scales = Float32Array.from([0.1, 0.3]);
    expect(Array.from(dequantizeRows(q, scales, 2, 2))).toEqual([
      Math.fround(0.1), Math.fround(-3 * Math.fround(0.1)), Math.fround(7 * Math.fround(0.3)), 0,
    ]);
  });

  it('reject a matrix whose length does not match its dimensions', () => {
    expect(() => quantizeWeightRows(new Float32Array(10), 3, 3, QUANT_FORMATS.int4)).toThrow(FluxError);
  });
});
