/**
 * One way to get a WebGPU device in the browser and in Node: negotiate the adapter's real limits and the
 * optional features the kernels can use, and expose what was granted as a frozen capabilities object.
 */
import { platform } from '#platform';
import { FluxError } from '../errors.ts';
import { BufferPool } from './buffers.ts';
import { PipelineCache } from './pipelines.ts';

/** What the kernels may rely on; feature choice happens once, when pipelines are built. */
export interface GpuCaps {
  readonly shaderF16: boolean;
  readonly subgroups: boolean;
  readonly timestampQuery: boolean;
  /** WGSL `packed_4x8_integer_dot_product`: dot4I8Packed / dot4U8Packed. */
  readonly dot4: boolean;
}

export interface AdapterSummary {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  readonly isFallbackAdapter: boolean;
}

export interface GpuContextOptions {
  powerPreference?: GPUPowerPreference;
  /** Features to leave off even when the adapter has them (ablations, testing the fallbacks). */
  disable?: ReadonlyArray<keyof GpuCaps>;
  /** Called once if the device is lost after creation (driver reset, out of memory, destroy()). */
  onLost?: (error: FluxError) => void;
  /**
   * Caps on the limits we otherwise raise to the adapter's maximum (e.g. the WebGPU defaults, to test the
   * variants kernels pick for adapters that offer no more).
   */
  limits?: Readonly<Partial<Record<RaisedLimit, number>>>;
}

/** The optional features we ask for, when the adapter offers them. */
const OPTIONAL_FEATURES: ReadonlyArray<[keyof GpuCaps, GPUFeatureName]> = [
  ['shaderF16', 'shader-f16'],
  ['subgroups', 'subgroups' as GPUFeatureName],
  ['timestampQuery', 'timestamp-query'],
];

/** Limits we raise to the adapter's maximum: FLUX tensors are far past the WebGPU defaults. */
const RAISED_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;
export type RaisedLimit = (typeof RAISED_LIMITS)[number];

export class GpuContext {
  readonly pipelines: PipelineCache;
  readonly pool: BufferPool;
  /** Resolves (never rejects) when the device is lost, with the error that describes it. */
  readonly lost: Promise<FluxError>;
  private lostError: FluxError | undefined;

  private constructor(
    readonly device: GPUDevice,
    readonly adapter: AdapterSummary,
    readonly caps: GpuCaps,
    readonly limits: GPUSupportedLimits,
    onLost: ((error: FluxError) => void) | undefined,
  ) {
    this.pipelines = new PipelineCache(this);
    this.pool = new BufferPool(this);
    this.lost = device.lost.then((info) => {
      const error = new FluxError(
        'device-lost',
        info.reason === 'destroyed'
          ? 'the GPU device was destroyed'
          : `the GPU device was lost (${info.message || 'unknown reason'}); reload the page or restart to continue`,
      );
      this.lostError = error;
      if (info.reason !== 'destroyed') onLost?.(error);
      return error;
    });
  }

  static async create(options: GpuContextOptions = {}): Promise<GpuContext> {
    const gpu = platform.getGpu();
    if (!gpu) {
      throw new FluxError(
        'webgpu-unavailable',
        platform.name === 'browser'
          ? 'WebGPU is not available in this browser: use a recent Chrome, Edge, Safari 26 or Firefox 141+, on a page served over https or localhost'
          : 'WebGPU is not available: the `webgpu` package could not load Dawn',
      );
    }
    const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
    if (!adapter) {
      throw new FluxError(
        'webgpu-unavailable',
        platform.name === 'browser'
          ? 'WebGPU is present but no GPU adapter is available (blocklisted driver or GPU disabled); check chrome://gpu'
          : 'no WebGPU adapter: install a Vulkan driver, or Debian `chromium` for SwiftShader (VK_ICD_FILENAMES)',
      );
    }
    const disabled = new Set(options.disable ?? []);
    const requiredFeatures: GPUFeatureName[] = [];
    for (const [cap, feature] of OPTIONAL_FEATURES) {
      if (adapter.features.has(feature) && !disabled.has(cap)) requiredFeatures.push(feature);
    }
    const requiredLimits: Record<string, number> = {};
    for (const name of RAISED_LIMITS) requiredLimits[name] = Math.min(adapter.limits[name], options.limits?.[name] ?? Infinity);

    let device: GPUDevice;
    try {
      device = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'flux-w4a4' });
    } catch (e) {
      throw new FluxError('webgpu-unavailable', `the GPU adapter refused to create a device: ${String(e)}`, { cause: e });
    }
    const caps: GpuCaps = Object.freeze({
      shaderF16: device.features.has('shader-f16'),
      subgroups: device.features.has('subgroups' as GPUFeatureName),
      timestampQuery: device.features.has('timestamp-query'),
      dot4: !disabled.has('dot4') && (gpu.wgslLanguageFeatures?.has('packed_4x8_integer_dot_product') ?? false),
    });
    const info = adapter.info;
    const summary: AdapterSummary = Object.freeze({
      vendor: info?.vendor ?? '',
      architecture: info?.architecture ?? '',
      device: info?.device ?? '',
      description: info?.description ?? '',
      isFallbackAdapter: (info as GPUAdapterInfo & { isFallbackAdapter?: boolean })?.isFallbackAdapter ?? false,
    });
    return new GpuContext(device, summary, caps, device.limits, options.onLost);
  }

  /** Throws the device-lost error if the device is gone: call before starting long work. */
  assertAlive(): void {
    if (this.lostError) throw this.lostError;
  }

  get isLost(): boolean {
    return this.lostError !== undefined;
  }

  /** Frees the device; pending work is abandoned. */
  destroy(): void {
    this.pool.clear();
    this.device.destroy();
  }
}
