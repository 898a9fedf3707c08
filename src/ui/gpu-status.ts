/** The WebGPU section: the adapter, its key features and limits, or why WebGPU is missing and what to do. */
import { formatBytes } from '../gpu/buffers.ts';
import { GpuContext } from '../gpu/device.ts';
import { isFluxError, type FluxError } from '../errors.ts';

const $ = <T extends HTMLElement>(selector: string) => document.querySelector<T>(selector)!;

/** Next steps per situation, in plain words (the engine's message says what failed). */
const HELP_NO_API = [
  'Use a browser with WebGPU: Chrome or Edge 113+, Safari 26+, or Firefox 141+ (Windows; other systems behind a flag).',
  'Open the page over https or from localhost: WebGPU only exists in secure contexts.',
  'On Linux, Chrome needs chrome://flags/#enable-unsafe-webgpu and a Vulkan driver.',
];
const HELP_NO_ADAPTER = [
  'Check chrome://gpu (or about:support) for "WebGPU: Hardware accelerated".',
  'Update the GPU driver, or turn hardware acceleration on in the browser settings.',
  'Without a GPU, Chrome can use its software renderer: start it with --enable-unsafe-swiftshader (slow, but it works).',
];

function describeAdapter(ctx: GpuContext): string {
  const a = ctx.adapter;
  const name = [a.vendor, a.architecture, a.description].filter(Boolean).join(' · ') || 'unnamed adapter';
  return a.isFallbackAdapter ? `${name} (software fallback: expect slow generation)` : name;
}

/**
 * Shows the status; resolves to the context, or undefined (with the explanation shown) when WebGPU is missing.
 * Called again after a device loss, it starts a new device and replaces the shown details.
 */
export async function showGpuStatus(onLost: (error: FluxError) => void): Promise<GpuContext | undefined> {
  const summary = $<HTMLParagraphElement>('#gpu-summary');
  const details = $<HTMLDListElement>('#gpu-details');
  const row = (term: string, value: string) => {
    const dt = document.createElement('dt');
    dt.textContent = term;
    const dd = document.createElement('dd');
    dd.textContent = value;
    details.append(dt, dd);
  };
  details.replaceChildren();
  try {
    const ctx = await GpuContext.create({ onLost });
    const a = ctx.adapter;
    summary.dataset.state = 'ok';
    summary.textContent = `WebGPU ready: ${describeAdapter(ctx)}`;
    row('adapter', [a.vendor, a.architecture, a.device, a.description].filter(Boolean).join(' / ') || '(not reported)');
    row('shader-f16', String(ctx.caps.shaderF16));
    row('subgroups', String(ctx.caps.subgroups));
    row('timestamp-query', String(ctx.caps.timestampQuery));
    row('dot4 (packed_4x8_integer_dot_product)', String(ctx.caps.dot4));
    row('maxBufferSize', formatBytes(ctx.limits.maxBufferSize));
    row('maxStorageBufferBindingSize', formatBytes(ctx.limits.maxStorageBufferBindingSize));
    row('maxComputeWorkgroupStorageSize', formatBytes(ctx.limits.maxComputeWorkgroupStorageSize));
    row('maxComputeInvocationsPerWorkgroup', String(ctx.limits.maxComputeInvocationsPerWorkgroup));
    $('#gpu-more').hidden = false;
    return ctx;
  } catch (e) {
    summary.dataset.state = 'error';
    summary.textContent = isFluxError(e) ? e.message : `WebGPU failed to start: ${String(e)}`;
    const help = $('#gpu-help');
    const list = document.createElement('ul');
    const noApi = typeof navigator === 'undefined' || !('gpu' in navigator) || navigator.gpu === undefined;
    for (const step of noApi ? HELP_NO_API : HELP_NO_ADAPTER) {
      const item = document.createElement('li');
      item.textContent = step;
      list.append(item);
    }
    help.replaceChildren(Object.assign(document.createElement('p'), { textContent: 'Without WebGPU this page cannot generate images. Next steps:' }), list);
    help.hidden = false;
    return undefined;
  }
}
