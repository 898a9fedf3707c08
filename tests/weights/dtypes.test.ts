import { describe, expect, it } from 'vitest';
import { FluxError } from '../../src/errors.ts';
import { bf16ToF32, DTYPE_BYTES, f16ToF32, f32ToBf16, f32ToF16, f8e4m3ToF32, f8e5m2ToF32, fromFloat32, isDtype, toFloat32 } from '../../src/weights/dtypes.ts';

/** The 16-bit patterns that do not survive decode -> encode (NaNs only need to stay NaN). */
function roundTripFailures(decode: (bits: number) => number, encode: (value: number) => number): number[] {
  const failures: number[] = [];
  for (let bits = 0; bits < 0x10000; bits++) {
    const value = decode(bits);
    const ok = Number.isNaN(value) ? Number.isNaN(decode(encode(value))) : encode(value) === bits;
    if (!ok) failures.push(bits);
  }
  return failures;
}

describe('dtype table', () => {
  it('gives the byte size of every safetensors dtype we read', () => {
    expect(DTYPE_BYTES).toEqual({ F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1, I8: 1, U8: 1, I32: 4, U32: 4, I64: 8 });
    expect(isDtype('BF16')).toBe(true);
    expect(isDtype('F8_E4M3')).toBe(true);
    expect(isDtype('F8_E4M3FNUZ')).toBe(false);
    expect(isDtype('toString')).toBe(false);
  });
});

describe('bf16 -> f32', () => {
  it('decodes known bit patterns', () => {
    expect(bf16ToF32(0x3f80)).toBe(1);
    expect(bf16ToF32(0xc000)).toBe(-2);
    expect(bf16ToF32(0x4049)).toBe(3.140625);
    expect(bf16ToF32(0x7f80)).toBe(Infinity);
    expect(bf16ToF32(0xff80)).toBe(-Infinity);
    expect(bf16ToF32(0x7fc0)).toBeNaN();
    expect(Object.is(bf16ToF32(0x8000), -0)).toBe(true);
    expect(bf16ToF32(0x0080)).toBe(2 ** -126); // smallest normal
    expect(bf16ToF32(0x0001)).toBe(2 ** -133); // smallest subnormal
    expect(bf16ToF32(0x807f)).toBe(-127 * 2 ** -133); // largest negative subnormal
  });

  it('round-trips every pattern through f32ToBf16 (NaN stays NaN)', () => {
    expect(roundTripFailures(bf16ToF32, f32ToBf16)).toEqual([]);
  });
});

describe('f16 -> f32', () => {
  it('decodes known bit patterns', () => {
    expect(f16ToF32(0x3c00)).toBe(1);
    expect(f16ToF32(0xc000)).toBe(-2);
    expect(f16ToF32(0x3555)).toBe(0.333251953125);
    expect(f16ToF32(0x7bff)).toBe(65504);
    expect(f16ToF32(0x7c00)).toBe(Infinity);
    expect(f16ToF32(0xfc00)).toBe(-Infinity);
    expect(f16ToF32(0x7e00)).toBeNaN();
    expect(f16ToF32(0x7c01)).toBeNaN();
    expect(Object.is(f16ToF32(0x8000), -0)).toBe(true);
    expect(f16ToF32(0x0400)).toBe(2 ** -14); // smallest normal
    expect(f16ToF32(0x0001)).toBe(2 ** -24); // smallest subnormal
    expect(f16ToF32(0x03ff)).toBe(1023 * 2 ** -24); // largest subnormal
    expect(f16ToF32(0x8001)).toBe(-(2 ** -24));
  });

  it('round-trips every pattern through f32ToF16 (NaN stays NaN)', () => {
    expect(roundTripFailures(f16ToF32, f32ToF16)).toEqual([]);
  });
});

/**
 * An independent minifloat decoder, written from the formats' definitions (value = ±2^(e - bias) · 1.m, or
 * ±2^(1 - bias) · 0.m for e = 0), with each format's own rule for its top exponent.
 */
function minifloat(bits: number, exponentBits: number, mantissaBits: number, top: (mantissa: number, sign: number) => number | undefined): number {
  const bias = 2 ** (exponentBits - 1) - 1;
  const sign = bits >> (exponentBits + mantissaBits) ? -1 : 1;
  const exponent = (bits >> mantissaBits) & (2 ** exponentBits - 1);
  const mantissa = bits & (2 ** mantissaBits - 1);
  if (exponent === 2 ** exponentBits - 1) {
    const special = top(mantissa, sign);
    if (special !== undefined) return special;
  }
  const fraction = mantissa / 2 ** mantissaBits;
  return exponent === 0 ? sign * fraction * 2 ** (1 - bias) : sign * (1 + fraction) * 2 ** (exponent - bias);
}

describe('FP8 -> f32 on all 256 codes', () => {
  const codes = Array.from({ length: 256 }, (_, i) => i);

  it('E4M3: matches the definition; no infinities, NaN only at S.1111.111; max 448; subnormals 2^-9 steps', () => {
    const e4m3 = (b: number) => minifloat(b, 4, 3, (m) => (m === 7 ? NaN : undefined));
    expect(codes.filter((b) => !Object.is(f8e4m3ToF32(b), e4m3(b)))).toEqual([]);
    expect(codes.filter((b) => Number.isNaN(f8e4m3ToF32(b)))).toEqual([0x7f, 0xff]);
    expect(codes.filter((b) => !Number.isFinite(f8e4m3ToF32(b)) && !Number.isNaN(f8e4m3ToF32(b)))).toEqual([]);
    expect(f8e4m3ToF32(0x7e)).toBe(448);
    expect(f8e4m3ToF32(0xfe)).toBe(-448);
    expect(f8e4m3ToF32(0x38)).toBe(1);
    expect(f8e4m3ToF32(0x01)).toBe(2 ** -9);
    expect(f8e4m3ToF32(0x07)).toBe(7 * 2 ** -9);
    expect(f8e4m3ToF32(0x08)).toBe(2 ** -6);
    expect(Object.is(f8e4m3ToF32(0x80), -0)).toBe(true);
  });

  it('E5M2: matches the definition; ±inf at S.11111.00, NaN at the other three top codes; max 57344', () => {
    const e5m2 = (b: number) => minifloat(b, 5, 2, (m, sign) => (m === 0 ? sign * Infinity : NaN));
    expect(codes.filter((b) => !Object.is(f8e5m2ToF32(b), e5m2(b)))).toEqual([]);
    expect(codes.filter((b) => Number.isNaN(f8e5m2ToF32(b)))).toEqual([0x7d, 0x7e, 0x7f, 0xfd, 0xfe, 0xff]);
    expect(f8e5m2ToF32(0x7c)).toBe(Infinity);
    expect(f8e5m2ToF32(0xfc)).toBe(-Infinity);
    expect(f8e5m2ToF32(0x7b)).toBe(57344);
    expect(f8e5m2ToF32(0x3c)).toBe(1);
    expect(f8e5m2ToF32(0x01)).toBe(2 ** -16);
    expect(f8e5m2ToF32(0x03)).toBe(3 * 2 ** -16);
    expect(Object.is(f8e5m2ToF32(0x80), -0)).toBe(true);
  });

  it('toFloat32 decodes FP8 tensors byte for byte', () => {
    const bytes = Uint8Array.from([0x38, 0xb8, 0x01, 0x7e, 0x7f]);
    expect([...toFloat32(bytes, 'F8_E4M3')]).toEqual([1, -1, 2 ** -9, 448, NaN]);
    expect([...toFloat32(bytes, 'F8_E5M2')]).toEqual([0.5, -0.5, 2 ** -16, NaN, NaN]);
  });
});

describe('f32 -> 16-bit rounding', () => {
  it('rounds bf16 to nearest, ties to even', () => {
    expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80); // tie, 0x3f80 is even
    expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie, 0x3f82 is even
    expect(f32ToBf16(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81); // just above the tie
    expect(f32ToBf16(3.4028234663852886e38)).toBe(0x7f80); // max float rounds to inf
    expect(f32ToBf16(-0)).toBe(0x8000);
  });

  it('rounds f16 to nearest, ties to even, with overflow and gradual underflow', () => {
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie, even
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie, even
    expect(f32ToF16(65519)).toBe(0x7bff); // below the halfway point to 65536
    expect(f32ToF16(65520)).toBe(0x7c00); // tie between 65504 and "65536": even is inf
    expect(f32ToF16(1e10)).toBe(0x7c00);
    expect(f32ToF16(-1e10)).toBe(0xfc00);
    expect(f32ToF16(2 ** -25)).toBe(0x0000); // tie between 0 and the smallest subnormal
    expect(f32ToF16(2 ** -25 * 1.5)).toBe(0x0001);
    expect(f32ToF16(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 subnormal units
    expect(f32ToF16(2 ** -14 - 2 ** -25)).toBe(0x0400); // tie between largest subnormal and smallest normal: even
    expect(f32ToF16(1e-30)).toBe(0x0000);
    expect(f32ToF16(-1e-30)).toBe(0x8000);
    expect(Number.isNaN(f16ToF32(f32ToF16(NaN)))).toBe(true);
  });
});

describe('toFloat32', () => {
  it('reads F32 from an unaligned byteOffset', () => {
    const backing = new Uint8Array(1 + 8);
    const values = new Float32Array([1.5, -2.25]);
    backing.set(new Uint8Array(values.buffer), 1);
    expect(Array.from(toFloat32(backing.subarray(1), 'F32'))).toEqual([1.5, -2.25]);
  });

  it('reads BF16 and F16 little-endian, aligned or not', () => {
    const bf16 = new Uint8Array([0xff, 0x80, 0x3f, 0x00, 0xc0]); // junk byte, then 0x3f80, 0xc000
    expect(Array.from(toFloat32(bf16.subarray(1), 'BF16'))).toEqual([1, -2]);
    const f16 = new Uint8Array([0x00, 0x3c, 0x01, 0x00]); // 0x3c00, 0x0001
    expect(Array.from(toFloat32(f16, 'F16'))).toEqual([1, 2 ** -24]);
  });

  it('round-trips through fromFloat32 for every float dtype', () => {
    const values = new Float32Array([0, 1, -2, 0.5, 1024, -0.125]); // exact in all three
    for (const dtype of ['F32', 'F16', 'BF16'] as const) {
      expect(Array.from(toFloat32(fromFloat32(values, dtype), dtype))).toEqual(Array.from(values));
    }
  });

  it('rejects integer dtypes and partial elements', () => {
    expect(() => toFloat32(new Uint8Array(4), 'I32')).toThrow(FluxError);
    expect(() => toFloat32(new Uint8Array(3), 'BF16')).toThrow(/not a whole number/);
  });
});
