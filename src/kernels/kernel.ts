/**
 * How a kernel wrapper turns a WGSL file plus compile-time parameters into a pipeline, and packs its
 * uniforms. Compile-time parameters (formats, tile choices) go into the cache key; shapes go into uniforms
 * so one pipeline serves every shape.
 */
import type { GpuContext } from '../gpu/device.ts';
import { shaderText, type ShaderDefines } from '../gpu/shaders.ts';

export interface KernelVariant {
  /** WGSL file name in shaders/, also the pipeline label and the name errors and timings use. */
  readonly name: string;
  readonly defines?: ShaderDefines;
  /** WGSL `override` constants. */
  readonly constants?: Readonly<Record<string, number>>;
  readonly entryPoint?: string;
}

const sourceCache = new Map<string, string>();

export function pipelineFor(ctx: GpuContext, v: KernelVariant): Promise<GPUComputePipeline> {
  const key = `${v.name}\u0000${JSON.stringify(v.defines ?? {})}`;
  let source = sourceCache.get(key);
  if (source === undefined) {
    source = shaderText(v.name, v.defines);
    sourceCache.set(key, source);
  }
  return ctx.pipelines.get({ name: v.name, source, constants: v.constants, entryPoint: v.entryPoint });
}

/** A uniform field: a plain number is a u32, `{ f32 }` / `{ i32 }` say otherwise. */
export type UniformField = number | { readonly f32: number } | { readonly i32: number };

/** Packs uniform fields in declaration order, 4 bytes each (the WGSL structs hold only 32-bit scalars). */
export function packUniforms(fields: readonly UniformField[]): Uint32Array {
  const out = new Uint32Array(fields.length);
  const asF32 = new Float32Array(out.buffer);
  const asI32 = new Int32Array(out.buffer);
  fields.forEach((f, i) => {
    if (typeof f === 'number') {
      if (!Number.isInteger(f) || f < 0 || f > 0xffffffff) throw new Error(`uniform ${i}: ${f} is not a u32`);
      out[i] = f;
    } else if ('f32' in f) asF32[i] = f.f32;
    else asI32[i] = f.i32;
  });
  return out;
}

export function ceilDiv(a: number, b: number): number {
  return Math.ceil(a / b);
}
