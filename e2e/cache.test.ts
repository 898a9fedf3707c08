/**
 * The weight cache in Chromium: a tiny 3-shard model quantized from the dev server's URLs is cached in
 * IndexedDB with its VAE and text encoders; after a reload it loads with no checkpoint requests at all, faster,
 * with identical output. A corrupt
 * chunk is found and rebuilt, an aborted load leaves no entry, a quota error gives the clear message and leaves
 * nothing, and a packed model written by Node's `quantize` loads in the browser with the same output.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyFlux } from '../scripts/make-tiny-flux.ts';
import { main } from '../src/cli/main.ts';
import { PACKED_CHECKPOINT_FILE } from '../src/weights/safetensors.ts';
import { startBrowserSession, type BrowserSession } from './browser.ts';
import type { CacheLoadRequest, CacheLoadResult } from './cache-page.ts';

/** Under the dev server's root, so the page can fetch them. */
const MODEL = 'test-results/e2e-cache-flux';
const PACKED = 'test-results/e2e-cache-flux-packed';
const ROOT = new URL('../', import.meta.url).pathname;
/** The slowest test (two loads and two transformer calls, with their compiles) takes about 100 s on 2 cores. */
const SLOW = 400_000;
/** The page's modules load in seconds; longer means it failed (see the page errors logged). */
const PAGE_READY_MS = 120_000;

let session: BrowserSession;
let page: Page;
/** Requests for transformer files since the last reset. */
let transformerRequests: string[] = [];
/** Requests for the other checkpoints (VAE, text encoders) since the last reset. */
let componentRequests: string[] = [];

beforeAll(async () => {
  await rm(join(ROOT, MODEL), { recursive: true, force: true });
  await mkdir(join(ROOT, MODEL), { recursive: true });
  await makeTinyFlux(join(ROOT, MODEL), { shards: 3 });
  session = await startBrowserSession({ appType: 'mpa' });
  page = await session.browser.newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  page.on('request', (r) => {
    if (!r.url().includes(`/${MODEL}/`) || !r.url().includes('.safetensors')) return;
    if (r.url().includes('/transformer/')) transformerRequests.push(r.url());
    else componentRequests.push(r.url());
  });
  await openPage();
}, SLOW);

afterAll(async () => {
  await session?.close();
  await rm(join(ROOT, MODEL), { recursive: true, force: true });
  await rm(join(ROOT, PACKED), { recursive: true, force: true });
});

async function openPage(reload = false): Promise<void> {
  if (reload) await page.reload();
  else await page.goto(`${session.baseUrl}/e2e/cache.html`);
  await page.waitForFunction(() => window.cacheCheck !== undefined, undefined, { timeout: PAGE_READY_MS });
}

function load(request: CacheLoadRequest): Promise<CacheLoadResult> {
  transformerRequests = [];
  componentRequests = [];
  return page.evaluate((r) => window.cacheCheck!.load(r), request);
}

async function loadError(request: CacheLoadRequest): Promise<string> {
  return page.evaluate((r) => window.cacheCheck!.load(r).then(() => 'no error', (e: unknown) => (e instanceof Error ? e.message : String(e))), request);
}

describe('weight cache in Chromium (tiny FLUX, 3 shards over HTTP)', () => {
  let cold: CacheLoadResult;

  it('the second load, after a reload, comes from IndexedDB: no checkpoint requests at all, faster, same output', async () => {
    await page.evaluate(() => window.cacheCheck!.clear());
    cold = await load({ model: MODEL, precision: 'mixed' });
    expect(cold.stats?.built).toBeGreaterThan(0);
    expect(cold.stats?.cached).toBe(0);
    expect(transformerRequests.length).toBeGreaterThan(0);
    expect(componentRequests.some((u) => u.includes('/vae/'))).toBe(true);
    expect(componentRequests.some((u) => u.includes('/text_encoder_2/'))).toBe(true);
    const [entry] = await page.evaluate(() => window.cacheCheck!.list());
    // Labelled by the transformer's location (the page names its files).
    expect(entry).toMatchObject({ label: expect.stringContaining('e2e-cache-flux/transformer/'), precision: 'mixed' });

    await openPage(true);
    const warm = await load({ model: MODEL, precision: 'mixed' });
    expect(transformerRequests).toEqual([]);
    // The VAE and both text encoders come from the cache too (their small JSON and tokenizer files do not).
    expect(componentRequests).toEqual([]);
    expect(warm.stats).toEqual({ cached: cold.stats!.built, built: 0, corrupt: 0 });
    expect(warm.out).toEqual(cold.out);
    console.log(`Chromium load, tiny model: cold ${cold.loadMs.toFixed(0)} ms (quantize from URL), cached ${warm.loadMs.toFixed(0)} ms; entry ${entry!.bytes} B`);
    expect(warm.loadMs).toBeLessThan(cold.loadMs);
  }, SLOW);

  it('a corrupt chunk is detected, its layer rebuilt from the source, the output unchanged', async () => {
    await page.evaluate(() => window.cacheCheck!.corrupt('single_transformer_blocks.1.proj_out'));
    const repaired = await load({ model: MODEL, precision: 'mixed' });
    expect(repaired.stats).toEqual({ cached: cold.stats!.built - 1, built: 1, corrupt: 1 });
    expect(repaired.out).toEqual(cold.out);
    expect(transformerRequests.length).toBeGreaterThan(0);
    const again = await load({ model: MODEL, precision: 'mixed' });
    expect(again.stats).toMatchObject({ built: 0, corrupt: 0 });
  }, SLOW);

  it('an aborted load leaves no entry; a quota error names the bytes needed and leaves nothing behind', async () => {
    const sizeBefore = await page.evaluate(() => window.cacheCheck!.size());
    expect(await loadError({ model: MODEL, precision: 'w8a8', abortAfter: 20 })).toMatch(/abort/i);
    expect((await page.evaluate(() => window.cacheCheck!.list())).map((m) => m.precision)).toEqual(['mixed']);

    await page.evaluate(() => window.cacheCheck!.clear());
    const message = await loadError({ model: MODEL, precision: 'float', quotaAfterPuts: 30 });
    expect(message).toMatch(/^caching \S+e2e-cache-flux\S+ \(float\) needs about [\d.]+ MiB \(\d+ bytes\) of browser storage, more than is free/);
    expect(await page.evaluate(() => window.cacheCheck!.list())).toEqual([]);
    expect(await page.evaluate(() => window.cacheCheck!.size())).toBe(0);
    expect(sizeBefore).toBeGreaterThan(0);
  }, SLOW);

  it('loads the packed model Node quantize wrote from the same shards, with the same output', async () => {
    expect(await main(['quantize', '--model', join(ROOT, MODEL), '--out', join(ROOT, PACKED), '--precision', 'mixed'])).toBe(0);
    const packed = await load({ model: PACKED, transformerFile: PACKED_CHECKPOINT_FILE, useCache: false });
    expect(packed.stats).toBeUndefined();
    expect(transformerRequests.every((u) => u.endsWith(PACKED_CHECKPOINT_FILE))).toBe(true);
    expect(packed.out).toEqual(cold.out);
  }, SLOW);
});
