/**
 * Every error the engine raises on purpose is a FluxError: its message is one line meant for a user
 * (the CLI prints it without a stack trace), and `code` lets callers branch without parsing text.
 */
export type FluxErrorCode =
  | 'webgpu-unavailable'
  | 'gpu-out-of-memory'
  | 'gpu-validation'
  | 'shader-compilation'
  | 'device-lost'
  | 'limit-exceeded'
  | 'quota-exceeded'
  | 'bad-format'
  | 'unsupported-dtype'
  | 'bad-shape'
  | 'bad-argument'
  | 'io';

export class FluxError extends Error {
  readonly code: FluxErrorCode;
  constructor(code: FluxErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'FluxError';
  }
}

/** True for errors whose message is meant for users (no stack trace needed). */
export function isFluxError(e: unknown): e is FluxError {
  return e instanceof FluxError;
}
