import { describe, expect, it } from 'vitest';
import { CommandBatch, normalizeGrid } from '../../src/gpu/batch.ts';
import { createBuffer, readBuffer, uploadBuffer } from '../../src/gpu/buffers.ts';
import { FluxError } from '../../src/errors.ts';
import { GpuContext } from '../../src/gpu/device.ts';
import { testGpu } from '../helpers/gpu.ts';

const COPY_SHADER = `
@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
struct Params { n: u32, add: u32 }
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = g.x + g.y * nwg.x * 64u;
  if (i < p.n) { dst[i] = src[i] + p.add; }
}`;

describe('GPU runtime', () => {
  it('raises limits to the adapter maximum and reports capabilities', async () => {
    const ctx = await testGpu();
    // SwiftShader offers 1 GiB; the WebGPU defaults are 256 MiB / 128 MiB.
    expect(ctx.limits.maxBufferSize).toBeGreaterThan(256 * 2 ** 20);
    expect(ctx.limits.maxStorageBufferBindingSize).toBeGreaterThan(128 * 2 ** 20);
    expect(typeof ctx.caps.dot4).toBe('boolean');
    expect(ctx.caps.shaderF16).toBe(false); // SwiftShader has no shader-f16: the f32 paths are what runs here
    expect(Object.isFrozen(ctx.caps)).toBe(true);
  });

  it('caches pipelines by source and constants', async () => {
    const ctx = await testGpu();
    const a = await ctx.pipelines.get({ name: 'copy', source: COPY_SHADER });
    const b = await ctx.pipelines.get({ name: 'copy', source: COPY_SHADER });
    expect(a).toBe(b);
  });

  it('reports WGSL errors as one-line shader-compilation errors with file and line', async () => {
    const ctx = await testGpu();
    const bad = COPY_SHADER.replace('dst[i] = src[i] + p.add;', 'dst[i] = undefined_name;');
    const err = await ctx.pipelines.get({ name: 'broken', source: bad }).catch((e) => e);
    expect(err).toBeInstanceOf(FluxError);
    expect(err.code).toBe('shader-compilation');
    expect(err.message).toMatch(/^broken\.wgsl:\d+:\d+: .*undefined_name/);
  });

  it('refuses a buffer above maxBufferSize with a clear error', async () => {
    const ctx = await testGpu();
    const err = await createBuffer(ctx, ctx.limits.maxBufferSize + 4, 'huge').catch((e) => e);
    expect(err).toBeInstanceOf(FluxError);
    expect(err.code).toBe('limit-exceeded');
    expect(err.message).toContain('huge');
  });

  it('runs a batch with uniforms per dispatch, and times it', async () => {
    const ctx = await testGpu();
    const pipeline = await ctx.pipelines.get({ name: 'copy', source: COPY_SHADER });
    const n = 1000;
    const src = await uploadBuffer(ctx, Uint32Array.from({ length: n }, (_, i) => i), 'src');
    const mid = await createBuffer(ctx, n * 4, 'mid');
    const dst = await createBuffer(ctx, n * 4, 'dst');
    const batch = new CommandBatch(ctx, 'chain');
    batch.dispatch(pipeline, [src, mid], new Uint32Array([n, 7]), Math.ceil(n / 64));
    batch.dispatch(pipeline, [mid, dst], new Uint32Array([n, 100]), Math.ceil(n / 64));
    const timing = await batch.submitTimed();
    expect(timing.ms).toBeGreaterThan(0);
    expect(timing.source).toBe(ctx.caps.timestampQuery ? 'timestamp' : 'wall');
    const out = new Uint32Array(await readBuffer(ctx, dst));
    expect(out[0]).toBe(107);
    expect(out[999]).toBe(1106);
    for (const b of [src, mid, dst]) b.destroy();
  });

  it('splits grids past the per-dimension limit', () => {
    expect(normalizeGrid(10, 65535)).toEqual([10, 1, 1]);
    expect(normalizeGrid(100_000, 65535)).toEqual([50_000, 2, 1]);
    expect(() => normalizeGrid(65536 * 65536, 65535)).toThrow(FluxError);
  });
});

describe('device loss', () => {
  it('surfaces as a device-lost FluxError on the next operation', async () => {
    const ctx = await GpuContext.create();
    ctx.destroy();
    const lost = await ctx.lost;
    expect(lost.code).toBe('device-lost');
    expect(ctx.isLost).toBe(true);
    const err = await createBuffer(ctx, 16, 'after loss').catch((e) => e);
    expect(err).toBeInstanceOf(FluxError);
    expect(err.code).toBe('device-lost');
  });
});
