import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ATTENTION_TOLERANCE } from '../tests/kernels/attention-cases.ts';
import { CONV_TOLERANCE } from '../tests/kernels/conv-cases.ts';
import { LAYER_TOLERANCE } from '../tests/kernels/convrot-cases.ts';
import { ELEMENTWISE_TOLERANCE } from '../tests/kernels/elementwise-cases.ts';
import { EMBED_TOLERANCE } from '../tests/kernels/embed-cases.ts';
import { GEMM_SHAPES, GEMM_TOLERANCE } from '../tests/kernels/gemm-cases.ts';
import { NORM_TOLERANCE } from '../tests/kernels/norm-cases.ts';
import { startBrowserSession, type BrowserSession } from './browser.ts';

/**
 * The kernel page compiles every kernel variant of the Node kernel tests in Chromium: on SwiftShader about 40 s
 * alone on 2 cores, 111 s beside other GPU work, so allow twice that.
 */
const KERNEL_PAGE_MS = 240_000;

let session: BrowserSession;

beforeAll(async () => {
  session = await startBrowserSession();
});

afterAll(async () => {
  await session?.close();
});

describe('in Chromium (SwiftShader WebGPU)', () => {
  it('the demo page reports the WebGPU adapter, features and limits', async () => {
    const page = await session.browser.newPage();
    await page.goto(`${session.baseUrl}/`);
    const summary = page.locator('#gpu-summary');
    await summary.and(page.locator('[data-state="ok"], [data-state="error"]')).waitFor({ timeout: 60_000 });
    expect(await summary.getAttribute('data-state')).toBe('ok');
    expect((await summary.textContent())!.toLowerCase()).toContain('swiftshader');
    const details = await page.locator('#gpu-details').textContent();
    expect(details).toContain('maxStorageBufferBindingSize');
    expect(details).toContain('shader-f16');
    await page.close();
  });

  it('kernels match their CPU references in the browser', async () => {
    const page = await session.browser.newPage();
    await page.goto(`${session.baseUrl}/e2e/kernels.html`);
    await page.waitForFunction(() => window.kernelResults !== undefined || window.kernelError !== undefined, undefined, {
      timeout: KERNEL_PAGE_MS,
      polling: 1000,
    });
    const error = await page.evaluate(() => window.kernelError);
    expect(error).toBeUndefined();
    const { suites } = (await page.evaluate(() => window.kernelResults))!;
    expect(suites.gemm).toHaveLength(GEMM_SHAPES.length);
    const tolerances: Record<string, number> = {
      gemm: GEMM_TOLERANCE,
      norm: NORM_TOLERANCE,
      elementwise: ELEMENTWISE_TOLERANCE,
      attention: ATTENTION_TOLERANCE,
      embed: EMBED_TOLERANCE,
      vae: CONV_TOLERANCE,
      convrot: LAYER_TOLERANCE,
    };
    expect(Object.keys(suites).sort()).toEqual(Object.keys(tolerances).sort());
    for (const [suite, results] of Object.entries(suites)) {
      expect(results.length, suite).toBeGreaterThan(0);
      for (const r of results) {
        expect(r.maxRelError, r.name).toBeLessThan(r.tolerance ?? tolerances[suite]!);
        expect(r.untouchedChanged ?? 0, `${r.name}: values that must be bit-exact`).toBe(0);
      }
    }
    await page.close();
  }, KERNEL_PAGE_MS + 30_000);
});
