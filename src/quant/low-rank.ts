/**
 * Low-rank split of a weight matrix, as SVDQuant does it: W ≈ L1·L2 + R with a rank-r float branch
 * L1 [out, r], L2 [r, in] taken from W's top singular directions, and the residual R (whose large singular
 * values, where outliers concentrate, are gone) left to the 4-bit quantizer. y = x·Rᵀ (quantized) +
 * (x·L2ᵀ)·L1ᵀ (two small float GEMMs).
 *
 * The top-r subspace comes from randomized subspace iteration (Halko, Martinsson & Tropp): Q = orth(W·Ω)
 * with a seeded Gaussian Ω of r + oversampling columns, refined by a few power steps Q = orth(W·(Wᵀ·Q));
 * then the small matrix B = Qᵀ·W is diagonalised through B·Bᵀ (cyclic Jacobi). In f64 throughout.
 */
import { FluxError } from '../errors.ts';
import { bf16ToF32, f32ToBf16 } from '../weights/dtypes.ts';
import { assertMatrix } from './shape.ts';

/** Extra random directions beyond the rank: they make the captured subspace accurate for the top r. */
const OVERSAMPLING = 8;
/** Power steps: each sharpens the gap between kept and dropped singular values by another factor σ_r/σ_{r+1}. */
const POWER_ITERATIONS = 4;
const JACOBI_SWEEPS = 60;
/** Seed of Ω: the same weights always give the same split. */
const SKETCH_SEED = 0x5eed;

/** The engine stores the branch as bf16 (half the bytes of f32, the exponent range of the weights). */
export const roundToBf16 = (v: number): number => bf16ToF32(f32ToBf16(v));

export interface LowRankSplit {
  readonly rank: number;
  /** [out, rank], the left singular vectors (unit length). */
  readonly up: Float32Array<ArrayBuffer>;
  /** [rank, in], the right singular vectors times the singular values. */
  readonly down: Float32Array<ArrayBuffer>;
  /** W − up·down, [out, in]. */
  readonly residual: Float32Array<ArrayBuffer>;
  /** The kept singular values, largest first. */
  readonly singularValues: Float64Array<ArrayBuffer>;
}

function gaussian(n: number, seed: number): Float64Array {
  let a = seed >>> 0;
  const u = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
  return out;
}

/** Orthonormalises the columns of Y [rows, cols] in place (modified Gram-Schmidt twice, for stability). */
function orthonormalColumns(y: Float64Array, rows: number, cols: number): void {
  for (let pass = 0; pass < 2; pass++) {
    for (let j = 0; j < cols; j++) {
      for (let i = 0; i < j; i++) {
        let dot = 0;
        for (let r = 0; r < rows; r++) dot += y[r * cols + i]! * y[r * cols + j]!;
        for (let r = 0; r < rows; r++) y[r * cols + j]! -= dot * y[r * cols + i]!;
      }
      let norm = 0;
      for (let r = 0; r < rows; r++) norm += y[r * cols + j]! ** 2;
      norm = Math.sqrt(norm);
      // A column in the span of the previous ones (rank-deficient W) becomes zero rather than noise.
      const inv = norm > 1e-300 ? 1 / norm : 0;
      for (let r = 0; r < rows; r++) y[r * cols + j]! *= inv;
    }
  }
}

/** W [n, k] times M [k, c] → [n, c]. */
function times(w: Float32Array, n: number, k: number, m: Float64Array, c: number): Float64Array {
  const out = new Float64Array(n * c);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < k; i++) {
      const v = w[r * k + i]!;
      if (v === 0) continue;
      for (let j = 0; j < c; j++) out[r * c + j]! += v * m[i * c + j]!;
    }
  }
  return out;
}

/** Wᵀ [k, n] times Q [n, c] → [k, c]. */
function transposeTimes(w: Float32Array, n: number, k: number, q: Float64Array, c: number): Float64Array {
  const out = new Float64Array(k * c);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < k; i++) {
      const v = w[r * k + i]!;
      if (v === 0) continue;
      for (let j = 0; j < c; j++) out[i * c + j]! += v * q[r * c + j]!;
    }
  }
  return out;
}

/** Eigen-decomposition of a symmetric S [c, c] by cyclic Jacobi: eigenvalues and eigenvectors (columns of V). */
function symmetricEigen(s: Float64Array, c: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(s);
  const v = new Float64Array(c * c);
  for (let i = 0; i < c; i++) v[i * c + i] = 1;
  for (let sweep = 0; sweep < JACOBI_SWEEPS; sweep++) {
    let off = 0;
    let diag = 0;
    for (let i = 0; i < c; i++) {
      diag += a[i * c + i]! ** 2;
      for (let j = i + 1; j < c; j++) off += a[i * c + j]! ** 2;
    }
    if (off <= 1e-30 * diag) break;
    for (let p = 0; p < c; p++) {
      for (let q = p + 1; q < c; q++) {
        const apq = a[p * c + q]!;
        if (apq === 0) continue;
        const theta = (a[q * c + q]! - a[p * c + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const cos = 1 / Math.sqrt(t * t + 1);
        const sin = t * cos;
        for (let k = 0; k < c; k++) {
          const akp = a[k * c + p]!;
          const akq = a[k * c + q]!;
          a[k * c + p] = cos * akp - sin * akq;
          a[k * c + q] = sin * akp + cos * akq;
        }
        for (let k = 0; k < c; k++) {
          const apk = a[p * c + k]!;
          const aqk = a[q * c + k]!;
          a[p * c + k] = cos * apk - sin * aqk;
          a[q * c + k] = sin * apk + cos * aqk;
        }
        for (let k = 0; k < c; k++) {
          const vkp = v[k * c + p]!;
          const vkq = v[k * c + q]!;
          v[k * c + p] = cos * vkp - sin * vkq;
          v[k * c + q] = sin * vkp + cos * vkq;
        }
      }
    }
  }
  return { values: Float64Array.from({ length: c }, (_, i) => a[i * c + i]!), vectors: v };
}

/**
 * Splits W [outFeatures, inFeatures] into a rank-`rank` branch and the residual. `round` is applied to the
 * branch's values (e.g. to bf16, as the GPU stores them), and the residual is taken against the rounded branch
 * so that branch + residual stays W up to f32 rounding.
 */
export function lowRankSplit(w: Float32Array, outFeatures: number, inFeatures: number, rank: number, round: (v: number) => number = Math.fround): LowRankSplit {
  assertMatrix('low-rank weight', w.length, outFeatures, inFeatures);
  if (!Number.isInteger(rank) || rank < 0 || rank > Math.min(outFeatures, inFeatures)) {
    throw new FluxError('bad-argument', `low-rank rank must be an integer in [0, ${Math.min(outFeatures, inFeatures)}], got ${rank}`);
  }
  const n = outFeatures;
  const k = inFeatures;
  const c = Math.min(rank + OVERSAMPLING, n, k);
  let q = times(w, n, k, gaussian(k * c, SKETCH_SEED), c);
  orthonormalColumns(q, n, c);
  for (let it = 0; it < POWER_ITERATIONS; it++) {
    const z = transposeTimes(w, n, k, q, c);
    orthonormalColumns(z, k, c);
    q = times(w, n, k, z, c);
    orthonormalColumns(q, n, c);
  }
  // B = Qᵀ·W [c, k]; B·Bᵀ = U_b Λ U_bᵀ, and the best rank-r approximation is Q·U_r·U_rᵀ·Qᵀ·W.
  const bt = transposeTimes(w, n, k, q, c); // Bᵀ [k, c]
  const gram = new Float64Array(c * c);
  for (let i = 0; i < k; i++) {
    for (let a = 0; a < c; a++) {
      const v = bt[i * c + a]!;
      for (let b = a; b < c; b++) gram[a * c + b]! += v * bt[i * c + b]!;
    }
  }
  for (let a = 0; a < c; a++) for (let b = 0; b < a; b++) gram[a * c + b] = gram[b * c + a]!;
  const { values, vectors } = symmetricEigen(gram, c);
  const order = [...values.keys()].sort((x, y) => values[y]! - values[x]!).slice(0, rank);

  const up = new Float32Array(n * rank);
  const down = new Float32Array(rank * k);
  const singularValues = new Float64Array(rank);
  for (const [j, e] of order.entries()) {
    singularValues[j] = Math.sqrt(Math.max(0, values[e]!));
    // up[:, j] = Q·u_e (a unit left singular vector), down[j, :] = u_eᵀ·B (= σ_j v_jᵀ).
    for (let r = 0; r < n; r++) {
      let sum = 0;
      for (let a = 0; a < c; a++) sum += q[r * c + a]! * vectors[a * c + e]!;
      up[r * rank + j] = round(sum);
    }
    for (let i = 0; i < k; i++) {
      let sum = 0;
      for (let a = 0; a < c; a++) sum += bt[i * c + a]! * vectors[a * c + e]!;
      down[j * k + i] = round(sum);
    }
  }
  const residual = new Float32Array(n * k);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < k; i++) {
      let branch = 0;
      for (let j = 0; j < rank; j++) branch += up[r * rank + j]! * down[j * k + i]!;
      residual[r * k + i] = w[r * k + i]! - branch;
    }
  }
  return { rank, up, down, residual, singularValues };
}
