/**
 * Matrix views: rectangles of row-major f32 matrices that kernels read and write, passed to shaders as an element
 * offset and a row stride. They let one dispatch use a row or column range of a wider buffer (a stream's
 * rows of the joint sequence, a q/k/v slice of a fused projection) without copies or binding alignment.
 */
import { FluxError } from '../errors.ts';
import { numel, type GpuTensor } from '../gpu/tensor.ts';

/**
 * Rows [row0, row0 + rows) × columns [col0, col0 + cols) of a row-major f32 tensor [R, C] (a 1-D tensor [C]
 * is one row). Omitted fields cover the whole tensor from row/column 0.
 */
export interface MatrixView {
  readonly tensor: GpuTensor;
  readonly row0?: number;
  readonly rows?: number;
  readonly col0?: number;
  readonly cols?: number;
}

/** A view as the shaders address it: element (r, c) at `offset + r * stride + c` of the bound tensor. */
export interface ViewLayout {
  readonly rows: number;
  readonly cols: number;
  readonly offset: number;
  readonly stride: number;
}

/** Checks that the view lies inside its f32 tensor and returns its element layout. */
export function viewLayout(b: MatrixView, what: string): ViewLayout {
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
export function assertSameSize(a: ViewLayout, b: ViewLayout, what: string): void {
  if (a.rows !== b.rows || a.cols !== b.cols) {
    throw new FluxError('bad-shape', `${what}: ${a.rows} × ${a.cols} and ${b.rows} × ${b.cols} differ`);
  }
}

/** Throws unless `length` f32 elements starting at element `offset` lie inside `t`. */
export function assertVectorFits(t: GpuTensor, offset: number, length: number, what: string): void {
  if (t.dtype !== 'f32') throw new FluxError('unsupported-dtype', `${what}: dtype ${t.dtype}, expected f32`);
  if (!Number.isInteger(offset) || offset < 0 || offset + length > numel(t.shape)) {
    throw new FluxError('bad-shape', `${what}: elements ${offset}..${offset + length} are outside [${t.shape}]`);
  }
}
