/**
 * Batched command encoding: dispatches and copies are recorded, then encoded into one command buffer
 * with one uniform upload for the whole batch (each dispatch gets an aligned slot), and submitted once.
 * No CPU readback happens inside a batch.
 *
 * Binding convention (every shader follows it): group 0, storage buffers at bindings 0..n-1 in the order
 * given to `dispatch`, and the uniform struct, if any, at binding n.
 */
import { FluxError } from '../errors.ts';
import { BufferUsage, align4, formatBytes } from './buffers.ts';
import type { GpuContext } from './device.ts';
import { withErrorScopes } from './scopes.ts';
import { byteSize, type GpuTensor } from './tensor.ts';

export type BufferBinding = GPUBuffer | GpuTensor | { readonly buffer: GPUBuffer; readonly offset?: number; readonly size?: number };
export type Workgroups = number | readonly [number, number?, number?];

interface DispatchItem {
  readonly kind: 'dispatch';
  readonly pipeline: GPUComputePipeline;
  readonly bindings: GPUBufferBinding[];
  readonly uniformOffset: number;
  readonly uniformSize: number;
  readonly grid: readonly [number, number, number];
}
interface CopyItem {
  readonly kind: 'copy';
  readonly src: GPUBuffer;
  readonly srcOffset: number;
  readonly dst: GPUBuffer;
  readonly dstOffset: number;
  readonly size: number;
}

/** Result of a timed submit. `source` says whether GPU timestamps or the wall clock measured it. */
export interface BatchTiming {
  readonly ms: number;
  readonly source: 'timestamp' | 'wall';
}

const NANOSECONDS_PER_MS = 1e6;

/**
 * Splits a grid whose x count exceeds the per-dimension limit into x·y; shaders that can receive such grids
 * compute their flat workgroup index as `wid.x + wid.y * nwg.x` and ignore indices past the end.
 */
export function normalizeGrid(workgroups: Workgroups, maxPerDim: number): [number, number, number] {
  const [x, y = 1, z = 1] = typeof workgroups === 'number' ? [workgroups] : workgroups;
  if (![x, y, z].every((n) => Number.isInteger(n) && n >= 0)) {
    throw new FluxError('bad-argument', `invalid dispatch size [${x}, ${y}, ${z}]`);
  }
  if (x <= maxPerDim && y <= maxPerDim && z <= maxPerDim) return [x, y, z];
  if (y === 1 && z === 1) {
    const rows = Math.ceil(x / maxPerDim);
    if (rows <= maxPerDim) return [Math.ceil(x / rows), rows, 1];
  }
  throw new FluxError('limit-exceeded', `dispatch of [${x}, ${y}, ${z}] workgroups exceeds the GPU limit of ${maxPerDim} per dimension`);
}

export class CommandBatch {
  private readonly items: (DispatchItem | CopyItem)[] = [];
  private uniforms = new Uint8Array(4096);
  private uniformBytes = 0;
  private submitted = false;

  constructor(
    readonly ctx: GpuContext,
    readonly label = 'batch',
  ) {}

  /** Number of recorded dispatches. */
  get dispatchCount(): number {
    return this.items.filter((i) => i.kind === 'dispatch').length;
  }

  dispatch(pipeline: GPUComputePipeline, bindings: readonly BufferBinding[], uniforms: ArrayBufferView | undefined, workgroups: Workgroups): void {
    this.assertOpen();
    const { limits } = this.ctx;
    const resolved = bindings.map((b, i) => this.resolveBinding(b, pipeline.label, i));
    let uniformOffset = -1;
    let uniformSize = 0;
    if (uniforms) {
      uniformSize = align4(uniforms.byteLength);
      uniformOffset = this.reserveUniform(uniformSize, limits.minUniformBufferOffsetAlignment);
      this.uniforms.set(new Uint8Array(uniforms.buffer, uniforms.byteOffset, uniforms.byteLength), uniformOffset);
    }
    const grid = normalizeGrid(workgroups, limits.maxComputeWorkgroupsPerDimension);
    this.items.push({ kind: 'dispatch', pipeline, bindings: resolved, uniformOffset, uniformSize, grid });
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    this.assertOpen();
    this.items.push({ kind: 'copy', src, srcOffset, dst, dstOffset, size: align4(size) });
  }

  /** Encodes and submits; resolves when the GPU has finished this batch. */
  async submit(): Promise<void> {
    await this.encodeAndSubmit(undefined);
  }

  /** Like submit, and measures the batch with timestamp queries when available, else the wall clock. */
  async submitTimed(): Promise<BatchTiming> {
    if (!this.ctx.caps.timestampQuery) {
      const start = performance.now();
      await this.encodeAndSubmit(undefined);
      return { ms: performance.now() - start, source: 'wall' };
    }
    const { device } = this.ctx;
    const querySet = device.createQuerySet({ type: 'timestamp', count: 2, label: `${this.label} timing` });
    const resolve = device.createBuffer({ size: 16, usage: BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC });
    const readback = device.createBuffer({ size: 16, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
    try {
      await this.encodeAndSubmit({ querySet, resolve, readback });
      await readback.mapAsync(1 /* GPUMapMode.READ */);
      const [begin, end] = new BigInt64Array(readback.getMappedRange());
      return { ms: Number(end! - begin!) / NANOSECONDS_PER_MS, source: 'timestamp' };
    } finally {
      querySet.destroy();
      resolve.destroy();
      readback.destroy();
    }
  }

  private async encodeAndSubmit(timing: { querySet: GPUQuerySet; resolve: GPUBuffer; readback: GPUBuffer } | undefined): Promise<void> {
    this.assertOpen();
    this.submitted = true;
    this.ctx.assertAlive();
    const { device } = this.ctx;
    const uniformBuffer =
      this.uniformBytes > 0
        ? device.createBuffer({ size: this.uniformBytes, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST, label: `${this.label} uniforms` })
        : undefined;
    try {
      await withErrorScopes(device, `running ${this.label}`, () => {
        if (uniformBuffer) device.queue.writeBuffer(uniformBuffer, 0, this.uniforms, 0, this.uniformBytes);
        const encoder = device.createCommandEncoder({ label: this.label });
        // Copies cannot sit inside a compute pass, so passes are split around them; dispatches within a
        // pass are ordered and see each other's writes.
        const passes = this.groupIntoPasses();
        const computePasses = passes.flatMap((g, i) => (g[0]!.kind === 'dispatch' ? [i] : []));
        const firstCompute = computePasses[0];
        const lastCompute = computePasses[computePasses.length - 1];
        passes.forEach((group, p) => {
          if (group[0]!.kind === 'copy') {
            for (const c of group as CopyItem[]) encoder.copyBufferToBuffer(c.src, c.srcOffset, c.dst, c.dstOffset, c.size);
            return;
          }
          const timestampWrites =
            timing && (p === firstCompute || p === lastCompute)
              ? {
                  querySet: timing.querySet,
                  ...(p === firstCompute ? { beginningOfPassWriteIndex: 0 } : {}),
                  ...(p === lastCompute ? { endOfPassWriteIndex: 1 } : {}),
                }
              : undefined;
          const pass = encoder.beginComputePass({ label: this.label, timestampWrites });
          for (const d of group as DispatchItem[]) {
            const entries: GPUBindGroupEntry[] = d.bindings.map((resource, binding) => ({ binding, resource }));
            if (d.uniformOffset >= 0) {
              entries.push({ binding: entries.length, resource: { buffer: uniformBuffer!, offset: d.uniformOffset, size: d.uniformSize } });
            }
            pass.setPipeline(d.pipeline);
            pass.setBindGroup(0, device.createBindGroup({ layout: d.pipeline.getBindGroupLayout(0), entries }));
            pass.dispatchWorkgroups(...d.grid);
          }
          pass.end();
        });
        if (timing) {
          encoder.resolveQuerySet(timing.querySet, 0, 2, timing.resolve, 0);
          encoder.copyBufferToBuffer(timing.resolve, 0, timing.readback, 0, 16);
        }
        device.queue.submit([encoder.finish()]);
      });
      await Promise.race([device.queue.onSubmittedWorkDone(), this.ctx.lost.then((e) => Promise.reject(e))]);
    } finally {
      uniformBuffer?.destroy();
    }
  }

  private groupIntoPasses(): (DispatchItem | CopyItem)[][] {
    const passes: (DispatchItem | CopyItem)[][] = [];
    for (const item of this.items) {
      const last = passes[passes.length - 1];
      if (last && last[0]!.kind === item.kind) last.push(item);
      else passes.push([item]);
    }
    return passes;
  }

  private resolveBinding(b: BufferBinding, kernel: string, index: number): GPUBufferBinding {
    const { limits } = this.ctx;
    let binding: GPUBufferBinding;
    if ('shape' in b) binding = { buffer: b.buffer, offset: b.offset, size: align4(byteSize(b)) };
    else if ('buffer' in b) binding = { buffer: b.buffer, offset: b.offset ?? 0, size: b.size };
    else binding = { buffer: b };
    const offset = binding.offset ?? 0;
    const size = binding.size ?? binding.buffer.size - offset;
    if (offset % limits.minStorageBufferOffsetAlignment !== 0) {
      throw new FluxError('bad-argument', `${kernel}: binding ${index} offset ${offset} is not a multiple of ${limits.minStorageBufferOffsetAlignment}`);
    }
    if (size > limits.maxStorageBufferBindingSize) {
      throw new FluxError(
        'limit-exceeded',
        `${kernel}: binding ${index} is ${formatBytes(size)}, above this GPU's storage binding limit (${formatBytes(limits.maxStorageBufferBindingSize)})`,
      );
    }
    return binding;
  }

  private reserveUniform(size: number, alignment: number): number {
    const offset = Math.ceil(this.uniformBytes / alignment) * alignment;
    const end = offset + size;
    if (end > this.uniforms.byteLength) {
      const grown = new Uint8Array(Math.max(end, this.uniforms.byteLength * 2));
      grown.set(this.uniforms.subarray(0, this.uniformBytes));
      this.uniforms = grown;
    }
    this.uniformBytes = end;
    return offset;
  }

  private assertOpen(): void {
    if (this.submitted) throw new Error(`${this.label}: batch already submitted`);
  }
}
