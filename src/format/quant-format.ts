/**
 * The integer part of the ConvRot format (docs/convrot-method.md, docs/packed-format.md): the INT4 / INT8
 * value ranges of weights and activations, the scale floor, and how many values a packed u32 word holds.
 * Shared by the GPU kernels (src/kernels) and the CPU references (src/quant), so neither imports the other.
 */
import { FluxError } from '../errors.ts';

/** Width in bits of one packed value. */
export type PackBits = 4 | 8;

/** Bits of a packed word (a u32). */
export const WORD_BITS = 32;

/** Number of values one u32 word holds. */
export function valuesPerWord(bits: PackBits): number {
  return WORD_BITS / bits;
}

export type QuantFormatName = 'int4' | 'int8';

export interface QuantFormat {
  readonly name: QuantFormatName;
  /** Width of one packed value. */
  readonly bits: PackBits;
  /** Weights use the symmetric range [−qmaxWeight, qmaxWeight]; s_w = absmax / qmaxWeight. */
  readonly qmaxWeight: number;
  /** Activations are clamped to [qminAct, qmaxAct]; s_x = absmax / qmaxAct. */
  readonly qminAct: number;
  readonly qmaxAct: number;
}

export const QUANT_FORMATS: Readonly<Record<QuantFormatName, QuantFormat>> = {
  // 7 = 2^3 − 1: the scale maps ±absmax to ±7, so rounding never yields −8; activations still get QuaRot's
  // kernel clamp [−8, 7], weights the symmetric [−7, 7] that ConvRot stores.
  int4: { name: 'int4', bits: 4, qmaxWeight: 7, qminAct: -8, qmaxAct: 7 },
  // 127 = 2^7 − 1, range symmetric ±127 (never −128), as ConvRot's Regular8bit.
  int8: { name: 'int8', bits: 8, qmaxWeight: 127, qminAct: -127, qmaxAct: 127 },
};

/** The format table entry for `name`; throws FluxError for an unknown name (callers may be untyped JS). */
export function quantFormat(name: QuantFormatName): QuantFormat {
  if (!Object.hasOwn(QUANT_FORMATS, name)) {
    throw new FluxError('bad-argument', `unknown quantization format '${String(name)}' (expected int4 or int8)`);
  }
  return QUANT_FORMATS[name];
}

/**
 * Smallest normal f32 (2^−126). Scales are floored here so an all-zero row gets a finite non-zero scale: its
 * values divide to q = 0 (no 0/0 NaN) and dequantize back to exactly 0. A normal floor also survives GPUs that
 * flush subnormals to zero. It changes nothing for rows with absmax ≥ qmax·2^−126. (The official INT4 path has
 * no floor; the INT8 path floors fp16 scales at 1e-5, which f32 scales do not need.)
 */
export const SCALE_FLOOR = 2 ** -126;
