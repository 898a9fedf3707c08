/**
 * Element-wise kernels on matrix views (rectangles of f32 matrices): GELU (tanh), SiLU and quick_gelu, T5's gated GELU,
 * block copies, and the residual adds of the transformer blocks. Blocks let one dispatch read or write a column or row range of a
 * wider buffer, e.g. the single block's concat(attention, gelu(mlp)) is written in place of a copy.
 */
import { FluxError } from '../errors.ts';
import type { CommandBatch } from '../gpu/batch.ts';
import type { GpuTensor } from '../gpu/tensor.ts';
import { assertSameSize, assertVectorFits, viewLayout, type MatrixView, type ViewLayout } from './matrix-view.ts';
import { shaderConstant } from '../gpu/shaders.ts';
import { ceilDiv, packUniforms, pipelineFor } from './kernel.ts';


/** Values of the ACTIVATION override in shaders/elementwise.wgsl. */
const ACTIVATION = { identity: 0, geluTanh: 1, silu: 2, quickGelu: 3 } as const;
type Activation = keyof typeof ACTIVATION;

function elementGrid(l: ViewLayout): number {
  return ceilDiv(l.rows * l.cols, shaderConstant('elementwise', 'WG'));
}

async function map(batch: CommandBatch, activation: Activation, src: MatrixView, dst: MatrixView | undefined, what: string): Promise<void> {
  const s = viewLayout(src, `${what} src`);
  const d = dst ? viewLayout(dst, `${what} dst`) : s;
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
    throw new FluxError('bad-argument', `${what}: source and destination views share a buffer but are not the same view`);
  }
  const pipeline = await pipelineFor(batch.ctx, { name: 'elementwise', entryPoint: 'map', constants });
  batch.dispatch(pipeline, [src.tensor, dst!.tensor], uniforms, elementGrid(s));
}

export interface MapArgs {
  readonly src: MatrixView;
  /** Same rows × cols as src, in another buffer; omitted: src is overwritten in place. */
  readonly dst?: MatrixView;
}

/** dst = gelu_tanh(src) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function geluTanh(batch: CommandBatch, a: MapArgs): Promise<void> {
  return map(batch, 'geluTanh', a.src, a.dst, 'gelu_tanh');
}

/** dst = silu(src) = x·σ(x). */
export function silu(batch: CommandBatch, a: MapArgs): Promise<void> {
  return map(batch, 'silu', a.src, a.dst, 'silu');
}

/** dst = quick_gelu(src) = x·σ(1.702·x) (CLIP). */
export function quickGelu(batch: CommandBatch, a: MapArgs): Promise<void> {
  return map(batch, 'quickGelu', a.src, a.dst, 'quick_gelu');
}

export interface GatedMapArgs {
  /** The activation's input (T5: wi_0's output). */
  readonly gate: MatrixView;
  /** The factor (T5: wi_1's output); same rows × cols, may be another column range of gate's buffer. */
  readonly up: MatrixView;
  /** Same rows × cols, in a buffer neither gate nor up uses. */
  readonly dst: MatrixView;
}

/** dst = gelu_tanh(gate) ⊙ up: T5 v1.1's gated-GELU feed-forward. */
export async function gatedGeluTanh(batch: CommandBatch, a: GatedMapArgs): Promise<void> {
  const g = viewLayout(a.gate, 'gated_gelu gate');
  const u = viewLayout(a.up, 'gated_gelu up');
  const d = viewLayout(a.dst, 'gated_gelu dst');
  assertSameSize(g, u, 'gated_gelu');
  assertSameSize(g, d, 'gated_gelu');
  // WebGPU forbids binding one buffer both read-only and writable in a dispatch.
  if (a.dst.tensor.buffer === a.gate.tensor.buffer || a.dst.tensor.buffer === a.up.tensor.buffer) {
    throw new FluxError('bad-argument', 'gated_gelu: dst shares a buffer with its inputs');
  }
  if (g.rows * g.cols === 0) return;
  const pipeline = await pipelineFor(batch.ctx, { name: 'elementwise', entryPoint: 'gated_map', constants: { ACTIVATION: ACTIVATION.geluTanh } });
  const uniforms = packUniforms([g.rows, g.cols, g.offset, g.stride, u.offset, u.stride, d.offset, d.stride]);
  batch.dispatch(pipeline, [a.gate.tensor, a.up.tensor, a.dst.tensor], uniforms, elementGrid(g));
}

/** dst = src, for views of different buffers (a contiguous whole-row range is also `batch.copy`-able). */
export function copyView(batch: CommandBatch, a: { readonly src: MatrixView; readonly dst: MatrixView }): Promise<void> {
  return map(batch, 'identity', a.src, a.dst, 'copy');
}

export interface ResidualArgs {
  /** Updated in place. */
  readonly x: MatrixView;
  /** Same rows × cols as x, in another buffer. */
  readonly y: MatrixView;
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
  const x = viewLayout(a.x, `${what} x`);
  const y = viewLayout(a.y, `${what} y`);
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
