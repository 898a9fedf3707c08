/**
 * Runs the kernel case modules (the same ones the Node tests run) in the browser and publishes the
 * results on `window.kernelResults` for e2e/browser.test.ts to assert on.
 */
import { GpuContext } from '../src/gpu/device.ts';
import { runAllAttentionCases } from '../tests/kernels/attention-cases.ts';
import { runAllConvCases } from '../tests/kernels/conv-cases.ts';
import { runAllLayerCases } from '../tests/kernels/convrot-cases.ts';
import { runAllElementwiseCases } from '../tests/kernels/elementwise-cases.ts';
import { runAllEmbedCases } from '../tests/kernels/embed-cases.ts';
import { runAllGemmCases } from '../tests/kernels/gemm-cases.ts';
import { runAllNormCases } from '../tests/kernels/norm-cases.ts';

/** What every suite reports per case: its error against the CPU reference, and stray writes if it checks them. */
export interface BrowserCaseResult {
  readonly name: string;
  readonly maxRelError: number;
  /** The case's own tolerance, where a suite's cases differ. */
  readonly tolerance?: number;
  /** Values that must be bit-exact and are not: writes outside a block, quantized operands unlike the reference. */
  readonly untouchedChanged?: number;
}

declare global {
  interface Window {
    kernelResults?: { adapter: unknown; suites: Record<string, BrowserCaseResult[]> };
    kernelError?: string;
  }
}

async function run(): Promise<void> {
  const status = document.querySelector('#status')!;
  try {
    const ctx = await GpuContext.create();
    const gemm = (await runAllGemmCases(ctx)).map((r) => ({ name: `gemm ${r.shape.join('x')}${r.bias ? ' bias' : ''}`, maxRelError: r.maxRelError }));
    window.kernelResults = {
      adapter: ctx.adapter,
      suites: {
        gemm,
        norm: await runAllNormCases(ctx),
        elementwise: await runAllElementwiseCases(ctx),
        attention: await runAllAttentionCases(ctx),
        embed: await runAllEmbedCases(ctx),
        vae: await runAllConvCases(ctx),
        convrot: (await runAllLayerCases(ctx)).map((r) => ({ name: r.name, maxRelError: r.maxRelError, tolerance: r.tolerance, untouchedChanged: r.mismatches })),
      },
    };
    status.textContent = 'done';
  } catch (e) {
    window.kernelError = e instanceof Error ? `${e.message}\n${e.stack}` : String(e);
    status.textContent = 'failed';
  }
}

void run();
