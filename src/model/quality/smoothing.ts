/**
 * SmoothQuant fused offline into FLUX's own weights, so it costs nothing at run time (docs/quality-methods.md).
 *
 * Where a per-channel division of a linear's input can be folded into the op that produces it:
 *  - AdaLN → q/k/v and AdaLN → MLP up. The input is (1 + scale) ⊙ LN(x) + shift, with shift and scale rows of
 *    a modulation linear on silu(vec). Dividing channel j by s_j: shift' = shift / s (its weight rows and bias
 *    / s), and (1 + scale') = (1 + scale) / s, i.e. scale weight rows / s and bias (b + 1) / s − 1. Double
 *    blocks: (shift1, scale1) → q, k, v and (shift2, scale2) → MLP up, per stream; single blocks: (shift,
 *    scale) → q, k, v and the MLP up projection (they read the same input).
 *  - V → attention out. Attention output channel c is a convex combination of V's channel c over the tokens,
 *    so V's output rows (and bias) / s give an output / s. In double blocks attention mixes the text and image
 *    tokens, so both streams' V share one s and both output projections are multiplied. Single blocks: only
 *    the first H input columns of proj_out (the attention part; the rest is the MLP's).
 * Then the consumers' input columns are multiplied by s: y = (x / s)·(W·diag(s))ᵀ = x·Wᵀ.
 *
 * MLP down is not fusable: GELU sits between MLP up and down, and gelu(z / s) ≠ gelu(z) / s.
 */
import { FluxError } from '../../errors.ts';
import { columnAbsMax, DEFAULT_SMOOTHING_ALPHA, smoothingFactors } from '../../quant/smooth.ts';
import type { FluxConfig } from '../config.ts';
import { DOUBLE_STREAMS, doubleBlockPrefix, SINGLE_BLOCK, singleBlockPrefix } from '../layout.ts';
import type { CanonicalParams } from '../params.ts';
import type { Calibration } from './calibration.ts';

export type SmoothingPairKind = 'adaln-attention' | 'adaln-mlp' | 'v-out';

/** Columns [col0, col0 + width) of a linear's input. */
interface ColumnRange {
  readonly name: string;
  readonly col0: number;
}

/** One place where a per-channel factor s [width] is divided out of a producer and multiplied into consumers. */
export interface SmoothingPair {
  /** Unique, readable: `<producer> -> <first consumer>`. */
  readonly id: string;
  readonly kind: SmoothingPairKind;
  readonly width: number;
  /** AdaLN producers: the modulation linear and the chunk indexes of its shift and scale rows. */
  readonly modulation?: { readonly name: string; readonly shiftChunk: number; readonly scaleChunk: number };
  /** V producers: linears whose output rows (and bias) are divided by s. */
  readonly dividedRows?: readonly string[];
  /** Linears whose input columns are multiplied by s; their recorded input maxima are max|X|. */
  readonly consumers: readonly ColumnRange[];
}

/** Chunk indexes of (shift, scale) in the modulation output: shift1, scale1, gate1, shift2, scale2, gate2. */
const ATTENTION_SHIFT_SCALE = [0, 1] as const;
const MLP_SHIFT_SCALE = [3, 4] as const;

/** Every fusable smoothing place of the model, blocks in forward order. */
export function smoothingPairs(config: FluxConfig): SmoothingPair[] {
  const h = config.hiddenSize;
  const pairs: SmoothingPair[] = [];
  const adaln = (kind: SmoothingPairKind, modulation: string, [shiftChunk, scaleChunk]: readonly [number, number], consumers: string[]): void => {
    pairs.push({ id: `${modulation} -> ${consumers[0]}`, kind, width: h, modulation: { name: modulation, shiftChunk, scaleChunk }, consumers: consumers.map((name) => ({ name, col0: 0 })) });
  };
  for (let i = 0; i < config.depthDouble; i++) {
    const b = doubleBlockPrefix(i);
    for (const s of [DOUBLE_STREAMS.img, DOUBLE_STREAMS.txt]) {
      adaln('adaln-attention', b + s.modulation, ATTENTION_SHIFT_SCALE, [s.q, s.k, s.v].map((n) => b + n));
      adaln('adaln-mlp', b + s.modulation, MLP_SHIFT_SCALE, [b + s.mlpIn]);
    }
    const streams = [DOUBLE_STREAMS.img, DOUBLE_STREAMS.txt];
    pairs.push({
      id: `${b}attn v -> out`,
      kind: 'v-out',
      width: h,
      dividedRows: streams.map((s) => b + s.v),
      consumers: streams.map((s) => ({ name: b + s.attnOut, col0: 0 })),
    });
  }
  for (let i = 0; i < config.depthSingle; i++) {
    const b = singleBlockPrefix(i);
    const n = SINGLE_BLOCK;
    adaln('adaln-attention', b + n.modulation, ATTENTION_SHIFT_SCALE, [n.q, n.k, n.v, n.mlpIn].map((x) => b + x));
    pairs.push({ id: `${b}${n.v} -> ${n.out}`, kind: 'v-out', width: h, dividedRows: [b + n.v], consumers: [{ name: b + n.out, col0: 0 }] });
  }
  return pairs;
}

export interface SmoothingOptions {
  /** Migration strength α, default 0.5. */
  readonly alpha?: number;
  /** Which kinds of places to smooth; default all. */
  readonly kinds?: readonly SmoothingPairKind[];
}

/** s for every pair (of the chosen kinds) from the calibration maxima and the weights' column maxima. */
export function smoothingFactorsFor(config: FluxConfig, params: CanonicalParams, calibration: Calibration, options: SmoothingOptions = {}): Map<string, Float32Array> {
  const kinds = options.kinds ?? ['adaln-attention', 'adaln-mlp', 'v-out'];
  const factors = new Map<string, Float32Array>();
  for (const pair of smoothingPairs(config)) {
    if (!kinds.includes(pair.kind)) continue;
    const act = new Float32Array(pair.width);
    const weight = new Float32Array(pair.width);
    let partial = false;
    for (const c of pair.consumers) {
      const x = calibration.inputAbsMax.get(c.name);
      if (!x) throw new FluxError('bad-argument', `calibration has no input maxima for ${c.name}`);
      for (let j = 0; j < pair.width; j++) act[j] = Math.max(act[j]!, x[c.col0 + j]!);
      const w = get(params, `${c.name}.weight`);
      columnAbsMax(w, x.length, c.col0, pair.width, weight);
      partial ||= x.length !== pair.width;
    }
    const s = smoothingFactors(act, weight, options.alpha ?? DEFAULT_SMOOTHING_ALPHA);
    factors.set(pair.id, partial ? keepPeak(s, act) : s);
  }
  return factors;
}

/**
 * For a consumer whose input is only partly smoothed (single-block proj_out: attention columns yes, MLP
 * columns no), s times the constant that keeps the smoothed part's activation peak where it was. Any constant
 * keeps the equivalence; without this one, s > 1 throughout would shrink the attention columns under the MLP
 * columns inside each token's one quantization scale (on flux-tiny-a: W4A4 error 0.19 → 0.44).
 */
function keepPeak(s: Float32Array, act: Float32Array): Float32Array {
  let before = 0;
  let after = 0;
  for (let j = 0; j < s.length; j++) {
    before = Math.max(before, act[j]!);
    after = Math.max(after, act[j]! / s[j]!);
  }
  if (before === 0) return s;
  const k = after / before;
  return s.map((v) => v * k);
}

/** Copy-on-write view of a parameter set: the first write to a tensor copies it. */
export class ParamEditor {
  readonly out: Map<string, Float32Array>;
  private readonly copied = new Set<string>();

  constructor(params: CanonicalParams) {
    this.out = new Map(params);
  }

  read(name: string): Float32Array {
    return get(this.out, name);
  }

  edit(name: string): Float32Array {
    const values = get(this.out, name);
    if (this.copied.has(name)) return values;
    const copy = Float32Array.from(values);
    this.out.set(name, copy);
    this.copied.add(name);
    return copy;
  }
}

/** Rows [row0, row0 + s.length) of linear `name` (weight rows and bias) divided by s. */
export function divideOutputRows(editor: ParamEditor, name: string, row0: number, s: Float32Array, biasOf: (b: number, s: number) => number = (b, k) => b / k): void {
  const w = editor.edit(`${name}.weight`);
  const b = editor.edit(`${name}.bias`);
  const cols = w.length / b.length;
  for (let j = 0; j < s.length; j++) {
    const row = (row0 + j) * cols;
    for (let c = 0; c < cols; c++) w[row + c]! /= s[j]!;
    b[row0 + j] = biasOf(b[row0 + j]!, s[j]!);
  }
}

/** Input columns [col0, col0 + s.length) of linear `name` multiplied by s. */
export function multiplyInputColumns(editor: ParamEditor, name: string, col0: number, s: Float32Array): void {
  const w = editor.edit(`${name}.weight`);
  const rows = editor.read(`${name}.bias`).length;
  const cols = w.length / rows;
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < s.length; j++) w[r * cols + col0 + j]! *= s[j]!;
  }
}

/**
 * The parameters with every pair in `factors` (pair id → s) folded in. Untouched tensors are shared with
 * `params`, changed ones are copies. Exact in real arithmetic; in f32 the outputs move by rounding only.
 */
export function applySmoothing(config: FluxConfig, params: CanonicalParams, factors: ReadonlyMap<string, Float32Array>): Map<string, Float32Array> {
  const editor = new ParamEditor(params);
  const h = config.hiddenSize;
  const known = new Set<string>();
  for (const pair of smoothingPairs(config)) {
    known.add(pair.id);
    const s = factors.get(pair.id);
    if (!s) continue;
    if (s.length !== pair.width) throw new FluxError('bad-shape', `smoothing ${pair.id}: ${s.length} factors, expected ${pair.width}`);
    if (pair.modulation) {
      const { name, shiftChunk, scaleChunk } = pair.modulation;
      divideOutputRows(editor, name, shiftChunk * h, s);
      // (1 + scale') = (1 + scale) / s: weights / s, bias (b + 1) / s − 1.
      divideOutputRows(editor, name, scaleChunk * h, s, (b, k) => (b + 1) / k - 1);
    }
    for (const name of pair.dividedRows ?? []) divideOutputRows(editor, name, 0, s);
    for (const c of pair.consumers) multiplyInputColumns(editor, c.name, c.col0, s);
  }
  for (const id of factors.keys()) if (!known.has(id)) throw new FluxError('bad-argument', `no smoothing place "${id}" in this model`);
  return editor.out;
}

/** Calibrated smoothing in one call: factors from the calibration, folded into a copy of the parameters. */
export function smoothParams(config: FluxConfig, params: CanonicalParams, calibration: Calibration, options: SmoothingOptions = {}): Map<string, Float32Array> {
  return applySmoothing(config, params, smoothingFactorsFor(config, params, calibration, options));
}

function get(params: CanonicalParams, name: string): Float32Array {
  const values = params.get(name);
  if (!values) throw new FluxError('bad-argument', `no parameter "${name}" in this model`);
  return values;
}
