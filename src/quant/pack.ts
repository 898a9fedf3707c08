/**
 * Packing of quantized integers into u32 words, K-contiguous (the layout GPU GEMM kernels read).
 *
 * A row-major [rows, K] matrix of signed integers becomes a row-major [rows, K / (32 / bits)] Uint32Array:
 *
 *   INT4: 8 values per word. Element k of a row sits in word k / 8 at bits 4·(k % 8) … 4·(k % 8) + 3,
 *         as a two's-complement nibble (−8 → 0x8, −1 → 0xF, 7 → 0x7).
 *         word = e0 | e1 << 4 | e2 << 8 | … | e7 << 28
 *         Read as little-endian bytes, byte j holds element 2j in its low nibble and element 2j+1 in its high
 *         nibble: exactly QuaRot's pack_i4 byte order (docs/packed-format.md), e.g. (−7, 3) → 0x39,
 *         (−8, 7) → 0x78, (1, −1) → 0xF1.
 *   INT8: 4 values per word. Element k sits in word k / 4 at bits 8·(k % 4) … 8·(k % 4) + 7, two's complement
 *         (byte k of the row in little-endian order, i.e. the layout of an Int8Array).
 *
 * K must be a multiple of the values per word; rotated widths are padded to a multiple of the group size, so it
 * always is in practice. Rows never share a word.
 */
import { FluxError } from '../errors.ts';
import { valuesPerWord, WORD_BITS, type PackBits } from '../format/quant-format.ts';
import { assertMatrix } from './shape.ts';

export { valuesPerWord, type PackBits };

/** Integers to pack, row-major. */
export type SignedValues = Int8Array | Int32Array | readonly number[];

function assertPackable(bits: PackBits, k: number): void {
  if (bits !== 4 && bits !== 8) {
    throw new FluxError('bad-argument', `packing width must be 4 or 8 bits, got ${String(bits)}`);
  }
  if (k % valuesPerWord(bits) !== 0) {
    throw new FluxError('bad-shape', `INT${bits} packing needs K to be a multiple of ${valuesPerWord(bits)}, got ${k}`);
  }
}

/** Packs row-major [rows, k] signed integers (each in [−2^(bits−1), 2^(bits−1) − 1]) into u32 words. */
export function packSigned(
  q: SignedValues,
  rows: number,
  k: number,
  bits: PackBits,
): Uint32Array<ArrayBuffer> {
  assertMatrix(`INT${bits} values`, q.length, rows, k);
  assertPackable(bits, k);
  const perWord = valuesPerWord(bits);
  const min = -(2 ** (bits - 1));
  const max = 2 ** (bits - 1) - 1;
  const mask = 2 ** bits - 1;
  const packed = new Uint32Array(q.length / perWord);
  for (let w = 0; w < packed.length; w++) {
    let word = 0;
    for (let j = 0; j < perWord; j++) {
      const v = q[w * perWord + j];
      if (!Number.isInteger(v) || v < min || v > max) {
        const at = w * perWord + j;
        throw new FluxError('bad-argument', `INT${bits} value ${v} at index ${at} is outside [${min}, ${max}]`);
      }
      word |= (v & mask) << (bits * j);
    }
    packed[w] = word >>> 0;
  }
  return packed;
}

/** Inverse of packSigned: row-major [rows, k] sign-extended values. */
export function unpackSigned(packed: Uint32Array, rows: number, k: number, bits: PackBits): Int8Array<ArrayBuffer> {
  assertPackable(bits, k);
  const perWord = valuesPerWord(bits);
  assertMatrix(`packed INT${bits} words`, packed.length, rows, k / perWord);
  const signShift = WORD_BITS - bits;
  const q = new Int8Array(rows * k);
  for (let w = 0; w < packed.length; w++) {
    const word = packed[w];
    // Move the field to the top of the 32-bit lane, then an arithmetic shift back sign-extends it.
    for (let j = 0; j < perWord; j++) q[w * perWord + j] = (word << (signShift - bits * j)) >> signShift;
  }
  return q;
}

export function packInt4(q: SignedValues, rows: number, k: number): Uint32Array<ArrayBuffer> {
  return packSigned(q, rows, k, 4);
}

export function unpackInt4(packed: Uint32Array, rows: number, k: number): Int8Array<ArrayBuffer> {
  return unpackSigned(packed, rows, k, 4);
}

export function packInt8(q: SignedValues, rows: number, k: number): Uint32Array<ArrayBuffer> {
  return packSigned(q, rows, k, 8);
}

export function unpackInt8(packed: Uint32Array, rows: number, k: number): Int8Array<ArrayBuffer> {
  return unpackSigned(packed, rows, k, 8);
}
