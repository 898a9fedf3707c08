/** GPU error scopes turned into typed, one-line FluxErrors. */
import { FluxError } from '../errors.ts';

/**
 * Runs `fn` inside out-of-memory and validation error scopes and throws a FluxError naming `what`
 * if either caught something. Async because WebGPU reports errors asynchronously.
 */
export async function withErrorScopes<T>(device: GPUDevice, what: string, fn: () => T | Promise<T>): Promise<T> {
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let result: T;
  try {
    result = await fn();
  } finally {
    const validation = await device.popErrorScope();
    const oom = await device.popErrorScope();
    if (oom) throw new FluxError('gpu-out-of-memory', `out of GPU memory while ${what}: ${oom.message}`);
    if (validation) throw new FluxError('gpu-validation', `GPU validation error while ${what}: ${firstLine(validation.message)}`);
  }
  return result;
}

function firstLine(text: string): string {
  return text.split('\n').find((l) => l.trim() !== '')?.trim() ?? text;
}
