/**
 * SmoothQuant's per-channel migration factors. For a linear y = x·Wᵀ, dividing input channel j of x by s_j
 * and multiplying column j of W by s_j leaves y unchanged, and moves quantization difficulty from
 * activation outliers to the weights:
 *     s_j = max|X_j|^α / max|W_j|^(1−α)
 * (α = 0.5 splits it evenly). The division is then folded into whatever produced x (offline).
 */
import { FluxError } from '../errors.ts';

/** SmoothQuant's default migration strength. */
export const DEFAULT_SMOOTHING_ALPHA = 0.5;
/**
 * Channel maxima below this count as this (SmoothQuant clamps both at 1e-5): a dead channel would otherwise
 * give s = 0 or ∞.
 */
const MIN_ABSMAX = 1e-5;
/**
 * s is clamped to [1/MAX_FACTOR, MAX_FACTOR]: beyond it one channel's weights would dominate a row's
 * quantization scale, and the folded modulation weights would lose precision.
 */
export const MAX_SMOOTHING_FACTOR = 1e3;

/** Max |w[r, col0 + j]| over the rows of each weight matrix [rows, cols], for j < width; accumulates into `into`. */
export function columnAbsMax(w: Float32Array, cols: number, col0: number, width: number, into: Float32Array): Float32Array {
  const rows = w.length / cols;
  for (let r = 0; r < rows; r++) {
    const base = r * cols + col0;
    for (let j = 0; j < width; j++) into[j] = Math.max(into[j]!, Math.abs(w[base + j]!));
  }
  return into;
}

/** s_j from activation maxima and weight column maxima (both [channels]); α is clamped to [0, 1]. */
export function smoothingFactors(actAbsMax: Float32Array, weightAbsMax: Float32Array, alpha = DEFAULT_SMOOTHING_ALPHA): Float32Array {
  if (actAbsMax.length !== weightAbsMax.length) {
    throw new FluxError('bad-shape', `smoothing: ${actAbsMax.length} activation maxima but ${weightAbsMax.length} weight maxima`);
  }
  if (!Number.isFinite(alpha)) throw new FluxError('bad-argument', `smoothing alpha must be a number in [0, 1], got ${alpha}`);
  const a = Math.min(1, Math.max(0, alpha));
  return actAbsMax.map((x, j) => {
    const s = Math.max(x, MIN_ABSMAX) ** a / Math.max(weightAbsMax[j]!, MIN_ABSMAX) ** (1 - a);
    return Math.min(MAX_SMOOTHING_FACTOR, Math.max(1 / MAX_SMOOTHING_FACTOR, s));
  });
}
