import { describe, expect, it } from 'vitest';
import { fakeQuantLinearRef } from '../../src/quant/conv-linear-ref.ts';
import { FakeQuantLinear } from '../../src/quant/fake-quant-layer.ts';
import { lowRankSplit, roundToBf16 } from '../../src/quant/low-rank.ts';
import { randn, relativeL2Error } from '../helpers/random.ts';

/** Orthonormal columns [rows, cols] from a seeded Gaussian matrix (Gram-Schmidt). */
function orthonormal(rows: number, cols: number, seed: number): Float64Array {
  const g = Float64Array.from(randn(rows * cols, seed));
  for (let j = 0; j < cols; j++) {
    for (let i = 0; i < j; i++) {
      let dot = 0;
      for (let r = 0; r < rows; r++) dot += g[r * cols + i]! * g[r * cols + j]!;
      for (let r = 0; r < rows; r++) g[r * cols + j]! -= dot * g[r * cols + i]!;
    }
    let norm = 0;
    for (let r = 0; r < rows; r++) norm += g[r * cols + j]! ** 2;
    for (let r = 0; r < rows; r++) g[r * cols + j]! /= Math.sqrt(norm);
  }
  return g;
}

/** W = U·diag(σ)·Vᵀ [n, k] with the given spectrum. */
function withSpectrum(n: number, k: number, sigma: number[]): Float32Array {
  const m = sigma.length;
  const u = orthonormal(n, m, 1);
  const v = orthonormal(k, m, 2);
  const w = new Float32Array(n * k);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < k; c++) {
      let sum = 0;
      for (let j = 0; j < m; j++) sum += u[r * m + j]! * sigma[j]! * v[c * m + j]!;
      w[r * k + c] = sum;
    }
  }
  return w;
}

const frobenius2 = (a: Float32Array): number => a.reduce((s, v) => s + v * v, 0);

describe('low-rank split (randomized subspace iteration)', () => {
  const n = 48;
  const k = 80;
  // A decaying spectrum with a gap, as outlier-heavy weights have.
  const sigma = Array.from({ length: 40 }, (_, i) => (i < 6 ? 50 / (i + 1) : 2 * 0.9 ** i));

  it('finds the top singular values and leaves the optimal residual (Eckart-Young)', () => {
    const w = withSpectrum(n, k, sigma);
    for (const rank of [1, 6, 11]) {
      const split = lowRankSplit(w, n, k, rank, (v) => v);
      for (let j = 0; j < rank; j++) expect(split.singularValues[j]! / sigma[j]!).toBeCloseTo(1, 5);
      const optimal = sigma.slice(rank).reduce((s, v) => s + v * v, 0);
      expect(frobenius2(split.residual) / optimal).toBeCloseTo(1, 4);
      // branch + residual is W.
      for (const i of [0, 17, n * k - 1]) {
        const r = Math.floor(i / k);
        const c = i % k;
        let branch = 0;
        for (let j = 0; j < rank; j++) branch += split.up[r * rank + j]! * split.down[j * k + c]!;
        expect(branch + split.residual[i]!).toBeCloseTo(w[i]!, 4);
      }
    }
  });

  it('rank 0 is no branch; a bf16 branch still sums back to W', () => {
    const w = withSpectrum(n, k, sigma);
    const none = lowRankSplit(w, n, k, 0);
    expect(none.up).toHaveLength(0);
    expect(none.residual).toEqual(w);
    const bf16 = lowRankSplit(w, n, k, 4, roundToBf16);
    expect(bf16.up.every((v) => roundToBf16(v) === v)).toBe(true);
    expect(() => lowRankSplit(w, n, k, 49)).toThrow(/rank/);
  });
});

describe('FakeQuantLinear', () => {
  const rows = 5;
  const out = 24;
  const inF = 200; // not a multiple of the group: padded

  it('without a branch is exactly fakeQuantLinearRef', () => {
    const x = randn(rows * inF, 3);
    const w = randn(out * inF, 4, 0.1);
    const b = randn(out, 5);
    for (const format of ['int4', 'int8'] as const) {
      const opts = { rotation: 'regular' as const, groupSize: 64, format };
      expect(FakeQuantLinear.prepare(w, b, out, inF, opts).apply(x, rows)).toEqual(fakeQuantLinearRef(x, w, b, rows, inF, out, opts));
    }
  });

  it('a rank-2 branch absorbs a weight spike the 4-bit grid cannot hold', () => {
    const x = randn(rows * inF, 6);
    const w = randn(out * inF, 7, 0.05);
    const a = randn(out, 8);
    const c = randn(inF, 9);
    for (let r = 0; r < out; r++) for (let i = 0; i < inF; i++) w[r * inF + i]! += 3 * a[r]! * c[i]! * (i % 7 === 0 ? 4 : 1);
    const exact = fakeQuantLinearRef(x, w, undefined, rows, inF, out, { rotation: 'none', groupSize: 64, format: 'int4', quantizeLinear: false });
    const opts = { rotation: 'regular' as const, groupSize: 64, format: 'int4' as const };
    const plain = relativeL2Error(FakeQuantLinear.prepare(w, undefined, out, inF, opts).apply(x, rows), exact);
    const branched = relativeL2Error(FakeQuantLinear.prepare(w, undefined, out, inF, { ...opts, rank: 2 }).apply(x, rows), exact);
    expect(branched).toBeLessThan(plain / 2);
  });
});
