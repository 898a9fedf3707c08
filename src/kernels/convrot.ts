/**
 * ConvRot kernels (docs/convrot.md): the fused rotate → absmax → quantize → pack of matrix rows (per-token
 * activations and per-output-channel weights, shaders/convrot_quant.wgsl), and the integer GEMM with its
 * dequantizing epilogue (shaders/gemm_int.wgsl). Both follow the CPU reference in src/quant bit for bit.
 *
 * Packed rows on the GPU (`PackedRows`): the layout of src/quant/pack.ts, K-contiguous, one row after another,
 * with the row length rounded up to whole vec4 words (4 u32) for the GEMM's loads. So a row holds
 * `packedWordsPerRow` words: the CPU reference's paddedK / valuesPerWord words, then zero words if needed
 * (always none at FLUX sizes, where the padded K is a multiple of 256).
 */
import { FluxError } from '../errors.ts';
import type { CommandBatch } from '../gpu/batch.ts';
import type { GpuContext } from '../gpu/device.ts';
import { numel, type GpuTensor } from '../gpu/tensor.ts';
import { quantFormat, valuesPerWord, type QuantFormatName } from '../format/quant-format.ts';
import { assertRotationSize, paddedWidth, rotationScale, type RotationKind } from '../format/rotation.ts';
import { viewLayout, type MatrixView } from './matrix-view.ts';
import { ceilDiv, packUniforms, pipelineFor } from './kernel.ts';

/** Values per workgroup chunk in convrot_quant (CHUNK): rotation groups must divide it. */
const QUANT_CHUNK = 4096;
/**
 * Invocations per convrot_quant workgroup (one workgroup per row). A CPU device runs a workgroup's SIMD groups
 * one after the other and switches between all of them at every barrier: with one SIMD group (4 lanes on
 * SwiftShader) the kernel measured 3.5x faster than with 64 invocations, 11x faster than with 256.
 */
const QUANT_WORKGROUP_CPU = 4;
const QUANT_WORKGROUP_GPU = 64;
/** u32 words per vec4 load of the GEMM: packed rows are whole vec4s. */
const WORDS_PER_VEC4 = 4;
/** Tokens and channels per GEMM workgroup: TM * WG_Y and TN * WG_X in shaders/gemm_int.wgsl. */
const GEMM_TILE_M = 32;
const GEMM_TILE_N = 64;
/** Storage bindings of gemm_int before the epilogue's own (xq, x_meta, wq, w_meta, bias, y). */
const GEMM_BASE_BINDINGS = 6;

/** A quantized matrix on the GPU: packed values and, per row, the scale and the sum of q. */
export interface PackedRows {
  /** [rows, wordsPerRow] u32, see the module comment. */
  readonly packed: GpuTensor;
  /** [rows, 2] u32: bitcast f32 scale, bitcast i32 Σ_k q[row, k]. */
  readonly meta: GpuTensor;
}

/** How rows are rotated and quantized; activations and weights of one layer share it. */
export interface RowQuantization {
  readonly format: QuantFormatName;
  readonly rotation: RotationKind;
  /** Rotation group N0; rows are zero-padded to a multiple of it (as blockRotateRows). */
  readonly groupSize: number;
}

/** u32 words of one packed row of `k` values: the padded K in packed words, rounded up to whole vec4s. */
export function packedWordsPerRow(k: number, q: RowQuantization): number {
  const words = paddedWidth(k, q.groupSize) / valuesPerWord(quantFormat(q.format).bits);
  return Math.ceil(words / WORDS_PER_VEC4) * WORDS_PER_VEC4;
}

/** Throws unless convrot_quant can rotate with this kind and group size. */
export function assertRowQuantization(q: RowQuantization): void {
  quantFormat(q.format);
  assertRotationSize(q.rotation, q.groupSize);
  if (q.rotation !== 'none' && QUANT_CHUNK % q.groupSize !== 0) {
    throw new FluxError('bad-argument', `rotation group size ${q.groupSize} is larger than the GPU kernel's chunk of ${QUANT_CHUNK}`);
  }
}

const f32Bits = (v: number): number => new Uint32Array(Float32Array.of(v).buffer)[0]!;

function quantWorkgroupSize(ctx: GpuContext): number {
  return ctx.adapter.isFallbackAdapter ? QUANT_WORKGROUP_CPU : QUANT_WORKGROUP_GPU;
}

/**
 * The butterfly stages of each rotation kind, in the CPU's order (whole-declaration swaps for ROTATE):
 * rotate_vec4 applies the stages of stride 1 and 2 inside a vec4, rotate_chunk the longer ones on whole vec4s.
 */
const ROTATIONS: Readonly<Record<RotationKind, string>> = {
  regular: `// Radix-4 stages at strides s = 1, 4, ..., GROUP / 4: each quadruple (x0, x1, x2, x3) at i0 + (0, 1, 2, 3) * s
// becomes y_i = S - 2 x_{3-i} with S = (x0 + x1) + (x2 + x3). Stride 1 is the quadruple of a vec4.
fn rotate_vec4(v: vec4f) -> vec4f {
  let sum = (v.x + v.y) + (v.z + v.w);
  return vec4f(sum) - 2.0 * v.wzyx;
}
// Strides 4, 16, ... are 1, 4, ... vec4s: quadruples of vec4s at i0 + (0, 1, 2, 3) * s, s in vec4s. A block of
// 4 strides lies inside one group.
fn rotate_chunk(len4: u32, li: u32) {
  for (var shift = 0u; (4u << shift) < GROUP; shift += 2u) {
    let s = 1u << shift;
    for (var q = li; q < len4 / 4u; q += WG) {
      let i0 = ((q >> shift) << (shift + 2u)) | (q & (s - 1u));
      let x0 = chunk[i0];
      let x1 = chunk[i0 + s];
      let x2 = chunk[i0 + 2u * s];
      let x3 = chunk[i0 + 3u * s];
      let sum = (x0 + x1) + (x2 + x3);
      chunk[i0] = sum - 2.0 * x3;
      chunk[i0 + s] = sum - 2.0 * x2;
      chunk[i0 + 2u * s] = sum - 2.0 * x1;
      chunk[i0 + 3u * s] = sum - 2.0 * x0;
    }
    workgroupBarrier();
  }
}`,
  sylvester: `// Radix-2 stages at strides h = 1, 2, ..., GROUP / 2: each pair (a, b) at (i, i + h) becomes (a + b, a - b).
// Strides 1 and 2 pair the values of a vec4: (x, y), (z, w), then (x, z), (y, w).
fn rotate_vec4(v: vec4f) -> vec4f {
  let a = vec4f(v.x + v.y, v.x - v.y, v.z + v.w, v.z - v.w);
  if (GROUP < 4u) { return a; }
  return vec4f(a.x + a.z, a.y + a.w, a.x - a.z, a.y - a.w);
}
// Strides 4, 8, ... are 1, 2, ... vec4s.
fn rotate_chunk(len4: u32, li: u32) {
  for (var shift = 0u; (4u << shift) < GROUP; shift++) {
    let h = 1u << shift;
    for (var q = li; q < len4 / 2u; q += WG) {
      let i = ((q >> shift) << (shift + 1u)) | (q & (h - 1u));
      let a = chunk[i];
      let b = chunk[i + h];
      chunk[i] = a + b;
      chunk[i + h] = a - b;
    }
    workgroupBarrier();
  }
}`,
  none: `// The identity: rows are only padded (plain round-to-nearest quantization, an ablation).
fn rotate_vec4(v: vec4f) -> vec4f { return v; }
fn rotate_chunk(len4: u32, li: u32) {}`,
};

/** Row reductions into the workgroup atomics: per invocation, or per subgroup first when the device has them. */
const REDUCTIONS = {
  plain: {
    ENABLE: '',
    REDUCE: `fn publish_max(m: f32) { atomicMax(&row_max, bitcast<u32>(m)); }
fn publish_sum(s: i32) { atomicAdd(&row_sum, s); }`,
  },
  subgroups: {
    ENABLE: 'enable subgroups;',
    REDUCE: `fn publish_max(m: f32) {
  let subgroup_max = subgroupMax(m);
  if (subgroupElect()) { atomicMax(&row_max, bitcast<u32>(subgroup_max)); }
}
fn publish_sum(s: i32) {
  let subgroup_sum = subgroupAdd(s);
  if (subgroupElect()) { atomicAdd(&row_sum, subgroup_sum); }
}`,
  },
} as const;

/** How the source rows are read (SRC_TYPE, load_src): f32, or bf16 checkpoint weights two per u32. */
const SOURCES = {
  f32: { SRC_TYPE: 'f32', LOAD_SRC: 'fn load_src(i: u32) -> f32 { return src[i]; }' },
  bf16: {
    SRC_TYPE: 'u32',
    LOAD_SRC: `// bf16 is the top half of an f32: element 2i is the low half of word i.
fn load_src(i: u32) -> f32 { return bitcast<f32>(((src[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu) << 16u); }`,
  },
} as const;

export interface QuantizeRowsArgs extends RowQuantization {
  /** Activations quantize to [qminAct, qmaxAct] with s = absmax / qmaxAct, weights to ±qmaxWeight. */
  readonly role: 'activation' | 'weight';
  /** rows × K values: an f32 matrix view, or a whole bf16 tensor [rows, K] (checkpoint weights). */
  readonly src: MatrixView | GpuTensor;
  readonly out: PackedRows;
}

/** Records the fused rotate + quantize + pack of every row of `src` into `out` (convrot_quant). */
export async function quantizeRows(batch: CommandBatch, a: QuantizeRowsArgs): Promise<void> {
  assertRowQuantization(a);
  const { rows, cols, offset, stride, tensor, dtype } = sourceLayout(a.src);
  const format = quantFormat(a.format);
  const wordsPerRow = packedWordsPerRow(cols, a);
  assertPacked(a.out, rows, wordsPerRow, 'quantize rows: out');
  if (rows === 0) return;
  const [qmin, qmax] = a.role === 'activation' ? [format.qminAct, format.qmaxAct] : [-format.qmaxWeight, format.qmaxWeight];
  const scale = a.rotation === 'none' ? 1 : rotationScale(a.groupSize);
  const pipeline = await pipelineFor(batch.ctx, {
    name: 'convrot_quant',
    defines: {
      ...SOURCES[dtype],
      ...REDUCTIONS[batch.ctx.caps.subgroups ? 'subgroups' : 'plain'],
      ROTATE: ROTATIONS[a.rotation],
      GROUP: a.groupSize,
      BITS: format.bits,
      QMIN: qmin,
      QMAX: qmax,
      ROTATION_SCALE_BITS: `0x${f32Bits(scale).toString(16)}`,
    },
    constants: { WG: quantWorkgroupSize(batch.ctx) },
  });
  batch.dispatch(pipeline, [tensor, a.out.packed, a.out.meta], packUniforms([rows, cols, offset, stride, wordsPerRow]), rows);
}

function sourceLayout(src: MatrixView | GpuTensor) {
  if ('tensor' in src) return { ...viewLayout(src, 'quantize rows: src'), tensor: src.tensor, dtype: 'f32' as const };
  if (src.dtype === 'bf16' && src.shape.length === 2) {
    const [rows, cols] = src.shape as [number, number];
    return { rows, cols, offset: 0, stride: cols, tensor: src, dtype: 'bf16' as const };
  }
  return { ...viewLayout({ tensor: src }, 'quantize rows: src'), tensor: src, dtype: 'f32' as const };
}

function assertPacked(m: PackedRows, rows: number, wordsPerRow: number, what: string): void {
  if (m.packed.dtype !== 'u32' || numel(m.packed.shape) !== rows * wordsPerRow) {
    throw new FluxError('bad-shape', `${what}: packed [${m.packed.shape}] ${m.packed.dtype} is not [${rows}, ${wordsPerRow}] u32`);
  }
  if (m.meta.dtype !== 'u32' || numel(m.meta.shape) !== rows * 2) {
    throw new FluxError('bad-shape', `${what}: meta [${m.meta.shape}] ${m.meta.dtype} is not [${rows}, 2] u32`);
  }
}

/** `Words(f(w[0]), f(w[1]), f(w[2]), f(w[3]))` in WGSL, `type` the constructor: a per-row operation on Words. */
const perRow = (type: string, f: (v: string) => string): string => `${type}(${[0, 1, 2, 3].map((i) => f(`w[${i}]`)).join(', ')})`;

/**
 * How packed words are multiplied (whole-declaration swaps for MAC). Every path multiplies the unsigned
 * u = q + 2^(bits - 1) (q XOR the sign bit of each field), so the GEMM only needs unsigned arithmetic, which
 * CPU devices run 2 to 4x faster than signed; gemm_int removes the offsets with the row sums of q. A word splits
 * into parts (part, then next for the following one); mac multiplies a token's part by 4 channels' parts into
 * u32 partial sums; mac_word runs every part of a word through mac_part; to_total turns a flushed partial into
 * its exact i32 value.
 */
const MACS = {
  int4: {
    // SIMD within a register: two 16-bit fields per u32. For unsigned a0, a1, b0, b1 < 2^8,
    // (a0 + a1 * 2^16) * (b1 + b0 * 2^16) mod 2^32 has a0 * b0 + a1 * b1 in its top 16 bits (a0 * b1 < 2^16 below
    // them never carries). Part j pairs nibbles j and j + 4 of a word as (low, high) fields; the weight word is
    // turned by 16 bits first, so its fields come swapped and each multiply-add sums 2 of the 8 products u_x * u_w
    // of the word. On CPU devices (no native dot4) this beats both the emulated dot4 built-ins and one product per
    // multiply. A word adds at most 4 * 2 * 225 = 1800 to the top field and 4 * 225 = 900 to the low one, so 32
    // words fit (FLUSH_VEC4).
    plain: `const TO_UNSIGNED = vec4u(0x88888888u);
const FIELD_MASK = vec4u(0x000f000fu);
fn unsigned(w: Words) -> Words { return ${perRow('Words', (v) => `${v} ^ TO_UNSIGNED`)}; }
fn turned(w: Words) -> Words { return ${perRow('Words', (v) => `(${v} << vec4u(16u)) | (${v} >> vec4u(16u))`)}; }
fn next(w: Words) -> Words { return ${perRow('Words', (v) => `${v} >> vec4u(4u)`)}; }
fn part(w: Words) -> Words { return ${perRow('Words', (v) => `${v} & FIELD_MASK`)}; }
fn mac(f: u32, g: vec4u) -> vec4u { return f * g; }
fn mac_word(a: Tile, x: Words, w: Words) -> Tile {
  let x0 = unsigned(x);
  let w0 = turned(unsigned(w));
  let x1 = next(x0);
  let w1 = next(w0);
  let x2 = next(x1);
  let w2 = next(w1);
  let t = mac_part(mac_part(mac_part(a, part(x0), part(w0)), part(x1), part(w1)), part(x2), part(w2));
  return mac_part(t, part(next(x2)), part(next(w2)));
}
fn to_total(s: vec4u) -> vec4i { return vec4i(s >> vec4u(16u)); }`,
    // The even and the odd nibbles of a word are 4 unsigned bytes each. The two parts go through a loop, not
    // inlined like the others: SwiftShader's JIT crashes on a block with the 2048 dot4 emulations of four inlined
    // words (CPU devices take the plain path anyway, see prefersDot4).
    dot4: `const TO_UNSIGNED = vec4u(0x88888888u);
const BYTE_NIBBLES = vec4u(0x0f0f0f0fu);
fn unsigned(w: Words) -> Words { return ${perRow('Words', (v) => `${v} ^ TO_UNSIGNED`)}; }
fn next(w: Words) -> Words { return ${perRow('Words', (v) => `${v} >> vec4u(4u)`)}; }
fn part(w: Words) -> Words { return ${perRow('Words', (v) => `${v} & BYTE_NIBBLES`)}; }
fn mac(f: u32, g: vec4u) -> vec4u {
  return vec4u(dot4U8Packed(f, g.x), dot4U8Packed(f, g.y), dot4U8Packed(f, g.z), dot4U8Packed(f, g.w));
}
fn mac_word(a: Tile, x: Words, w: Words) -> Tile {
  var t = a;
  var ux = unsigned(x);
  var uw = unsigned(w);
  for (var nibble = 0u; nibble < 2u; nibble++) {
    t = mac_part(t, part(ux), part(uw));
    ux = next(ux);
    uw = next(uw);
  }
  return t;
}
fn to_total(s: vec4u) -> vec4i { return vec4i(s); }`,
  },
  int8: {
    // One multiply-add per product of the bytes u = q + 128; 32 words add at most 128 * 255^2 < 2^31.
    plain: `fn next(w: Words) -> Words { return ${perRow('Words', (v) => `${v} >> vec4u(8u)`)}; }
fn part(w: Words) -> Words { return ${perRow('Words', (v) => `(${v} & vec4u(0xffu)) ^ vec4u(0x80u)`)}; }
fn mac(f: u32, g: vec4u) -> vec4u { return f * g; }
fn mac_word(a: Tile, x: Words, w: Words) -> Tile {
  let x1 = next(x);
  let w1 = next(w);
  let x2 = next(x1);
  let w2 = next(w1);
  let t = mac_part(mac_part(mac_part(a, part(x), part(w)), part(x1), part(w1)), part(x2), part(w2));
  return mac_part(t, part(next(x2)), part(next(w2)));
}
fn to_total(s: vec4u) -> vec4i { return vec4i(s); }`,
    dot4: `const TO_UNSIGNED = vec4u(0x80808080u);
fn unsigned(w: Words) -> Words { return ${perRow('Words', (v) => `${v} ^ TO_UNSIGNED`)}; }
fn mac(f: u32, g: vec4u) -> vec4u {
  return vec4u(dot4U8Packed(f, g.x), dot4U8Packed(f, g.y), dot4U8Packed(f, g.z), dot4U8Packed(f, g.w));
}
fn mac_word(a: Tile, x: Words, w: Words) -> Tile { return mac_part(a, unsigned(x), unsigned(w)); }
fn to_total(s: vec4u) -> vec4i { return vec4i(s); }`,
  },
} as const;

/** What the GEMM does with v = s_x s_w acc + bias before storing it. */
export type Epilogue =
  | { readonly kind: 'none' }
  /** y = gelu_tanh(v), as elementwise.wgsl computes it. */
  | { readonly kind: 'gelu-tanh' }
  /** y[t, o] += gate[gateOffset + o] · v: y holds the residual stream and is updated in place. */
  | { readonly kind: 'gated-residual'; readonly gate: GpuTensor; readonly gateOffset?: number };

const STORE_Y = 'y[p.y_offset + t * p.y_stride + o]';
const EPILOGUES = {
  none: `fn store(t: u32, o: u32, v: f32) { ${STORE_Y} = v; }`,
  'gelu-tanh': `// GELU with the tanh approximation, exactly as shaders/elementwise.wgsl: sqrt(2 / pi), the cubic coefficient,
// and tanh clamped at +-10 (where it is already +-1 in f32) so exp-based tanh cannot overflow.
const GELU_SCALE = 0.7978845608028654;
const GELU_CUBIC = 0.044715;
const TANH_SATURATION = 10.0;
fn store(t: u32, o: u32, v: f32) {
  let u = GELU_SCALE * (v + GELU_CUBIC * v * v * v);
  ${STORE_Y} = 0.5 * v * (1.0 + tanh(clamp(u, -TANH_SATURATION, TANH_SATURATION)));
}`,
  'gated-residual': `@group(0) @binding(${GEMM_BASE_BINDINGS}) var<storage, read> gate: array<f32>;
fn store(t: u32, o: u32, v: f32) {
  let i = p.y_offset + t * p.y_stride + o;
  y[i] = y[i] + gate[p.gate_offset + o] * v;
}`,
} as const;

/**
 * The dot4 built-ins where the device runs them natively. A CPU (fallback) adapter such as SwiftShader
 * emulates them per lane, which measured ~10x slower than a plain multiply-add, so it gets the plain path.
 */
export function prefersDot4(ctx: GpuContext): boolean {
  return ctx.caps.dot4 && !ctx.adapter.isFallbackAdapter;
}

export interface IntGemmArgs {
  readonly format: QuantFormatName;
  /** Quantized activations, M rows. */
  readonly x: PackedRows;
  /** Quantized weights, N rows of the same packed length. */
  readonly w: PackedRows;
  /** [N] f32 */
  readonly bias?: GpuTensor;
  /** M × N f32, may be a view of a wider matrix; with a gated residual it is also read. */
  readonly y: MatrixView;
  readonly epilogue?: Epilogue;
  /** Multiply with dot4I8Packed / dot4U8Packed; default `prefersDot4`. Needs ctx.caps.dot4. */
  readonly dot4?: boolean;
}

/** Records y = epilogue((s_x s_w) · Σ q_x q_w + bias) (gemm_int). */
export async function intGemm(batch: CommandBatch, a: IntGemmArgs): Promise<void> {
  const y = viewLayout(a.y, 'integer gemm: y');
  const [m, n] = [y.rows, y.cols];
  const wordsPerRow = numel(a.w.packed.shape) / n;
  if (!Number.isInteger(wordsPerRow) || wordsPerRow % WORDS_PER_VEC4 !== 0) {
    throw new FluxError('bad-shape', `integer gemm: packed weights [${a.w.packed.shape}] are not ${n} rows of whole vec4 words`);
  }
  assertPacked(a.x, m, wordsPerRow, 'integer gemm: x');
  assertPacked(a.w, n, wordsPerRow, 'integer gemm: w');
  if (a.bias && numel(a.bias.shape) !== n) throw new FluxError('bad-shape', `integer gemm: bias [${a.bias.shape}] is not [${n}]`);
  const dot4 = a.dot4 ?? prefersDot4(batch.ctx);
  if (dot4 && !batch.ctx.caps.dot4) throw new FluxError('bad-argument', 'integer gemm: this device has no packed_4x8_integer_dot_product');
  const epilogue = a.epilogue ?? { kind: 'none' };
  const gate = epilogue.kind === 'gated-residual' ? epilogue : undefined;
  if (gate && numel(gate.gate.shape) < (gate.gateOffset ?? 0) + n) {
    throw new FluxError('bad-shape', `integer gemm: gate [${gate.gate.shape}] has no ${n} values at offset ${gate.gateOffset ?? 0}`);
  }
  if (m === 0 || n === 0) return;
  const bindings = [a.x.packed, a.x.meta, a.w.packed, a.w.meta, a.bias ?? a.w.meta, a.y.tensor, ...(gate ? [gate.gate] : [])];
  const pipeline = await pipelineFor(batch.ctx, {
    name: 'gemm_int',
    defines: {
      MAC: MACS[a.format][dot4 ? 'dot4' : 'plain'],
      BITS: quantFormat(a.format).bits,
      EPILOGUE: EPILOGUES[epilogue.kind],
      PARAMS_BINDING: GEMM_BASE_BINDINGS + (gate ? 1 : 0),
    },
  });
  const kLen = wordsPerRow * valuesPerWord(quantFormat(a.format).bits);
  const uniforms = packUniforms([m, n, wordsPerRow / WORDS_PER_VEC4, kLen, a.bias ? 1 : 0, y.offset, y.stride, gate?.gateOffset ?? 0]);
  batch.dispatch(pipeline, bindings, uniforms, [ceilDiv(n, GEMM_TILE_N), ceilDiv(m, GEMM_TILE_M)]);
}
