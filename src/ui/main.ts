/** Demo page entry: reports the WebGPU adapter, its features and limits, or why WebGPU is unavailable. */
import { GpuContext } from '../gpu/device.ts';
import { formatBytes } from '../gpu/buffers.ts';
import { isFluxError } from '../errors.ts';

const summary = document.querySelector<HTMLParagraphElement>('#gpu-summary')!;
const details = document.querySelector<HTMLDListElement>('#gpu-details')!;

function row(term: string, value: string): void {
  const dt = document.createElement('dt');
  dt.textContent = term;
  const dd = document.createElement('dd');
  dd.textContent = value;
  details.append(dt, dd);
}

async function showGpuStatus(): Promise<void> {
  try {
    const ctx = await GpuContext.create({
      onLost: (e) => {
        summary.dataset.state = 'error';
        summary.textContent = e.message;
      },
    });
    const a = ctx.adapter;
    summary.dataset.state = 'ok';
    summary.textContent = `WebGPU ready: ${[a.vendor, a.architecture, a.description].filter(Boolean).join(' · ') || 'unnamed adapter'}`;
    row('adapter', [a.vendor, a.architecture, a.device, a.description].filter(Boolean).join(' / ') || '(not reported)');
    row('shader-f16', String(ctx.caps.shaderF16));
    row('subgroups', String(ctx.caps.subgroups));
    row('timestamp-query', String(ctx.caps.timestampQuery));
    row('dot4 (packed_4x8_integer_dot_product)', String(ctx.caps.dot4));
    row('maxBufferSize', formatBytes(ctx.limits.maxBufferSize));
    row('maxStorageBufferBindingSize', formatBytes(ctx.limits.maxStorageBufferBindingSize));
    row('maxComputeWorkgroupStorageSize', formatBytes(ctx.limits.maxComputeWorkgroupStorageSize));
    row('maxComputeInvocationsPerWorkgroup', String(ctx.limits.maxComputeInvocationsPerWorkgroup));
    details.hidden = false;
  } catch (e) {
    summary.dataset.state = 'error';
    summary.textContent = isFluxError(e) ? e.message : `WebGPU failed to start: ${String(e)}`;
  }
}

void showGpuStatus();
