/**
 * Group-wise Hadamard rotations of ConvRot (docs/convrot-method.md §1): each contiguous group of n input channels is
 * multiplied by a normalised n×n Hadamard matrix Ĥ, i.e. x ↦ x·R with R = I ⊗ Ĥ. Ĥ is symmetric and
 * orthogonal, so it is its own inverse and rotating both x and W leaves x·Wᵀ unchanged.
 *
 * Kinds:
 *  - 'regular'   ConvRot's matrix H4^{⊗k} (H4 = all ones with a −1 anti-diagonal), n = 4^k. Every row and
 *                column sums to √n, so a constant row c·1 stays c·1 instead of piling up in one coordinate.
 *                Closed form: H[i][j] = (−1)^popcount(m & (m >> 1) & 0x55555555) with m = i XOR j.
 *  - 'sylvester' the natural-order Walsh matrix (ablation baseline), n = 2^k: H[i][j] = (−1)^popcount(i & j).
 *  - 'none'      identity (plain round-to-nearest quantization, no rotation).
 *
 * Floating-point contract of the fast transform (`rotateGroup`). It computes in f32, not f64, so that a WGSL
 * kernel performing the same f32 operations in the same order produces bit-identical results:
 *  - Inputs are rounded to f32 when read, and every +, −, × result is rounded to f32 (Math.fround) before it
 *    is used. JS evaluates one operation in f64; rounding that to f32 gives the correctly rounded f32 result,
 *    which is what WGSL guarantees for f32 +, −, ×.
 *  - regular, n = 4^k: k radix-4 stages at strides s = 1, 4, 16, …, n/4, in that order. In the stage of stride s,
 *    every quadruple (x0, x1, x2, x3) = (v[b], v[b+s], v[b+2s], v[b+3s]) (b with base-4 digit 0 at s) becomes
 *        S   = (x0 + x1) + (x2 + x3)
 *        y_i = S − 2·x_{3−i}        for i = 0..3   (y0 = S − 2·x3, …, y3 = S − 2·x0)
 *    2·x is exact, so compiling y_i as a fused multiply-add gives the same bits. Quadruples within a stage are
 *    independent (any order or parallel split); the stage order matters.
 *  - sylvester, n = 2^k: k radix-2 stages at strides h = 1, 2, 4, …, n/2; each pair (a, b) = (v[i], v[i+h])
 *    becomes (a + b, a − b).
 *  - Finally every element is multiplied once by the f32 constant f32(1/√n) (`rotationScale`). For n = 4^k it
 *    is 2^−k, so the scaling is exact; for a Sylvester size 2^(2j+1) it is rounded, and the kernel must use this
 *    same constant rather than WGSL's inverseSqrt (only accurate to 2 ULP).
 *  Stages work on unnormalised ±1 sums, so intermediate values grow by up to n× before the final scaling.
 */
import { FluxError } from '../errors.ts';
import { assertRotationSize, EVEN_BITS, paddedWidth, rotationScale, type RotationKind } from '../format/rotation.ts';
import { assertCount, assertMatrix } from './shape.ts';

export { assertRotationSize, paddedWidth, rotationScale, type RotationKind };

/** The base Hadamard matrix of the regular construction: all ones, −1 on the anti-diagonal. */
const H4: readonly (readonly number[])[] = [
  [1, 1, 1, -1],
  [1, 1, -1, 1],
  [1, -1, 1, 1],
  [-1, 1, 1, 1],
];

function popcount(v: number): number {
  let c = v - ((v >>> 1) & 0x55555555);
  c = (c & 0x33333333) + ((c >>> 2) & 0x33333333);
  return (((c + (c >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/** Sign (±1) of the unnormalised regular Hadamard entry H[i][j]: −1 per base-4 digit of i XOR j equal to 3. */
export function regularSign(i: number, j: number): number {
  const m = i ^ j;
  return popcount(m & (m >>> 1) & EVEN_BITS) & 1 ? -1 : 1;
}

/** Sign (±1) of the unnormalised Sylvester Hadamard entry H[i][j]. */
export function sylvesterSign(i: number, j: number): number {
  return popcount(i & j) & 1 ? -1 : 1;
}

/** Dense normalised Ĥ (row-major n×n, f64, for tests); 'none' gives the identity. */
export function hadamardMatrix(kind: RotationKind, n: number): Float64Array<ArrayBuffer> {
  assertRotationSize(kind, n);
  const h = new Float64Array(n * n);
  const norm = 1 / Math.sqrt(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      switch (kind) {
        case 'regular':
          h[i * n + j] = regularSign(i, j) * norm;
          break;
        case 'sylvester':
          h[i * n + j] = sylvesterSign(i, j) * norm;
          break;
        case 'none':
          h[i * n + j] = i === j ? 1 : 0;
          break;
      }
    }
  }
  return h;
}

/** Normalised regular Ĥ built as ConvRot does, H ← kron(H4, H) from H4 up to order n (f64, for tests). */
export function regularByKronecker(n: number): Float64Array<ArrayBuffer> {
  assertRotationSize('regular', n);
  let h = Float64Array.from(H4.flat());
  for (let order = 4; order < n; order *= 4) {
    const next = new Float64Array(order * 4 * order * 4);
    const width = order * 4;
    for (let a = 0; a < 4; a++) {
      for (let b = 0; b < 4; b++) {
        for (let i = 0; i < order; i++) {
          for (let j = 0; j < order; j++) {
            next[(a * order + i) * width + b * order + j] = H4[a][b] * h[i * order + j];
          }
        }
      }
    }
    h = next;
  }
  const norm = 1 / Math.sqrt(n);
  return h.map((v) => v * norm);
}

/** Regular transform of data[offset, offset+n) in place; see the header for the exact f32 operation order. */
function regularInPlace(data: Float32Array | Float64Array, offset: number, n: number): void {
  const f = Math.fround;
  for (let s = 1; s < n; s *= 4) {
    for (let block = offset; block < offset + n; block += 4 * s) {
      for (let i0 = block; i0 < block + s; i0++) {
        const x0 = f(data[i0]);
        const x1 = f(data[i0 + s]);
        const x2 = f(data[i0 + 2 * s]);
        const x3 = f(data[i0 + 3 * s]);
        const sum = f(f(x0 + x1) + f(x2 + x3));
        data[i0] = f(sum - 2 * x3);
        data[i0 + s] = f(sum - 2 * x2);
        data[i0 + 2 * s] = f(sum - 2 * x1);
        data[i0 + 3 * s] = f(sum - 2 * x0);
      }
    }
  }
}

/** Sylvester transform (radix-2 fast Walsh–Hadamard) of data[offset, offset+n) in place, in f32. */
function sylvesterInPlace(data: Float32Array | Float64Array, offset: number, n: number): void {
  const f = Math.fround;
  for (let h = 1; h < n; h *= 2) {
    for (let block = offset; block < offset + n; block += 2 * h) {
      for (let i = block; i < block + h; i++) {
        const a = f(data[i]);
        const b = f(data[i + h]);
        data[i] = f(a + b);
        data[i + h] = f(a - b);
      }
    }
  }
}

function scaleInPlace(data: Float32Array | Float64Array, offset: number, n: number): void {
  const scale = rotationScale(n);
  for (let i = offset; i < offset + n; i++) data[i] = Math.fround(data[i] * scale);
}

/** Unchecked fast rotation of one group; callers have validated kind, n and the range. */
function rotateGroupUnchecked(
  kind: RotationKind,
  data: Float32Array | Float64Array,
  offset: number,
  n: number,
): void {
  if (kind === 'none') return;
  if (kind === 'regular') regularInPlace(data, offset, n);
  else sylvesterInPlace(data, offset, n);
  scaleInPlace(data, offset, n);
}

/**
 * Rotates data[offset, offset+n) in place: v ↦ v·Ĥ (= Ĥ·v, Ĥ is symmetric), computed in f32 as the header
 * specifies; a Float64Array receives f32 values. 'none' leaves the data untouched.
 */
export function rotateGroup(kind: RotationKind, data: Float32Array | Float64Array, offset: number, n: number): void {
  assertRotationSize(kind, n);
  assertCount('rotation offset', offset);
  if (offset + n > data.length) {
    throw new FluxError('bad-shape', `rotation group [${offset}, ${offset + n}) exceeds length ${data.length}`);
  }
  rotateGroupUnchecked(kind, data, offset, n);
}

/**
 * Block rotation x ↦ x·(I ⊗ Ĥ) of a row-major [rows, cols] matrix. Each row is zero-padded to a multiple of
 * groupSize and each contiguous group is rotated independently. As in ConvRot, the output keeps the padded
 * width (padded channels become non-zero after rotation); 'none' pads too, so every kind yields the same layout.
 */
export function blockRotateRows(
  kind: RotationKind,
  groupSize: number,
  x: Float32Array,
  rows: number,
  cols: number,
): { data: Float32Array<ArrayBuffer>; paddedCols: number } {
  assertRotationSize(kind, groupSize);
  assertMatrix('rotation input', x.length, rows, cols);
  const paddedCols = paddedWidth(cols, groupSize);
  const data = new Float32Array(rows * paddedCols);
  for (let r = 0; r < rows; r++) {
    data.set(x.subarray(r * cols, (r + 1) * cols), r * paddedCols);
    for (let g = 0; g < paddedCols; g += groupSize) rotateGroupUnchecked(kind, data, r * paddedCols + g, groupSize);
  }
  return { data, paddedCols };
}
