/**
 * ConvRot kernels against the CPU reference (src/quant/conv-linear-ref.ts) on awkward shapes: row quantization
 * (activations and weights) must match bit for bit, the integer GEMM must give the exact accumulators, and the
 * whole layer must match the reference output. Shared by the Node tests and the browser page (e2e).
 */
import { CommandBatch } from '../../src/gpu/batch.ts';
import { createBuffer, readBuffer, readFloat32, uploadBuffer } from '../../src/gpu/buffers.ts';
import type { GpuContext } from '../../src/gpu/device.ts';
import type { GpuTensor } from '../../src/gpu/tensor.ts';
import { intGemm, packedWordsPerRow, quantizeRows, type PackedRows, type RowQuantization } from '../../src/kernels/convrot.ts';
import { ConvLinear } from '../../src/nn/conv-linear.ts';
import {
  convLinearRef,
  dequantRef,
  integerGemmRef,
  makeConvLinearRef,
  quantizeActivationsRef,
  quantizeWeightsRef,
  type QuantizedMatrixRef,
} from '../../src/quant/conv-linear-ref.ts';
import { blockRotateRows, type RotationKind } from '../../src/quant/hadamard.ts';
import { unpackSigned } from '../../src/quant/pack.ts';
import { quantFormat, type QuantFormatName } from '../../src/quant/quantize.ts';
import { maxRelError, randn, rng } from '../helpers/random.ts';

/** Dequantization is the reference's f32 operations in its order; only a fused multiply-add may move a bit. */
export const LAYER_TOLERANCE = 1e-6;

/** How the float rows reach the quantizer. */
export type RowSource = 'f32' | 'block' | 'bf16';

export interface QuantCase {
  readonly rows: number;
  readonly cols: number;
  readonly q: RowQuantization;
  readonly role: 'activation' | 'weight';
  /** f32 tensor, a column range of a wider f32 matrix, or bf16 (weights from a checkpoint). */
  readonly source: RowSource;
  /** These rows are all zero. */
  readonly zeroRows?: readonly number[];
}

const q = (format: QuantFormatName, rotation: RotationKind = 'regular', groupSize = 256): RowQuantization => ({ format, rotation, groupSize });

export const QUANT_CASES: readonly QuantCase[] = [
  { rows: 1, cols: 64, q: q('int4'), role: 'activation', source: 'f32' },
  { rows: 77, cols: 320, q: q('int4'), role: 'activation', source: 'block', zeroRows: [5] },
  { rows: 333, cols: 3072, q: q('int4'), role: 'activation', source: 'f32' },
  { rows: 77, cols: 3072, q: q('int8'), role: 'activation', source: 'f32', zeroRows: [0, 76] },
  { rows: 33, cols: 15360, q: q('int4'), role: 'activation', source: 'f32' },
  { rows: 33, cols: 320, q: q('int4', 'sylvester', 256), role: 'activation', source: 'f32' },
  { rows: 33, cols: 100, q: q('int8', 'sylvester', 32), role: 'activation', source: 'block' },
  { rows: 9, cols: 88, q: q('int4', 'sylvester', 2), role: 'activation', source: 'f32' },
  { rows: 33, cols: 320, q: q('int4', 'none', 256), role: 'activation', source: 'f32' },
  { rows: 17, cols: 80, q: q('int4', 'regular', 16), role: 'activation', source: 'f32' },
  { rows: 17, cols: 2048, q: q('int8', 'regular', 1024), role: 'activation', source: 'f32' },
  { rows: 40, cols: 320, q: q('int4'), role: 'weight', source: 'f32', zeroRows: [3] },
  { rows: 70, cols: 3072, q: q('int4'), role: 'weight', source: 'bf16' },
  { rows: 65, cols: 12288, q: q('int8'), role: 'weight', source: 'bf16' },
  { rows: 24, cols: 64, q: q('int8', 'sylvester', 64), role: 'weight', source: 'f32' },
  { rows: 24, cols: 104, q: q('int4', 'none', 4), role: 'weight', source: 'block' },
];

export interface QuantCaseResult {
  /**
   * Quantized values (and zero words past the reference's row) that differ from the reference, beyond the one
   * difference WGSL allows: see DIVISION_ULPS.
   */
  readonly wordMismatches: number;
  readonly scaleMismatches: number;
  /** Rows whose Σq is not the sum of the row's GPU values. */
  readonly sumMismatches: number;
}

/**
 * WGSL bounds f32 division to 2.5 ULP (+, −, × are correctly rounded; the scale is an exact integer division in
 * the kernel). So where the exact quotient v / s lies within that distance of a rounding boundary (k + 0.5), a
 * conforming GPU may round q to the neighbouring integer; comparePacked accepts exactly those differences, by
 * one, and counts them (`boundaryRoundings`). Half an ULP more covers the rounding of the quotient itself.
 */
export const DIVISION_ULPS = 3;

function ulpOfF32(v: number): number {
  const a = Math.abs(Math.fround(v));
  if (a < 2 ** -126) return 2 ** -149;
  return 2 ** (Math.floor(Math.log2(a)) - 23);
}

/** Row-major [rows, cols] test values with a few large channels, like the outliers of DiT activations. */
export function testMatrix(rows: number, cols: number, seed: number, zeroRows: readonly number[] = []): Float32Array {
  const v = randn(rows * cols, seed);
  const pick = rng(seed + 7);
  const outliers = Array.from({ length: Math.max(1, cols >> 6) }, () => Math.floor(pick() * cols));
  for (let r = 0; r < rows; r++) for (const c of outliers) v[r * cols + c]! *= 20;
  for (const r of zeroRows) v.fill(0, r * cols, (r + 1) * cols);
  return v;
}

/** f32 values rounded to bf16 (upper halves kept) and the bf16 bits as the GPU stores them. */
function toBf16(v: Float32Array): { values: Float32Array; bits: Uint16Array } {
  const bits = new Uint16Array(v.length);
  const words = new Uint32Array(v.buffer, v.byteOffset, v.length);
  for (let i = 0; i < v.length; i++) bits[i] = words[i]! >>> 16;
  const values = new Float32Array(new Uint32Array(Array.from(bits, (b) => b << 16)).buffer);
  return { values, bits };
}

function tensor(buffer: GPUBuffer, shape: number[], dtype: GpuTensor['dtype']): GpuTensor {
  return { buffer, offset: 0, shape, dtype };
}

async function packedRows(ctx: GpuContext, rows: number, wordsPerRow: number, label: string): Promise<PackedRows> {
  return {
    packed: tensor(await createBuffer(ctx, rows * wordsPerRow * 4, `${label} packed`), [rows, wordsPerRow], 'u32'),
    meta: tensor(await createBuffer(ctx, rows * 8, `${label} meta`), [rows, 2], 'u32'),
  };
}

export interface PackedComparison {
  readonly result: QuantCaseResult;
  /** Values that differ by one at a rounding boundary, as WGSL division allows (DIVISION_ULPS). */
  readonly boundaryRoundings: number;
  /** The GPU's packed rows without the vec4 padding words (the reference's layout), and its scales. */
  readonly words: Uint32Array;
  readonly scales: Float32Array;
}

/**
 * Compares packed GPU rows with the CPU reference: every quantized value (up to DIVISION_ULPS at a rounding
 * boundary of the rotated value `rotated` / scale), zero words past the reference's row, scales bit for bit,
 * and Σq as the sum of the GPU's own values.
 */
export async function comparePacked(
  ctx: GpuContext,
  gpu: PackedRows,
  ref: QuantizedMatrixRef,
  rows: number,
  rotated: Float32Array,
  format: QuantFormatName,
): Promise<PackedComparison> {
  const packed = new Uint32Array(await readBuffer(ctx, gpu.packed.buffer, gpu.packed.offset, gpu.packed.shape[0]! * gpu.packed.shape[1]! * 4));
  const meta = await readBuffer(ctx, gpu.meta.buffer, gpu.meta.offset, rows * 8);
  const scales = new Float32Array(meta);
  const sums = new Int32Array(meta);
  const wordsPerRow = gpu.packed.shape[1]!;
  const refWords = ref.packed.length / rows;
  const k = ref.paddedK;
  const { bits } = quantFormat(format);
  let wordMismatches = 0;
  let scaleMismatches = 0;
  let sumMismatches = 0;
  let boundaryRoundings = 0;
  const words = new Uint32Array(rows * refWords);
  for (let r = 0; r < rows; r++) {
    const row = packed.subarray(r * wordsPerRow, (r + 1) * wordsPerRow);
    for (let i = refWords; i < wordsPerRow; i++) if (row[i] !== 0) wordMismatches++;
    words.set(row.subarray(0, refWords), r * refWords);
    const q = unpackSigned(row.slice(0, refWords), 1, k, bits);
    let sum = 0;
    for (let j = 0; j < k; j++) {
      const got = q[j]!;
      const expected = ref.q[r * k + j]!;
      sum += got;
      if (got === expected) continue;
      const quotient = rotated[r * k + j]! / ref.scales[r]!;
      const boundary = Math.min(got, expected) + 0.5;
      if (Math.abs(got - expected) === 1 && Math.abs(quotient - boundary) <= DIVISION_ULPS * ulpOfF32(quotient)) boundaryRoundings++;
      else wordMismatches++;
    }
    if (!Object.is(scales[2 * r], ref.scales[r])) scaleMismatches++;
    if (sums[2 * r + 1] !== sum) sumMismatches++;
  }
  const gpuScales = Float32Array.from({ length: rows }, (_, r) => scales[2 * r]!);
  return { result: { wordMismatches, scaleMismatches, sumMismatches }, boundaryRoundings, words, scales: gpuScales };
}

/** The rotated, padded rows the reference quantized (the numerators of its divisions). */
export function rotatedRows(values: Float32Array, rows: number, cols: number, q: RowQuantization): Float32Array {
  return blockRotateRows(q.rotation, q.groupSize, values, rows, cols).data;
}

export async function runQuantCase(ctx: GpuContext, c: QuantCase, seed: number): Promise<QuantCaseResult> {
  const { rows, cols } = c;
  let values = testMatrix(rows, cols, seed, c.zeroRows);
  const owned: GPUBuffer[] = [];
  try {
    let src: Parameters<typeof quantizeRows>[1]['src'];
    if (c.source === 'bf16') {
      const bf16 = toBf16(values);
      values = bf16.values;
      const buffer = await uploadBuffer(ctx, bf16.bits, 'rows bf16');
      owned.push(buffer);
      src = tensor(buffer, [rows, cols], 'bf16');
    } else if (c.source === 'block') {
      // The rows sit in columns [3, 3 + cols) of a wider matrix: offsets and a stride that are not multiples of 4.
      const width = cols + 7;
      const wide = new Float32Array(rows * width).fill(Number.NaN);
      for (let r = 0; r < rows; r++) wide.set(values.subarray(r * cols, (r + 1) * cols), r * width + 3);
      const buffer = await uploadBuffer(ctx, wide, 'rows block');
      owned.push(buffer);
      src = { tensor: tensor(buffer, [rows, width], 'f32'), col0: 3, cols };
    } else {
      const buffer = await uploadBuffer(ctx, values, 'rows');
      owned.push(buffer);
      src = tensor(buffer, [rows, cols], 'f32');
    }
    const out = await packedRows(ctx, rows, packedWordsPerRow(cols, c.q), 'rows');
    owned.push(out.packed.buffer, out.meta.buffer);
    const batch = new CommandBatch(ctx, 'convrot quant test');
    await quantizeRows(batch, { ...c.q, role: c.role, src, out });
    await batch.submit();
    const ref = (c.role === 'activation' ? quantizeActivationsRef : quantizeWeightsRef)(values, rows, cols, c.q);
    return (await comparePacked(ctx, out, ref, rows, rotatedRows(values, rows, cols, c.q), c.q.format)).result;
  } finally {
    for (const b of owned) b.destroy();
  }
}

export interface GemmCase {
  readonly m: number;
  readonly k: number;
  readonly n: number;
  readonly format: QuantFormatName;
  readonly dot4: boolean;
}

/** [M, K, N]: one token, sizes below and past the 32 x 64 workgroup tile, K not a multiple of 256 (padded). */
export const GEMM_SHAPES: ReadonlyArray<readonly [number, number, number]> = [
  [1, 64, 40],
  [77, 320, 65],
  [333, 3072, 70],
];

/**
 * Runs the integer GEMM on operands quantized by the CPU reference, with every scale 1 and no bias: the output
 * is then f32(acc), which must equal the reference accumulator exactly (rounded to f32 like the dequantization).
 * Returns the number of differing outputs.
 */
export async function runGemmCase(ctx: GpuContext, c: GemmCase, seed: number): Promise<number> {
  const opts = { format: c.format, rotation: 'regular' as const, groupSize: 256 };
  const x = quantizeActivationsRef(testMatrix(c.m, c.k, seed), c.m, c.k, opts);
  const w = quantizeWeightsRef(testMatrix(c.n, c.k, seed + 1), c.n, c.k, opts);
  const wordsPerRow = packedWordsPerRow(c.k, opts);
  const owned: GPUBuffer[] = [];
  const upload = async (ref: QuantizedMatrixRef, rows: number): Promise<PackedRows> => {
    const words = new Uint32Array(rows * wordsPerRow);
    const refWords = ref.packed.length / rows;
    for (let r = 0; r < rows; r++) words.set(ref.packed.subarray(r * refWords, (r + 1) * refWords), r * wordsPerRow);
    const meta = new Int32Array(rows * 2);
    for (let r = 0; r < rows; r++) {
      meta[2 * r] = new Int32Array(Float32Array.of(1).buffer)[0]!;
      meta[2 * r + 1] = ref.rowSums[r]!;
    }
    const packed = await uploadBuffer(ctx, words, 'gemm packed');
    const metaBuffer = await uploadBuffer(ctx, meta, 'gemm meta');
    owned.push(packed, metaBuffer);
    return { packed: tensor(packed, [rows, wordsPerRow], 'u32'), meta: tensor(metaBuffer, [rows, 2], 'u32') };
  };
  try {
    const xq = await upload(x, c.m);
    const wq = await upload(w, c.n);
    const y = await createBuffer(ctx, c.m * c.n * 4, 'gemm y');
    owned.push(y);
    const batch = new CommandBatch(ctx, 'convrot gemm test');
    await intGemm(batch, { format: c.format, x: xq, w: wq, y: { tensor: tensor(y, [c.m, c.n], 'f32') }, dot4: c.dot4 });
    await batch.submit();
    const got = await readFloat32(ctx, y, 0, c.m * c.n);
    const acc = integerGemmRef(x.packed, w.packed, c.m, c.n, x.paddedK, c.format);
    let mismatches = 0;
    for (let i = 0; i < acc.length; i++) if (got[i] !== Math.fround(acc[i]!)) mismatches++;
    return mismatches;
  } finally {
    for (const b of owned) b.destroy();
  }
}

export interface LayerCase {
  readonly m: number;
  readonly k: number;
  readonly n: number;
  readonly q: RowQuantization;
  readonly bias: boolean;
  readonly dot4: boolean;
  /** Token 0 of the input is all zero: its output must be exactly the bias. */
  readonly zeroToken?: boolean;
}

export interface LayerCaseResult extends QuantCaseResult {
  /** Packed weight words, scales and sums that differ from the reference. */
  readonly weightMismatches: number;
  readonly maxRelError: number;
  /** With zeroToken: the outputs of token 0 that are not exactly the bias. */
  readonly zeroTokenMismatches: number;
}

/** ConvLinear.fromFloat + quantizeInput + forwardQuantized against convLinearRef and its quantized operands. */
export async function runLayerCase(ctx: GpuContext, c: LayerCase, seed: number): Promise<LayerCaseResult> {
  const { m, k, n } = c;
  const x = testMatrix(m, k, seed, c.zeroToken ? [0] : []);
  const w = testMatrix(n, k, seed + 1);
  const b = c.bias ? randn(n, seed + 2) : undefined;
  const refOpts = { ...c.q };

  const owned: GPUBuffer[] = [];
  let layer: ConvLinear | undefined;
  try {
    const wb = await uploadBuffer(ctx, w, 'layer w');
    owned.push(wb);
    layer = await ConvLinear.fromFloat(ctx, tensor(wb, [n, k], 'f32'), b, { precision: c.q.format, rotation: c.q.rotation, groupSize: c.q.groupSize, dot4: c.dot4 });
    const xb = await uploadBuffer(ctx, x, 'layer x');
    const yb = await createBuffer(ctx, m * n * 4, 'layer y');
    owned.push(xb, yb);
    const batch = new CommandBatch(ctx, 'conv linear test');
    const qa = await layer.quantizeInput(batch, { tensor: tensor(xb, [m, k], 'f32') });
    await layer.forwardQuantized(batch, qa, { tensor: tensor(yb, [m, n], 'f32') });
    await batch.submit();
    const got = await readFloat32(ctx, yb, 0, m * n);
    const actRef = quantizeActivationsRef(x, m, k, refOpts);
    const act = await comparePacked(ctx, qa, actRef, m, rotatedRows(x, m, k, c.q), c.q.format);
    qa.release();
    const wq = await comparePacked(ctx, layer.weights, quantizeWeightsRef(w, n, k, refOpts), n, rotatedRows(w, n, k, c.q), c.q.format);
    // The GEMM and dequantization are checked on the GPU's own operands, which may differ from the reference's
    // at rounding boundaries (DIVISION_ULPS); those operands are checked against the reference above.
    const acc = integerGemmRef(act.words, wq.words, m, n, actRef.paddedK, c.q.format);
    const expected = dequantRef(acc, act.scales, wq.scales, b);
    let zeroTokenMismatches = 0;
    if (c.zeroToken) for (let o = 0; o < n; o++) if (got[o] !== (b ? b[o]! : 0)) zeroTokenMismatches++;
    return {
      ...act.result,
      weightMismatches: wq.result.wordMismatches + wq.result.scaleMismatches + wq.result.sumMismatches,
      maxRelError: maxRelError(got, expected),
      zeroTokenMismatches,
    };
  } finally {
    layer?.destroy();
    for (const buf of owned) buf.destroy();
  }
}

/**
 * Three layers reading one input through one shared quantized activation, writing column ranges of one output
 * (a fused q/k/v projection): returns the max relative error against three separate reference layers.
 */
export async function runSharedInputCase(ctx: GpuContext, m: number, k: number, n: number, q: RowQuantization, seed: number): Promise<number> {
  const x = testMatrix(m, k, seed);
  const ws = [1, 2, 3].map((i) => testMatrix(n, k, seed + i));
  const expected = new Float32Array(m * 3 * n);
  ws.forEach((w, i) => {
    const y = convLinearRef(x, m, makeConvLinearRef(w, undefined, n, k, q));
    for (let t = 0; t < m; t++) expected.set(y.subarray(t * n, (t + 1) * n), t * 3 * n + i * n);
  });
  const owned: GPUBuffer[] = [];
  const layers: ConvLinear[] = [];
  try {
    for (const w of ws) {
      const wb = await uploadBuffer(ctx, w, 'shared w');
      owned.push(wb);
      layers.push(await ConvLinear.fromFloat(ctx, tensor(wb, [n, k], 'f32'), undefined, { precision: q.format, rotation: q.rotation, groupSize: q.groupSize }));
    }
    const xb = await uploadBuffer(ctx, x, 'shared x');
    const yb = await createBuffer(ctx, m * 3 * n * 4, 'shared y');
    owned.push(xb, yb);
    const batch = new CommandBatch(ctx, 'shared input test');
    const qa = await layers[0]!.quantizeInput(batch, { tensor: tensor(xb, [m, k], 'f32') });
    for (const [i, layer] of layers.entries()) {
      await layer.forwardQuantized(batch, qa, { tensor: tensor(yb, [m, 3 * n], 'f32'), col0: i * n, cols: n });
    }
    qa.release();
    await batch.submit();
    return maxRelError(await readFloat32(ctx, yb, 0, m * 3 * n), expected);
  } finally {
    for (const layer of layers) layer.destroy();
    for (const buf of owned) buf.destroy();
  }
}

const regular = (format: QuantFormatName, groupSize = 256): RowQuantization => ({ format, rotation: 'regular', groupSize });

/** Awkward shapes, every format and rotation, both GEMM paths. */
export const LAYER_CASES: readonly LayerCase[] = [
  { m: 1, k: 64, n: 40, q: regular('int4'), bias: true, dot4: false },
  { m: 77, k: 320, n: 65, q: { format: 'int8', rotation: 'sylvester', groupSize: 64 }, bias: false, dot4: true },
  { m: 333, k: 3072, n: 24, q: regular('int4'), bias: true, dot4: false },
  { m: 77, k: 3072, n: 40, q: regular('int4', 1024), bias: true, dot4: false, zeroToken: true },
  { m: 33, k: 320, n: 70, q: { format: 'int4', rotation: 'none', groupSize: 256 }, bias: true, dot4: false, zeroToken: true },
  { m: 77, k: 320, n: 65, q: regular('int8'), bias: true, dot4: false, zeroToken: true },
];

export function layerCaseName(c: LayerCase): string {
  const zero = c.zeroToken ? ', a zero token gives the bias' : '';
  return `M,K,N = ${c.m},${c.k},${c.n} ${c.q.format} ${c.q.rotation} ${c.q.groupSize}${c.bias ? ' bias' : ''} ${c.dot4 ? 'dot4' : 'plain'}${zero}`;
}

/** Every layer case, for the browser page: error against the reference, and bit mismatches of the operands. */
export async function runAllLayerCases(ctx: GpuContext): Promise<{ name: string; maxRelError: number; tolerance: number; mismatches: number }[]> {
  const results = [];
  for (const [i, c] of LAYER_CASES.entries()) {
    if (c.dot4 && !ctx.caps.dot4) continue;
    const r = await runLayerCase(ctx, c, 100 + 10 * i);
    const mismatches = r.wordMismatches + r.scaleMismatches + r.sumMismatches + r.weightMismatches + r.zeroTokenMismatches;
    results.push({ name: layerCaseName(c), maxRelError: r.maxRelError, tolerance: LAYER_TOLERANCE, mismatches });
  }
  return results;
}
