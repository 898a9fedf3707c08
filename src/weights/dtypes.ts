/**
 * Safetensors element types and their CPU conversions. Tensor bytes are little-endian; typed-array views
 * use host byte order, so every view goes through `littleEndianView`, which also copies unaligned input.
 */
import { FluxError } from '../errors.ts';

/** Bytes per element, by safetensors dtype name. */
export const DTYPE_BYTES = {
  F32: 4,
  F16: 2,
  BF16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I8: 1,
  U8: 1,
  I32: 4,
  U32: 4,
  I64: 8,
} as const;

export type Dtype = keyof typeof DTYPE_BYTES;
export type FloatDtype = 'F32' | 'F16' | 'BF16';
/** Float dtypes checkpoints are read in: FloatDtype plus the FP8 formats of the widely shared FP8 FLUX files. */
export type SourceFloatDtype = FloatDtype | 'F8_E4M3' | 'F8_E5M2';

export function isDtype(name: string): name is Dtype {
  return Object.hasOwn(DTYPE_BYTES, name);
}

export function isFloatDtype(dtype: Dtype): dtype is FloatDtype {
  return dtype === 'F32' || dtype === 'F16' || dtype === 'BF16';
}

export function isSourceFloatDtype(dtype: string): dtype is SourceFloatDtype {
  return dtype === 'F32' || dtype === 'F16' || dtype === 'BF16' || dtype === 'F8_E4M3' || dtype === 'F8_E5M2';
}

// Scratch views to move between a float32 and its bit pattern.
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

// Typed arrays use host byte order; every WebGPU host (x86, ARM) is little-endian, like the files.
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function requireLittleEndianHost(what: string): void {
  if (!HOST_IS_LITTLE_ENDIAN) throw new FluxError('unsupported-dtype', `${what}: big-endian hosts are not supported`);
}

/** bfloat16 is the top half of a float32, so widening is exact for every pattern (subnormals, inf, NaN). */
export function bf16ToF32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0]!;
}

const F16_EXPONENT_BIAS = 15;
const F16_MANTISSA_BITS = 10;
const F16_MAX_EXPONENT = 31;

export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> F16_MANTISSA_BITS) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** (1 - F16_EXPONENT_BIAS - F16_MANTISSA_BITS);
  if (exponent === F16_MAX_EXPONENT) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - F16_EXPONENT_BIAS);
}

// F8_E4M3 ("e4m3fn", OCP FP8): bias 7, 3 mantissa bits, no infinities; S.1111.111 is the only NaN.
const E4M3_EXPONENT_BIAS = 7;
const E4M3_MANTISSA_BITS = 3;

/** F8_E4M3 bits -> float32 (exact: every e4m3 value is a float32). */
export function f8e4m3ToF32(bits: number): number {
  const sign = bits & 0x80 ? -1 : 1;
  const exponent = (bits >> E4M3_MANTISSA_BITS) & 0xf;
  const mantissa = bits & 0x7;
  if (exponent === 0xf && mantissa === 0x7) return NaN;
  if (exponent === 0) return sign * mantissa * 2 ** (1 - E4M3_EXPONENT_BIAS - E4M3_MANTISSA_BITS);
  return sign * (1 + mantissa / 8) * 2 ** (exponent - E4M3_EXPONENT_BIAS);
}

/** F8_E5M2 bits -> float32. E5M2 is IEEE-style with f16's exponent: it is exactly the top byte of an f16. */
export function f8e5m2ToF32(bits: number): number {
  return f16ToF32((bits & 0xff) << 8);
}

/** float32 -> bfloat16 bits, round to nearest even; NaN stays a (quiet) NaN. */
export function f32ToBf16(value: number): number {
  scratchF32[0] = value;
  const bits = scratchU32[0]!;
  if (Number.isNaN(scratchF32[0])) return (bits >>> 16) | 0x40;
  const roundingBias = 0x7fff + ((bits >>> 16) & 1);
  return ((bits + roundingBias) >>> 16) & 0xffff;
}

/** float32 -> float16 bits, round to nearest even, overflow to inf, gradual underflow to subnormals. */
export function f32ToF16(value: number): number {
  scratchF32[0] = value;
  const bits = scratchU32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const f32Exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;
  if (f32Exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const exponent = f32Exponent - 127 + F16_EXPONENT_BIAS;
  if (exponent >= F16_MAX_EXPONENT) return sign | 0x7c00;
  if (exponent <= 0) {
    // Below 2^-25 even rounding up cannot reach the smallest subnormal (2^-24).
    if (exponent < -F16_MANTISSA_BITS) return sign;
    mantissa |= 0x800000;
    const shift = 14 - exponent;
    return sign | roundShiftEven(mantissa, shift);
  }
  // A carry out of the mantissa correctly bumps the exponent (up to inf).
  return sign | (((exponent << F16_MANTISSA_BITS) | (mantissa >>> 13)) + roundUpEven(mantissa, 13, mantissa >>> 13));
}

function roundShiftEven(value: number, shift: number): number {
  const kept = value >>> shift;
  return kept + roundUpEven(value, shift, kept);
}

/** 1 when dropping the low `shift` bits of `value` must round `kept` up (nearest, ties to even). */
function roundUpEven(value: number, shift: number, kept: number): number {
  const dropped = value & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return dropped > half || (dropped === half && (kept & 1) === 1) ? 1 : 0;
}

let f16Table: Float32Array | undefined;
/** All 65536 half values, built once: a lookup beats per-element branching on multi-MB tensors. */
function f16ToF32Table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(0x10000);
    for (let bits = 0; bits < 0x10000; bits++) f16Table[bits] = f16ToF32(bits);
  }
  return f16Table;
}

type TypedArrayConstructor<T> = { new (buffer: ArrayBuffer, byteOffset: number, length: number): T; BYTES_PER_ELEMENT: number };

/** A typed view of little-endian bytes; shares memory when aligned, copies otherwise. */
function littleEndianView<T>(bytes: Uint8Array, View: TypedArrayConstructor<T>, what: string): T {
  requireLittleEndianHost(what);
  const size = View.BYTES_PER_ELEMENT;
  if (bytes.byteLength % size !== 0) {
    throw new FluxError('bad-shape', `${what}: ${bytes.byteLength} bytes is not a whole number of ${size}-byte elements`);
  }
  const aligned = bytes.byteOffset % size === 0 && bytes.buffer instanceof ArrayBuffer ? bytes : bytes.slice();
  return new View(aligned.buffer as ArrayBuffer, aligned.byteOffset, aligned.byteLength / size);
}

const f8Tables = new Map<'F8_E4M3' | 'F8_E5M2', Float32Array>();
/** All 256 values of an FP8 format, built once. */
function f8Table(dtype: 'F8_E4M3' | 'F8_E5M2'): Float32Array {
  let table = f8Tables.get(dtype);
  if (!table) {
    const decode = dtype === 'F8_E4M3' ? f8e4m3ToF32 : f8e5m2ToF32;
    table = Float32Array.from({ length: 256 }, (_, bits) => decode(bits));
    f8Tables.set(dtype, table);
  }
  return table;
}

/**
 * Decodes F32/F16/BF16/F8 tensor bytes to float32 (the CPU reference; the loader widens on the GPU). For F32 input with aligned bytes the result shares
 * memory with `bytes`; the 16-bit types always produce a new array.
 */
export function toFloat32(bytes: Uint8Array, dtype: Dtype): Float32Array<ArrayBuffer> {
  switch (dtype) {
    case 'F32':
      return littleEndianView(bytes, Float32Array, 'F32 tensor');
    case 'BF16': {
      const halves = littleEndianView(bytes, Uint16Array, 'BF16 tensor');
      const words = new Uint32Array(halves.length);
      for (let i = 0; i < halves.length; i++) words[i] = halves[i]! << 16;
      return new Float32Array(words.buffer);
    }
    case 'F16': {
      const halves = littleEndianView(bytes, Uint16Array, 'F16 tensor');
      const table = f16ToF32Table();
      const out = new Float32Array(halves.length);
      for (let i = 0; i < halves.length; i++) out[i] = table[halves[i]!]!;
      return out;
    }
    case 'F8_E4M3':
    case 'F8_E5M2': {
      const table = f8Table(dtype);
      return Float32Array.from(bytes, (b) => table[b]!);
    }
    default:
      throw new FluxError('unsupported-dtype', `cannot convert ${dtype} to float32 (only F32, F16, BF16, F8_E4M3, F8_E5M2)`);
  }
}

/** Encodes float32 values as little-endian F32/F16/BF16 bytes (used to write test files and CLI outputs). */
export function fromFloat32(values: Float32Array, dtype: FloatDtype): Uint8Array<ArrayBuffer> {
  requireLittleEndianHost(`${dtype} encoding`);
  if (dtype === 'F32') return new Uint8Array(values.slice().buffer);
  const encode = dtype === 'BF16' ? f32ToBf16 : f32ToF16;
  const halves = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) halves[i] = encode(values[i]!);
  return new Uint8Array(halves.buffer);
}
