import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GEMM_SHAPES, GEMM_TOLERANCE, type GemmCaseResult } from '../tests/kernels/gemm-cases.ts';
import { startBrowserSession, type BrowserSession } from './browser.ts';

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
      timeout: 110_000,
    });
    const error = await page.evaluate(() => window.kernelError);
    expect(error).toBeUndefined();
    const results = (await page.evaluate(() => window.kernelResults)) as { gemm: GemmCaseResult[] };
    expect(results.gemm).toHaveLength(GEMM_SHAPES.length);
    for (const r of results.gemm) expect(r.maxRelError, `gemm ${r.shape.join('x')}`).toBeLessThan(GEMM_TOLERANCE);
    await page.close();
  });
});
