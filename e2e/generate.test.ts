import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyFlux } from '../scripts/make-tiny-flux.ts';
import { FluxPipeline } from '../src/pipeline/flux-pipeline.ts';
import { testGpu } from '../tests/helpers/gpu.ts';
import { maxRelError } from '../tests/helpers/random.ts';
import { startBrowserSession, type BrowserSession } from './browser.ts';
import { E2E_GENERATION } from './generate-settings.ts';

/** Under the dev server's root, so the page can fetch it. */
const MODEL = 'test-results/e2e-tiny-flux';
const ROOT = new URL('../', import.meta.url).pathname;
/** Both generations with their compiles take about 45 s on 2 cores. */
const SLOW = 300_000;

let session: BrowserSession;

beforeAll(async () => {
  await mkdir(join(ROOT, MODEL), { recursive: true });
  await makeTinyFlux(join(ROOT, MODEL));
  session = await startBrowserSession({ appType: 'mpa' });
}, SLOW);

afterAll(async () => {
  await session?.close();
  await rm(join(ROOT, MODEL), { recursive: true, force: true });
});

describe('generate in Chromium and in Node', () => {
  it('gives the same pixels from the same seed', async () => {
    const page = await session.browser.newPage();
    await page.goto(`${session.baseUrl}/e2e/generate.html?model=${MODEL}`);
    await page.waitForFunction(() => window.generateResult !== undefined || window.generateError !== undefined, undefined, { timeout: SLOW, polling: 1000 });
    expect(await page.evaluate(() => window.generateError)).toBeUndefined();
    const browser = (await page.evaluate(() => window.generateResult))!;
    await page.close();

    const pipe = await FluxPipeline.load(join(ROOT, MODEL), { gpu: await testGpu(), precision: 'float' });
    try {
      const node = await pipe.generate(E2E_GENERATION);
      expect([browser.width, browser.height]).toEqual([node.width, node.height]);
      // Same kernels on the same kind of device: the latents agree to float rounding...
      expect(maxRelError(browser.latent, node.latent)).toBeLessThan(1e-5);
      // ...and the 8-bit pixels are the same (a value on a rounding boundary may move by one level).
      const diffs = node.rgba.map((v, i) => Math.abs(v - browser.rgba[i]!));
      expect(Math.max(...diffs)).toBeLessThanOrEqual(1);
      expect(diffs.filter((d) => d !== 0).length).toBeLessThanOrEqual(node.rgba.length / 1000);
      expect(browser.canvasPixels).toEqual(browser.rgba);
    } finally {
      pipe.destroy();
    }
  }, SLOW);
});
