import { describe, expect, it } from 'vitest';
import { FluxError } from '../../src/errors.ts';
import { packInt4, packInt8, unpackInt4, unpackInt8 } from '../../src/quant/pack.ts';
import { rng } from '../helpers/random.ts';

/** Little-endian bytes of packed words (the byte order GPU buffers and QuaRot's uint8 tensors use). */
function bytesOf(words: Uint32Array): number[] {
  const bytes: number[] = [];
  for (const w of words) for (let b = 0; b < 4; b++) bytes.push((w >>> (8 * b)) & 0xff);
  return bytes;
}

function randomInts(length: number, min: number, max: number, seed: number): Int8Array {
  const uniform = rng(seed);
  const q = Int8Array.from({ length }, () => min + Math.floor(uniform() * (max - min + 1)));
  q[0] = min; // make sure both extremes occur
  q[length - 1] = max;
  return q;
}

describe('INT4 packing', () => {
  it.each([
    [-7, 3, 0x39],
    [-8, 7, 0x78],
    [1, -1, 0xf1],
  ])('pair (%i, %i) becomes byte 0x%s', (q0, q1, byte) => {
    const words = packInt4([q0, q1, 0, 0, 0, 0, 0, 0], 1, 8);
    expect(bytesOf(words)[0]).toBe(byte);
  });

  it('puts element k at bits 4·(k % 8) of word k / 8, two’s complement', () => {
    const words = packInt4([0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1], 1, 16);
    expect(Array.from(words)).toEqual([0x76543210, 0xfedcba98]);
    expect(bytesOf(words)).toEqual([0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe]);
  });

  it('round-trips random rows including -8 and 7', () => {
    const q = randomInts(5 * 64, -8, 7, 1);
    const words = packInt4(q, 5, 64);
    expect(words.length).toBe(5 * 8);
    expect(Array.from(unpackInt4(words, 5, 64))).toEqual(Array.from(q));
  });

  it('rejects values outside [-8, 7], non-integers and K not a multiple of 8', () => {
    expect(() => packInt4([8, 0, 0, 0, 0, 0, 0, 0], 1, 8)).toThrow(FluxError);
    expect(() => packInt4([-9, 0, 0, 0, 0, 0, 0, 0], 1, 8)).toThrow(FluxError);
    expect(() => packInt4([0.5, 0, 0, 0, 0, 0, 0, 0], 1, 8)).toThrow(FluxError);
    expect(() => packInt4(new Int8Array(12), 1, 12)).toThrow(FluxError);
    expect(() => unpackInt4(new Uint32Array(2), 1, 12)).toThrow(FluxError);
    expect(() => packInt4(new Int8Array(16), 3, 8)).toThrow(FluxError);
  });
});

describe('INT8 packing', () => {
  it('puts element k at bits 8·(k % 4) of word k / 4, two’s complement', () => {
    const words = packInt8([1, -1, 127, -127, -128, 0, 2, 3], 1, 8);
    expect(Array.from(words)).toEqual([0x817fff01, 0x03020080]);
    // Same bytes as an Int8Array of the values.
    expect(Array.from(new Int8Array(words.buffer))).toEqual([1, -1, 127, -127, -128, 0, 2, 3]);
  });

  it('round-trips random rows including -127 and 127', () => {
    const q = randomInts(3 * 256, -127, 127, 2);
    expect(Array.from(unpackInt8(packInt8(q, 3, 256), 3, 256))).toEqual(Array.from(q));
  });

  it('rejects values outside [-128, 127] and K not a multiple of 4', () => {
    expect(() => packInt8([128, 0, 0, 0], 1, 4)).toThrow(FluxError);
    expect(() => packInt8(new Int8Array(6), 1, 6)).toThrow(FluxError);
  });
});
