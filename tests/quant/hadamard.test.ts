import { describe, expect, it } from 'vitest';
import { FluxError } from '../../src/errors.ts';
import {
  blockRotateRows,
  hadamardMatrix,
  regularByKronecker,
  rotateGroup,
  type RotationKind,
} from '../../src/quant/hadamard.ts';
import { randn } from '../helpers/random.ts';

const REGULAR_SIZES = [4, 16, 64, 256, 1024];
const SYLVESTER_SIZES = [2, 8, 32, 128, 256, 512];

function matmul(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k];
      if (aik === 0) continue;
      for (let j = 0; j < n; j++) c[i * n + j] += aik * b[k * n + j];
    }
  }
  return c;
}

function transpose(a: Float64Array, n: number): Float64Array {
  const t = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) t[j * n + i] = a[i * n + j];
  return t;
}

function maxAbsDiffFromIdentity(m: Float64Array, n: number): number {
  let worst = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) worst = Math.max(worst, Math.abs(m[i * n + j] - (i === j ? 1 : 0)));
  }
  return worst;
}

/** Dense v·H in f64. */
function denseRotate(v: ArrayLike<number>, h: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[j] += v[i] * h[i * n + j];
  return out;
}

describe('dense Hadamard matrices', () => {
  // Dense n³ products: stop at 256 to keep the test fast (1024 is covered by the Kronecker equality below).
  const cases: [RotationKind, number][] = [
    ...[4, 16, 64, 256].map((n): [RotationKind, number] => ['regular', n]),
    ...[2, 8, 32, 128, 256].map((n): [RotationKind, number] => ['sylvester', n]),
  ];

  it.each(cases)('%s %i is symmetric, orthogonal and involutory', (kind, n) => {
    const h = hadamardMatrix(kind, n);
    expect(Array.from(transpose(h, n))).toEqual(Array.from(h));
    expect(maxAbsDiffFromIdentity(matmul(h, transpose(h, n), n), n)).toBeLessThan(1e-12);
    expect(maxAbsDiffFromIdentity(matmul(h, h, n), n)).toBeLessThan(1e-12);
  });

  it.each(REGULAR_SIZES)('regular %i: every row and column sums to exactly 1', (n) => {
    const h = hadamardMatrix('regular', n);
    for (let i = 0; i < n; i++) {
      let row = 0;
      let col = 0;
      for (let j = 0; j < n; j++) {
        row += h[i * n + j];
        col += h[j * n + i];
      }
      expect(row).toBe(1);
      expect(col).toBe(1);
    }
  });

  it.each(REGULAR_SIZES)('regular %i: closed form equals the Kronecker construction', (n) => {
    expect(Array.from(hadamardMatrix('regular', n))).toEqual(Array.from(regularByKronecker(n)));
  });

  it('regular 16: row 0 is the documented vector', () => {
    const row0 = Array.from(hadamardMatrix('regular', 16).subarray(0, 16), (v) => v * 4);
    expect(row0).toEqual([1, 1, 1, -1, 1, 1, 1, -1, 1, 1, 1, -1, -1, -1, -1, 1]);
  });

  it('regular 4 is 0.5 · H4 with the anti-diagonal negated', () => {
    expect(Array.from(hadamardMatrix('regular', 4), (v) => v * 2)).toEqual([
      1, 1, 1, -1, 1, 1, -1, 1, 1, -1, 1, 1, -1, 1, 1, 1,
    ]);
  });

  it("'none' is the identity", () => {
    expect(maxAbsDiffFromIdentity(hadamardMatrix('none', 8), 8)).toBe(0);
  });
});

describe('size validation', () => {
  it.each([32, 128, 512, 2048, 1, 2, 8, 0, -4, 256.5])('regular rejects %s', (n) => {
    expect(() => hadamardMatrix('regular', n)).toThrow(FluxError);
    expect(() => rotateGroup('regular', new Float32Array(4096), 0, n)).toThrow(FluxError);
    expect(() => blockRotateRows('regular', n, new Float32Array(4), 1, 4)).toThrow(FluxError);
  });

  it.each([3, 12, 0, 48])('sylvester rejects %s', (n) => {
    expect(() => hadamardMatrix('sylvester', n)).toThrow(FluxError);
  });

  it('rejects a group that runs past the array', () => {
    expect(() => rotateGroup('regular', new Float32Array(300), 100, 256)).toThrow(FluxError);
  });

  it('rejects a matrix whose length does not match its dimensions', () => {
    expect(() => blockRotateRows('regular', 16, new Float32Array(10), 2, 4)).toThrow(FluxError);
  });
});

describe('fast transform', () => {
  const cases: [RotationKind, number][] = [
    ...REGULAR_SIZES.map((n): [RotationKind, number] => ['regular', n]),
    ...SYLVESTER_SIZES.map((n): [RotationKind, number] => ['sylvester', n]),
  ];

  it.each(cases)('%s %i equals the dense product', (kind, n) => {
    const v = randn(n, n + 7);
    const expected = denseRotate(v, hadamardMatrix(kind, n), n);
    const data = new Float32Array(n + 5);
    data.set(v, 3);
    rotateGroup(kind, data, 3, n);
    let norm = 0;
    for (const e of expected) norm = Math.max(norm, Math.abs(e));
    for (let i = 0; i < n; i++) expect(Math.abs(data[3 + i] - expected[i])).toBeLessThan(1e-6 * norm);
    // Elements outside the group are untouched.
    expect([data[0], data[1], data[2], data[n + 3], data[n + 4]]).toEqual([0, 0, 0, 0, 0]);
  });

  it('computes in f32: a Float64Array gets the same bits as a Float32Array', () => {
    const v = randn(256, 11);
    for (const kind of ['regular', 'sylvester'] as const) {
      const a = Float32Array.from(v);
      const b = Float64Array.from(v);
      rotateGroup(kind, a, 0, 256);
      rotateGroup(kind, b, 0, 256);
      expect(Array.from(b)).toEqual(Array.from(a));
    }
  });

  it('follows the documented radix-4 butterfly order bit for bit', () => {
    // Independent restatement of the documented op order for n = 16 (stages at strides 1 and 4, then × 1/4).
    const f = Math.fround;
    const v = randn(16, 5);
    const expected = Array.from(v);
    for (const s of [1, 4]) {
      for (let b = 0; b < 16; b += 4 * s) {
        for (let j = b; j < b + s; j++) {
          const [x0, x1, x2, x3] = [expected[j], expected[j + s], expected[j + 2 * s], expected[j + 3 * s]];
          const sum = f(f(x0 + x1) + f(x2 + x3));
          [expected[j], expected[j + s], expected[j + 2 * s], expected[j + 3 * s]] = [
            f(sum - 2 * x3), f(sum - 2 * x2), f(sum - 2 * x1), f(sum - 2 * x0),
          ];
        }
      }
    }
    const data = Float32Array.from(v);
    rotateGroup('regular', data, 0, 16);
    expect(Array.from(data)).toEqual(expected.map((y) => f(y * 0.25)));
  });

  it("'none' leaves the data untouched", () => {
    const v = randn(64, 3);
    const data = Float32Array.from(v);
    rotateGroup('none', data, 0, 64);
    expect(Array.from(data)).toEqual(Array.from(v));
  });

  it('maps a constant row c·1 to c·1 (regular) and to (16c, 0, ...) (sylvester)', () => {
    const c = 10.25;
    const regular = new Float32Array(256).fill(c);
    rotateGroup('regular', regular, 0, 256);
    expect(Array.from(regular)).toEqual(new Array(256).fill(c));
    const sylvester = new Float32Array(256).fill(c);
    rotateGroup('sylvester', sylvester, 0, 256);
    expect(Array.from(sylvester)).toEqual([16 * c, ...new Array(255).fill(0)]);
  });
});

describe('blockRotateRows', () => {
  it('zero-pads every row to the group size and rotates each group independently', () => {
    const rows = 3;
    const cols = 40;
    const x = randn(rows * cols, 21);
    const { data, paddedCols } = blockRotateRows('regular', 16, x, rows, cols);
    expect(paddedCols).toBe(48);
    expect(data.length).toBe(rows * 48);
    const h = hadamardMatrix('regular', 16);
    for (let r = 0; r < rows; r++) {
      for (let g = 0; g < 3; g++) {
        const group = new Float64Array(16);
        for (let i = 0; i < 16; i++) {
          const c = g * 16 + i;
          group[i] = c < cols ? x[r * cols + c] : 0;
        }
        const expected = denseRotate(group, h, 16);
        for (let i = 0; i < 16; i++) expect(data[r * 48 + g * 16 + i]).toBeCloseTo(expected[i], 5);
      }
    }
  });

  it("'none' only pads", () => {
    const x = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const { data, paddedCols } = blockRotateRows('none', 4, x, 2, 3);
    expect(paddedCols).toBe(4);
    expect(Array.from(data)).toEqual([1, 2, 3, 0, 4, 5, 6, 0]);
  });

  it('does not modify its input', () => {
    const x = randn(512, 2);
    const copy = Float32Array.from(x);
    blockRotateRows('sylvester', 256, x, 2, 256);
    expect(Array.from(x)).toEqual(Array.from(copy));
  });
});
