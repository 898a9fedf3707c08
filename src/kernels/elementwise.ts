/**
 * Element-wise kernels on rectangular blocks of f32 matrices: GELU (tanh) and SiLU, block copies, and the
 * residual adds of the transformer blocks. Blocks let one dispatch read or write a column or row range of a
 * wider buffer, e.g. the single block's concat(attention, gelu(mlp)) is written in place of a copy.
 */
import { FluxError } from '../errors.ts';
import type { CommandBatch } from '../gpu/batch.ts';
import { numel, type GpuTensor } from '../gpu/tensor.ts';
import { ceilDiv, packUniforms, pipelineFor } from './kernel.ts';

/** Invocations per workgroup (WG in shaders/elementwise.wgsl). */
const WORKGROUP = 256;

/** Values of the ACTIVATION override in shaders/elementwise.wgsl. */
const ACTIVATION = { identity: 0, geluTanh: 1, silu: 2 } as const;
type Activation = keyof typeof ACTIVATION;

/**
 * Rows [row0, row0 + rows) × columns [col0, col0 + cols) of a row-major f32 tensor [R, C] (a 1-D tensor [C]
 * is one row). Omitted fields cover the whole tensor from row/column 0.
 */
export interface Block {
  readonly tensor: GpuTensor;
  readonly row0?: number;
  readonly rows?: number;
  readonly col0?: number;
  readonly cols?: number;
}

/** A block as the shaders address it: element (r, c) at `offset + r * stride + c` of the bound tensor. */
export interface BlockLayout {
  readonly rows: number;
  readonly cols: number;
  readonly offset: number;
  readonly stride: number;
}

/** Checks that the block lies inside its f32 tensor and returns its element layout. */
export function blockLayout(b: Block, what: string): BlockLayout {
  const t = b.tensor;
  if (t.dtype !== 'f32') throw new FluxError('unsupported-dtype', `${what}: dtype ${t.dtype}, expected f32`);
  if (t.shape.length !== 1 && t.shape.length !== 2) throw new FluxError('bad-shape', `${what}: tensor [${t.shape}] is not a matrix`);
  const [tensorRows, tensorCols] = t.shape.length === 2 ? (t.shape as [number, number]) : [1, t.shape[0]!];
  const row0 = b.row0 ?? 0;
  const col0 = b.col0 ?? 0;
  const rows = b.rows ?? tensorRows - row0;
  const cols = b.cols ?? tensorCols - col0;
  const fits = [row0, col0, rows, cols].every((n) => Number.isInteger(n) && n >= 0) && row0 + rows <= tensorRows && col0 + cols <= tensorCols;
  if (!fits) {
    throw new FluxError('bad-shape', `${what}: rows ${row0}+${rows} × columns ${col0}+${cols} do not fit in [${t.shape}]`);
  }
  return { rows, cols, offset: row0 * tensorCols + col0, stride: tensorCols };
}

/** Throws unless the two layouts have the same rows × cols. */
export function assertSameSize(a: BlockLayout, b: BlockLayout, what: string): void {
  if (a.rows !== b.rows || a.cols !== b.cols) {
    throw new FluxError('bad-shape', `${what}: ${a.rows} × ${a.cols} and ${b.rows} × ${b.cols} differ`);
  }
}

function elementGrid(l: BlockLayout): number {
  return ceilDiv(l.rows * l.cols, WORKGROUP);
}

async function map(batch: CommandBatch, activation: Activation, src: Block, dst: Block | undefined, what: string): Promise<void> {
  const s = blockLayout(src, `${what} src`);
  const d = dst ? blockLayout(dst, `${what} dst`) : s;
  assertSameSize(s, d, what);
  if (s.rows * s.cols === 0) return;
  const inPlace = !dst || (dst.tensor.buffer === src.tensor.buffer && dst.tensor.offset === src.tensor.offset && s.offset === d.offset && s.stride === d.stride);
  const constants = { ACTIVATION: ACTIVATION[activation] };
  const uniforms = packUniforms([s.rows, s.cols, s.offset, s.stride, d.offset, d.stride]);
  if (inPlace) {
    const pipeline = await pipelineFor(batch.ctx, { name: 'elementwise', entryPoint: 'map_inplace', constants });
    batch.dispatch(pipeline, [src.tensor], uniforms, elementGrid(s));
    return;
  }
  // WebGPU forbids binding one buffer both read-only and writable in a dispatch.
  if (dst!.tensor.buffer === src.tensor.buffer) {
    throw new FluxError('bad-argument', `${what}: source and destination blocks share a buffer but are not the same block`);
  }
  const pipeline = await pipelineFor(batch.ctx, { name: 'elementwise', entryPoint: 'map', constants });
  batch.dispatch(pipeline, [src.tensor, dst!.tensor], uniforms, elementGrid(s));
}

export interface MapArgs {
  readonly src: Block;
  /** Same rows × cols as src, in another buffer; omitted: src is overwritten in place. */
  readonly dst?: Block;
}

/** dst = gelu_tanh(src) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function geluTanh(batch: CommandBatch, a: MapArgs): Promise<void> {
  return map(batch, 'geluTanh', a.src, a.dst, 'gelu_tanh');
}

/** dst = silu(src) = x·σ(x). */
export function silu(batch: CommandBatch, a: MapArgs): Promise<void> {
  return map(batch, 'silu', a.src, a.dst, 'silu');
}

/** dst = src, for blocks of different buffers (a contiguous whole-row range is also `batch.copy`-able). */
export function copyBlock(batch: CommandBatch, a: { readonly src: Block; readonly dst: Block }): Promise<void> {
  return map(batch, 'identity', a.src, a.dst, 'copy');
}

export interface ResidualArgs {
  /** Updated in place. */
  readonly x: Block;
  /** Same rows × cols as x, in another buffer. */
  readonly y: Block;
}

export interface GatedResidualArgs extends ResidualArgs {
  /** Holds the gate vector [x cols] at element `gateOffset` (e.g. a block's modulation output). */
  readonly modulation: GpuTensor;
  readonly gateOffset: number;
}

/** x += y. */
export function add(batch: CommandBatch, a: ResidualArgs): Promise<void> {
  return residualAdd(batch, a, undefined, 'add');
}

/** x += gate ⊙ y, the gate broadcast over rows. */
export function gatedResidualAdd(batch: CommandBatch, a: GatedResidualArgs): Promise<void> {
  return residualAdd(batch, a, { modulation: a.modulation, offset: a.gateOffset }, 'gated_residual_add');
}

async function residualAdd(
  batch: CommandBatch,
  a: ResidualArgs,
  gate: { readonly modulation: GpuTensor; readonly offset: number } | undefined,
  what: string,
): Promise<void> {
  const x = blockLayout(a.x, `${what} x`);
  const y = blockLayout(a.y, `${what} y`);
  assertSameSize(x, y, what);
  // WebGPU forbids binding one buffer both read-only and writable in a dispatch.
  if (a.x.tensor.buffer === a.y.tensor.buffer || a.x.tensor.buffer === gate?.modulation.buffer) {
    throw new FluxError('bad-argument', `${what}: x shares a buffer with its other operands`);
  }
  if (gate) assertVectorFits(gate.modulation, gate.offset, x.cols, `${what} gate`);
  if (x.rows * x.cols === 0) return;
  const pipeline = await pipelineFor(batch.ctx, { name: 'elementwise', entryPoint: 'residual_add' });
  // Without a gate, y stands in for the modulation binding; has_gate = 0 keeps the shader from reading it.
  const modulation = gate?.modulation ?? a.y.tensor;
  const uniforms = packUniforms([x.rows, x.cols, y.offset, y.stride, x.offset, x.stride, gate?.offset ?? 0, gate ? 1 : 0]);
  batch.dispatch(pipeline, [a.x.tensor, a.y.tensor, modulation], uniforms, elementGrid(x));
}

/** Throws unless `length` f32 elements starting at element `offset` lie inside `t`. */
export function assertVectorFits(t: GpuTensor, offset: number, length: number, what: string): void {
  if (t.dtype !== 'f32') throw new FluxError('unsupported-dtype', `${what}: dtype ${t.dtype}, expected f32`);
  if (!Number.isInteger(offset) || offset < 0 || offset + length > numel(t.shape)) {
    throw new FluxError('bad-shape', `${what}: elements ${offset}..${offset + length} are outside [${t.shape}]`);
  }
}
