/**
 * CPU float references of the FLUX primitives (docs/architecture.md, "The FLUX transformer"). GPU kernel tests compare
 * against these, so they favour plainness over speed: tensors are row-major Float32Arrays, every op
 * returns a new array, and sums and norms are accumulated in f64 (JS numbers) before storing as f32.
 */
import { TIMESTEP_MAX_PERIOD, TIMESTEP_SCALE } from '../../kernels/embed.ts';

/** FLUX's parameter-free LayerNorm and QK RMSNorm both use this epsilon. */
export const NORM_EPS = 1e-6;
/** √(2/π), the tanh-GELU constant. */
const GELU_TANH_SCALE = Math.sqrt(2 / Math.PI);
const GELU_TANH_CUBIC = 0.044715;
/** quick_gelu's sigmoid slope (OpenAI CLIP). */
export const QUICK_GELU_SLOPE = 1.702;

/** y = x·Wᵀ + b for x [rows, inFeatures], W [outFeatures, inFeatures], b [outFeatures]. */
export function linear(x: Float32Array, rows: number, weight: Float32Array, bias: Float32Array): Float32Array {
  const outFeatures = bias.length;
  const inFeatures = weight.length / outFeatures;
  const y = new Float32Array(rows * outFeatures);
  // Four rows per pass share each weight load (the quality tools run this model many times); every output
  // still sums its products in order, so the result is the same as the plain loop's.
  let r = 0;
  for (; r + 4 <= rows; r += 4) {
    const x0 = r * inFeatures;
    const x1 = x0 + inFeatures;
    const x2 = x1 + inFeatures;
    const x3 = x2 + inFeatures;
    for (let o = 0; o < outFeatures; o++) {
      const wRow = o * inFeatures;
      let a0 = 0;
      let a1 = 0;
      let a2 = 0;
      let a3 = 0;
      for (let i = 0; i < inFeatures; i++) {
        const w = weight[wRow + i];
        a0 += x[x0 + i] * w;
        a1 += x[x1 + i] * w;
        a2 += x[x2 + i] * w;
        a3 += x[x3 + i] * w;
      }
      y[r * outFeatures + o] = a0 + bias[o];
      y[(r + 1) * outFeatures + o] = a1 + bias[o];
      y[(r + 2) * outFeatures + o] = a2 + bias[o];
      y[(r + 3) * outFeatures + o] = a3 + bias[o];
    }
  }
  for (; r < rows; r++) {
    const xRow = r * inFeatures;
    for (let o = 0; o < outFeatures; o++) {
      const wRow = o * inFeatures;
      let acc = 0;
      for (let i = 0; i < inFeatures; i++) acc += x[xRow + i] * weight[wRow + i];
      y[r * outFeatures + o] = acc + bias[o];
    }
  }
  return y;
}

/** Mean and 1 / sqrt(biased variance + eps) of x[base, base + cols): the LayerNorm statistics of one row. */
function rowStatistics(x: Float32Array, base: number, cols: number, eps: number): [number, number] {
  let mean = 0;
  for (let c = 0; c < cols; c++) mean += x[base + c];
  mean /= cols;
  let variance = 0;
  for (let c = 0; c < cols; c++) variance += (x[base + c] - mean) ** 2;
  variance /= cols;
  return [mean, 1 / Math.sqrt(variance + eps)];
}

/**
 * LayerNorm over each row of x [rows, cols] without affine parameters (eps 1e-6, biased variance), then
 * the AdaLN modulation (1 + scale)·x + shift with shift/scale [cols] shared by all rows.
 */
export function layerNormModulate(x: Float32Array, rows: number, cols: number, shift: Float32Array, scale: Float32Array): Float32Array {
  const y = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    const [mean, inv] = rowStatistics(x, base, cols, NORM_EPS);
    for (let c = 0; c < cols; c++) y[base + c] = (1 + scale[c]) * ((x[base + c] - mean) * inv) + shift[c];
  }
  return y;
}

/** RMSNorm of every head vector of x [rows, heads·headDim] (eps 1e-6), times the learned scale [headDim]. */
export function rmsNorm(x: Float32Array, rows: number, heads: number, headDim: number, scale: Float32Array): Float32Array {
  const y = new Float32Array(rows * heads * headDim);
  for (let v = 0; v < rows * heads; v++) {
    const base = v * headDim;
    let meanSquare = 0;
    for (let d = 0; d < headDim; d++) meanSquare += x[base + d] ** 2;
    meanSquare /= headDim;
    const inv = 1 / Math.sqrt(meanSquare + NORM_EPS);
    for (let d = 0; d < headDim; d++) y[base + d] = x[base + d] * inv * scale[d];
  }
  return y;
}

// The RoPE table is computed on the host for the engine too; the reference shares it.
export { ropeTable, type RopeTable } from '../rope.ts';
import type { RopeTable } from '../rope.ts';

/** Rotates the interleaved pairs (2p, 2p+1) of every head of x [tokens, heads·headDim] by the table's angles. */
export function applyRope(x: Float32Array, tokens: number, heads: number, headDim: number, table: RopeTable): Float32Array {
  const pairs = headDim / 2;
  const y = new Float32Array(x.length);
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < heads; h++) {
      const base = (t * heads + h) * headDim;
      for (let p = 0; p < pairs; p++) {
        const c = table.cos[t * pairs + p];
        const s = table.sin[t * pairs + p];
        const x0 = x[base + 2 * p];
        const x1 = x[base + 2 * p + 1];
        y[base + 2 * p] = c * x0 - s * x1;
        y[base + 2 * p + 1] = s * x0 + c * x1;
      }
    }
  }
  return y;
}

export interface AttentionOptions {
  /** Multiplies q·k; default 1/√headDim. */
  readonly scale?: number;
  /** Query i sees keys j <= i only. */
  readonly causal?: boolean;
  /** [heads, 2·tokens − 1]: added to head h's score of (i, j) at offset j − i + tokens − 1. */
  readonly offsetBias?: Float32Array;
}

/** softmax(scale·Q·Kᵀ + bias)·V per head, optionally causal; q, k, v and the result are [tokens, heads·headDim]. */
export function attention(q: Float32Array, k: Float32Array, v: Float32Array, tokens: number, heads: number, headDim: number, options: AttentionOptions = {}): Float32Array {
  const width = heads * headDim;
  const scale = options.scale ?? 1 / Math.sqrt(headDim);
  const biasStride = 2 * tokens - 1;
  const out = new Float32Array(tokens * width);
  const scores = new Float64Array(tokens);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < tokens; i++) {
      const qBase = i * width + h * headDim;
      const keys = options.causal ? i + 1 : tokens;
      let max = -Infinity;
      for (let j = 0; j < keys; j++) {
        const kBase = j * width + h * headDim;
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += q[qBase + d] * k[kBase + d];
        scores[j] = dot * scale + (options.offsetBias ? options.offsetBias[h * biasStride + j - i + tokens - 1] : 0);
        max = Math.max(max, scores[j]);
      }
      let total = 0;
      for (let j = 0; j < keys; j++) {
        scores[j] = Math.exp(scores[j] - max);
        total += scores[j];
      }
      for (let d = 0; d < headDim; d++) {
        let acc = 0;
        for (let j = 0; j < keys; j++) acc += scores[j] * v[j * width + h * headDim + d];
        out[qBase + d] = acc / total;
      }
    }
  }
  return out;
}

/** LayerNorm of each row of x [rows, weight.length] with affine weight and bias (CLIP), biased variance. */
export function layerNorm(x: Float32Array, rows: number, weight: Float32Array, bias: Float32Array, eps: number): Float32Array {
  const cols = weight.length;
  const y = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    const [mean, inv] = rowStatistics(x, base, cols, eps);
    for (let c = 0; c < cols; c++) y[base + c] = (x[base + c] - mean) * inv * weight[c] + bias[c];
  }
  return y;
}

/** T5's RMSNorm of each row of x [rows, weight.length]: x / √(mean(x²) + eps) · weight, no mean subtraction. */
export function rmsNormRows(x: Float32Array, rows: number, weight: Float32Array, eps: number): Float32Array {
  const cols = weight.length;
  const y = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let meanSquare = 0;
    for (let c = 0; c < cols; c++) meanSquare += x[base + c] ** 2;
    const inv = 1 / Math.sqrt(meanSquare / cols + eps);
    for (let c = 0; c < cols; c++) y[base + c] = x[base + c] * inv * weight[c];
  }
  return y;
}

/** CLIP's quick_gelu: x·σ(1.702·x). */
export function quickGelu(x: Float32Array): Float32Array {
  return x.map((v) => v / (1 + Math.exp(-QUICK_GELU_SLOPE * v)));
}

/** T5's gated GELU: gelu_tanh(gate) ⊙ up, element by element. */
export function gatedGeluTanh(gate: Float32Array, up: Float32Array): Float32Array {
  const g = geluTanh(gate);
  return g.map((v, i) => v * up[i]);
}

/** GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function geluTanh(x: Float32Array): Float32Array {
  return x.map((v) => 0.5 * v * (1 + Math.tanh(GELU_TANH_SCALE * (v + GELU_TANH_CUBIC * v ** 3))));
}

/** x·σ(x). */
export function silu(x: Float32Array): Float32Array {
  return x.map((v) => v / (1 + Math.exp(-v)));
}

/**
 * Sinusoidal embedding of a timestep or guidance value: a_i = 1000·t·10000^(−i/half), output
 * [cos(a_0..a_{half−1}) | sin(a_0..a_{half−1})] (cos first). Computed in f64.
 */
export function timestepEmbedding(t: number, dim = 256): Float32Array {
  const half = dim / 2;
  const out = new Float32Array(dim);
  for (let i = 0; i < half; i++) {
    const angle = TIMESTEP_SCALE * t * Math.exp((-Math.log(TIMESTEP_MAX_PERIOD) * i) / half);
    out[i] = Math.cos(angle);
    out[half + i] = Math.sin(angle);
  }
  return out;
}

/** x + gate ⊙ y for x, y [rows, gate.length], the gate shared by all rows. */
export function gatedResidual(x: Float32Array, gate: Float32Array, y: Float32Array): Float32Array {
  const cols = gate.length;
  return x.map((v, i) => v + gate[i % cols] * y[i]);
}
