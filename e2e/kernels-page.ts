/**
 * Runs the kernel case modules (the same ones the Node tests run) in the browser and publishes the
 * results on `window.kernelResults` for e2e/kernels.test.ts to assert on.
 */
import { GpuContext } from '../src/gpu/device.ts';
import { runAllGemmCases } from '../tests/kernels/gemm-cases.ts';

declare global {
  interface Window {
    kernelResults?: Record<string, unknown>;
    kernelError?: string;
  }
}

async function run(): Promise<void> {
  const status = document.querySelector('#status')!;
  try {
    const ctx = await GpuContext.create();
    window.kernelResults = {
      adapter: ctx.adapter,
      gemm: await runAllGemmCases(ctx),
    };
    status.textContent = 'done';
  } catch (e) {
    window.kernelError = e instanceof Error ? `${e.message}\n${e.stack}` : String(e);
    status.textContent = 'failed';
  }
}

void run();
