/** The GPU runtime: device and capabilities, buffers, pipelines, batched dispatch, timing. */
export { GpuContext, type GpuCaps, type GpuContextOptions, type AdapterSummary } from './device.ts';
export { BufferPool, BufferUsage, STORAGE_USAGE, createBuffer, uploadBuffer, writeBuffer, readBuffer, readFloat32, formatBytes, align4 } from './buffers.ts';
export { CommandBatch, normalizeGrid, type BatchTiming, type BufferBinding, type Workgroups } from './batch.ts';
export { type GpuTensor, type GpuDtype, GPU_DTYPE_BYTES, numel, byteSize, reshape } from './tensor.ts';
export { withErrorScopes } from './scopes.ts';
