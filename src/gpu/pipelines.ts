/** Compute pipelines, compiled once per (shader source, override constants, entry point) and reused. */
import { FluxError } from '../errors.ts';
import type { GpuContext } from './device.ts';

export interface PipelineSpec {
  /** Kernel name: the WGSL file name, used as label and in error messages. */
  readonly name: string;
  /** Final WGSL text (after template substitution). */
  readonly source: string;
  /** Values for WGSL `override` declarations (workgroup sizes). */
  readonly constants?: Readonly<Record<string, number>>;
  readonly entryPoint?: string;
}

export class PipelineCache {
  private readonly pipelines = new Map<string, Promise<GPUComputePipeline>>();

  constructor(private readonly ctx: GpuContext) {}

  get(spec: PipelineSpec): Promise<GPUComputePipeline> {
    const key = `${spec.entryPoint ?? 'main'}\u0000${JSON.stringify(spec.constants ?? {})}\u0000${spec.source}`;
    let pipeline = this.pipelines.get(key);
    if (!pipeline) {
      pipeline = this.compile(spec);
      // A failed compile must not poison the cache for a later, corrected attempt.
      pipeline.catch(() => this.pipelines.delete(key));
      this.pipelines.set(key, pipeline);
    }
    return pipeline;
  }

  /** Number of distinct pipelines compiled so far. */
  get size(): number {
    return this.pipelines.size;
  }

  private async compile(spec: PipelineSpec): Promise<GPUComputePipeline> {
    const { device } = this.ctx;
    this.ctx.assertAlive();
    // WGSL errors are read from the compilation info (it has line numbers); the scope only keeps them
    // from also surfacing as uncaptured errors.
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code: spec.source, label: spec.name });
    const info = await module.getCompilationInfo();
    const scoped = await device.popErrorScope();
    const m = info.messages.find((msg) => msg.type === 'error');
    if (m) throw new FluxError('shader-compilation', `${spec.name}.wgsl:${m.lineNum}:${m.linePos}: ${m.message}`);
    if (scoped) throw new FluxError('shader-compilation', `${spec.name}.wgsl: ${scoped.message.split('\n')[0]}`);
    try {
      return await device.createComputePipelineAsync({
        label: spec.name,
        layout: 'auto',
        compute: { module, entryPoint: spec.entryPoint ?? 'main', constants: spec.constants },
      });
    } catch (e) {
      throw new FluxError('shader-compilation', `${spec.name}.wgsl: pipeline creation failed: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }
}
