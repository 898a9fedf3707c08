/**
 * ConvRot kernels (docs/convrot-method.md §6): the fused rotate → absmax → quantize → pack of matrix rows (per-token
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
import { shaderConstant, shaderConstants } from '../gpu/shaders.ts';
import { ceilDiv, packUniforms, pipelineFor } from './kernel.ts';

/**
 * Invocations per convrot_quant workgroup (one workgroup per row). A CPU device runs a workgroup's SIMD groups
 * one after the other and switches between all of them at every barrier: with one SIMD group (4 lanes on
 * SwiftShader) the kernel measured 3.5x faster than with 64 invocations, 11x faster than with 256.
 */
const QUANT_WORKGROUP_CPU = 4;
const QUANT_WORKGROUP_GPU = 64;
/** u32 words per vec4 load of the GEMM: packed rows are whole vec4s. */
const WORDS_PER_VEC4 = 4;
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

/**
 * Largest rotation group convrot_quant takes: a chunk of the row in workgroup memory holds whole groups, and the
 * WebGPU default workgroup storage (16 KiB) must hold one (its chunk is 3840 values, see quantChunk).
 */
export const MAX_GPU_GROUP_SIZE = 2048;
/**
 * Workgroup storage convrot_quant needs besides the chunk: two atomics, which some compilers pad to 16 bytes
 * each (Dawn counted 16 416 bytes for a 16 KiB chunk).
 */
const QUANT_RESERVED_BYTES = 32;
/** Values per chunk never exceed this: FLUX's longest row (K = 15360) then fits one chunk. */
const QUANT_MAX_CHUNK = 16384;
/**
 * Values per chunk on a CPU (fallback) device. SwiftShader's compile time grows with the workgroup array, through
 * its zero-initialisation (with Dawn's disable_workgroup_init toggle it does not): a pipeline with a chunk of
 * 7936 values took 14 s to compile, with 1024 about 2 s. The kernel's run time measured the same within noise
 * (INT4 rows of 1024 x 3072 and 1024 x 15360), since a longer row costs a second rotation pass in either case.
 */
export const QUANT_CHUNK_CPU = 1024;
const BYTES_PER_VALUE = 4;

/** Throws unless convrot_quant can rotate with this kind and group size. */
export function assertRowQuantization(q: RowQuantization): void {
  quantFormat(q.format);
  assertRotationSize(q.rotation, q.groupSize);
  if (q.rotation !== 'none' && q.groupSize > MAX_GPU_GROUP_SIZE) {
    throw new FluxError('bad-argument', `rotation group size ${q.groupSize} is larger than the GPU kernel's ${MAX_GPU_GROUP_SIZE}`);
  }
}

/**
 * Values of a row convrot_quant holds in workgroup memory at once (its CHUNK): as many as the device's workgroup
 * storage allows, up to `maxValues` (but at least one group), in whole rotation groups and whole vec4s of packed
 * words (32 values).
 */
export function quantChunk(workgroupStorageBytes: number, q: RowQuantization, maxValues = QUANT_MAX_CHUNK): number {
  const unit = Math.max(q.rotation === 'none' ? 1 : q.groupSize, 4 * valuesPerWord(4));
  const fit = Math.floor((workgroupStorageBytes - QUANT_RESERVED_BYTES) / BYTES_PER_VALUE / unit) * unit;
  const chunk = Math.min(fit, Math.max(unit, Math.floor(maxValues / unit) * unit));
  if (chunk < unit) {
    throw new FluxError('limit-exceeded', `convrot_quant: ${workgroupStorageBytes} bytes of workgroup storage hold no group of ${unit} values`);
  }
  return chunk;
}

function quantWorkgroupSize(ctx: GpuContext): number {
  return ctx.adapter.isFallbackAdapter ? QUANT_WORKGROUP_CPU : QUANT_WORKGROUP_GPU;
}

/** The largest chunk convrot_quant may take on this device (QUANT_CHUNK_CPU on a CPU device). */
function quantMaxChunk(ctx: GpuContext): number {
  return ctx.adapter.isFallbackAdapter ? QUANT_CHUNK_CPU : QUANT_MAX_CHUNK;
}

/** The convrot_quant constant that names each rotation kind (its ROTATION override). */
const ROTATION_CONSTANTS: Readonly<Record<RotationKind, string>> = { none: 'NONE', regular: 'REGULAR', sylvester: 'SYLVESTER' };

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
  const pipeline = await pipelineFor(batch.ctx, {
    name: 'convrot_quant',
    defines: { SUBGROUPS: batch.ctx.caps.subgroups },
    constants: {
      ROTATION: shaderConstant('convrot_quant', ROTATION_CONSTANTS[a.rotation]),
      GROUP: a.groupSize,
      BITS: format.bits,
      QMIN: qmin,
      QMAX: qmax,
      ROTATION_SCALE: a.rotation === 'none' ? 1 : rotationScale(a.groupSize),
      SRC_BF16: dtype === 'bf16' ? 1 : 0,
      WG: quantWorkgroupSize(batch.ctx),
      CHUNK: quantChunk(batch.ctx.limits.maxComputeWorkgroupStorageSize, a, quantMaxChunk(batch.ctx)),
    },
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
  /** M × N f32, may be a view of a wider matrix. */
  readonly y: MatrixView;
  /** Multiply with dot4I8Packed / dot4U8Packed; default `prefersDot4`. Needs ctx.caps.dot4. */
  readonly dot4?: boolean;
}

/** Records y = (s_x s_w) · Σ q_x q_w + bias (gemm_int). */
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
  if (m === 0 || n === 0) return;
  // Without a bias a stand-in buffer is bound; has_bias = 0 keeps the shader from reading it.
  const bindings = [a.x.packed, a.x.meta, a.w.packed, a.w.meta, a.bias ?? a.w.meta, a.y.tensor];
  const c = shaderConstants('gemm_int');
  const pipeline = await pipelineFor(batch.ctx, {
    name: 'gemm_int',
    defines: { INT4: a.format === 'int4', DOT4: dot4 },
    constants: { BITS: quantFormat(a.format).bits },
  });
  const kLen = wordsPerRow * valuesPerWord(quantFormat(a.format).bits);
  const uniforms = packUniforms([m, n, wordsPerRow / WORDS_PER_VEC4, kLen, a.bias ? 1 : 0, y.offset, y.stride]);
  batch.dispatch(pipeline, bindings, uniforms, [ceilDiv(n, c.TN! * c.WG_X!), ceilDiv(m, c.TM! * c.WG_Y!)]);
}
