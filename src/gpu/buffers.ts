/** Buffer creation with clear errors, uploads, readbacks, and a pool for reusing activation buffers. */
import { FluxError } from '../errors.ts';
import type { GpuContext } from './device.ts';
import { withErrorScopes } from './scopes.ts';

/**
 * GPUBufferUsage values from the WebGPU spec. The `GPUBufferUsage` global exists only once a platform has
 * installed WebGPU (in Node, after Dawn loads), which is later than module evaluation.
 */
export const BufferUsage = {
  MAP_READ: 0x1,
  COPY_SRC: 0x4,
  COPY_DST: 0x8,
  UNIFORM: 0x40,
  STORAGE: 0x80,
  QUERY_RESOLVE: 0x200,
} as const;

/** Storage buffers the kernels read and write, copyable both ways for uploads and readbacks. */
export const STORAGE_USAGE = BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST;

/** WebGPU requires buffer sizes and copy sizes to be multiples of 4 bytes. */
export function align4(n: number): number {
  return Math.ceil(n / 4) * 4;
}

function checkSize(ctx: GpuContext, size: number, label: string): void {
  if (size > ctx.limits.maxBufferSize) {
    throw new FluxError(
      'limit-exceeded',
      `${label}: ${formatBytes(size)} exceeds this GPU's largest buffer (${formatBytes(ctx.limits.maxBufferSize)})`,
    );
  }
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}

/** Allocates a buffer; out-of-memory and limit violations become FluxErrors naming `label`. */
export async function createBuffer(ctx: GpuContext, size: number, label: string, usage = STORAGE_USAGE): Promise<GPUBuffer> {
  ctx.assertAlive();
  const bytes = Math.max(4, align4(size));
  checkSize(ctx, bytes, label);
  let buffer: GPUBuffer | undefined;
  try {
    return await withErrorScopes(ctx.device, `allocating ${label} (${formatBytes(bytes)})`, () => (buffer = ctx.device.createBuffer({ size: bytes, usage, label })));
  } catch (e) {
    // An allocation that failed still returned a (dead) buffer object: release it rather than leave it to GC.
    buffer?.destroy();
    throw e;
  }
}

/** Creates a storage buffer holding `data` (padded to 4 bytes). */
export async function uploadBuffer(
  ctx: GpuContext,
  data: ArrayBufferView,
  label: string,
  usage = STORAGE_USAGE,
): Promise<GPUBuffer> {
  const buffer = await createBuffer(ctx, data.byteLength, label, usage);
  writeBuffer(ctx, buffer, 0, data);
  return buffer;
}

/** Writes `data` at `offset`; pads the tail to 4 bytes as writeBuffer requires. */
export function writeBuffer(ctx: GpuContext, buffer: GPUBuffer, offset: number, data: ArrayBufferView): void {
  // writeBuffer copies synchronously, so a view of shared memory is as good as one of an ArrayBuffer.
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength) as Uint8Array<ArrayBuffer>;
  const whole = bytes.byteLength & ~3;
  if (whole > 0) ctx.device.queue.writeBuffer(buffer, offset, bytes, 0, whole);
  if (whole < bytes.byteLength) {
    const tail = new Uint8Array(4);
    tail.set(bytes.subarray(whole));
    ctx.device.queue.writeBuffer(buffer, offset + whole, tail);
  }
}

/** Copies `size` bytes at `offset` of a GPU buffer back to the CPU. Waits for all submitted work. */
export async function readBuffer(ctx: GpuContext, buffer: GPUBuffer, offset = 0, size = buffer.size - offset): Promise<ArrayBuffer> {
  ctx.assertAlive();
  const padded = align4(size);
  const staging = ctx.device.createBuffer({ size: padded, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: 'readback' });
  try {
    const encoder = ctx.device.createCommandEncoder({ label: 'readback' });
    encoder.copyBufferToBuffer(buffer, offset, staging, 0, padded);
    ctx.device.queue.submit([encoder.finish()]);
    await Promise.race([staging.mapAsync(1 /* GPUMapMode.READ */), ctx.lost.then((e) => Promise.reject(e))]);
    return staging.getMappedRange(0, padded).slice(0, size);
  } finally {
    staging.destroy();
  }
}

export async function readFloat32(ctx: GpuContext, buffer: GPUBuffer, offset = 0, count?: number): Promise<Float32Array> {
  return new Float32Array(await readBuffer(ctx, buffer, offset, count === undefined ? undefined : count * 4));
}

/**
 * Reuses buffers by exact (size, usage): the scheduler asks for the same activation sizes every step, so
 * an exact-size pool avoids both reallocation and the waste of size classes.
 */
export class BufferPool {
  private readonly free = new Map<string, GPUBuffer[]>();
  private live = 0;
  private peak = 0;

  constructor(private readonly ctx: GpuContext) {}

  async acquire(size: number, label: string, usage = STORAGE_USAGE): Promise<GPUBuffer> {
    const bytes = Math.max(4, align4(size));
    const list = this.free.get(`${bytes}:${usage}`);
    const buffer = list?.pop() ?? (await createBuffer(this.ctx, bytes, label, usage));
    this.live += bytes;
    this.peak = Math.max(this.peak, this.live);
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    const key = `${buffer.size}:${buffer.usage}`;
    let list = this.free.get(key);
    if (!list) this.free.set(key, (list = []));
    list.push(buffer);
    this.live -= buffer.size;
  }

  /** Largest number of bytes acquired at once since creation (or the last resetPeak). */
  get peakBytes(): number {
    return this.peak;
  }

  /** Bytes acquired and not yet released: back at its earlier value once a piece of work has cleaned up. */
  get liveBytes(): number {
    return this.live;
  }

  /** Starts a new peak measurement from the current live bytes. */
  resetPeak(): void {
    this.peak = this.live;
  }

  clear(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
  }
}
