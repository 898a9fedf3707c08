/**
 * The rotation part of the ConvRot format (docs/convrot-method.md): which group-wise Hadamard rotations exist,
 * which group sizes each accepts, how rows are padded to whole groups, and the f32 normalisation constant.
 * Shared by the GPU kernels (src/kernels) and the CPU references (src/quant), so neither imports the other.
 */
import { FluxError } from '../errors.ts';

export type RotationKind = 'regular' | 'sylvester' | 'none';

/** Largest group size: indices are combined with 32-bit bitwise operations (i ^ j, popcount). */
const MAX_ROTATION_SIZE = 2 ** 30;

/** Bits at even positions: a power of two is a power of four iff its set bit is one of these. */
export const EVEN_BITS = 0x55555555;

function isPowerOfTwo(n: number): boolean {
  return n >= 1 && (n & (n - 1)) === 0;
}

/** Throws unless n is a valid group size for this rotation kind. */
export function assertRotationSize(kind: RotationKind, n: number): void {
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_ROTATION_SIZE) {
    throw new FluxError('bad-argument', `rotation group size must be an integer in [1, 2^30], got ${n}`);
  }
  switch (kind) {
    case 'regular':
      if (n < 4 || !isPowerOfTwo(n) || (n & EVEN_BITS) === 0) {
        const valid = '4, 16, 64, 256, ...';
        throw new FluxError('bad-argument', `regular Hadamard size must be a power of 4 (${valid}), got ${n}`);
      }
      return;
    case 'sylvester':
      if (n < 2 || !isPowerOfTwo(n)) {
        throw new FluxError('bad-argument', `Sylvester Hadamard size must be a power of 2 (>= 2), got ${n}`);
      }
      return;
    case 'none':
      return;
    default:
      throw new FluxError('bad-argument', `unknown rotation kind '${String(kind)}' (regular, sylvester or none)`);
  }
}

/** f32(1/√n): the normalisation every fast transform applies once at the end (exactly 2^−k for n = 4^k). */
export function rotationScale(n: number): number {
  return Math.fround(1 / Math.sqrt(n));
}

/** Width after zero-padding `cols` up to a multiple of `groupSize`. */
export function paddedWidth(cols: number, groupSize: number): number {
  return Math.ceil(cols / groupSize) * groupSize;
}
