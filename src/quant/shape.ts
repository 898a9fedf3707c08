/** Argument checks shared by the CPU references: row-major matrices given as flat arrays plus dimensions. */
import { FluxError } from '../errors.ts';

/** Throws unless `n` is a non-negative integer; `what` names it in the message. */
export function assertCount(what: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new FluxError('bad-argument', `${what} must be a non-negative integer, got ${n}`);
  }
}

/** Throws unless `length` is exactly rows × cols for valid dimensions. */
export function assertMatrix(what: string, length: number, rows: number, cols: number): void {
  assertCount(`${what} rows`, rows);
  assertCount(`${what} cols`, cols);
  if (length !== rows * cols) {
    throw new FluxError('bad-shape', `${what} has ${length} elements, expected ${rows} x ${cols} = ${rows * cols}`);
  }
}
