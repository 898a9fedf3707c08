/**
 * Drives bench.html in Chromium: picks the grid and repeats, clicks run, waits for the report the page publishes
 * on `window.benchReport`, and screenshots the page. Used by e2e/bench.test.ts and scripts/bench-page.ts.
 */
import type { Page } from 'playwright';
import type { BenchGrid, BenchReport } from '../src/pipeline/bench.ts';
import type { BrowserSession } from './browser.ts';

/** Wide enough for the results table without scrolling. */
const VIEWPORT = { width: 1280, height: 900 };

export interface BenchPageRun {
  readonly report: BenchReport;
  /** The rows table as the page shows it: header cells, then each row's cells. */
  readonly table: string[][];
  readonly comparison: string[][];
  readonly screenshot: Buffer;
}

async function tableCells(page: Page, id: string): Promise<string[][]> {
  return page.$$eval(`#${id} tr`, (rows) => rows.map((tr) => [...tr.querySelectorAll('th, td')].map((c) => c.textContent ?? '')));
}

export async function runBenchPage(session: BrowserSession, options: { grid: BenchGrid; repeats: number; timeoutMs: number; onStatus?: (s: string) => void }): Promise<BenchPageRun> {
  const page = await session.browser.newPage({ viewport: VIEWPORT });
  try {
    await page.goto(`${session.baseUrl}/bench.html`);
    await page.locator('[data-testid="run-bench"]:enabled').waitFor({ timeout: 60_000 });
    await page.locator('#bench-grid').selectOption(options.grid);
    await page.locator('#bench-repeats').fill(String(options.repeats));
    await page.locator('[data-testid="run-bench"]').click();
    const started = Date.now();
    for (;;) {
      const state = await page.locator('#bench-status').getAttribute('data-state');
      const text = (await page.locator('#bench-status').textContent()) ?? '';
      if (state === 'ok') break;
      if (state === 'error') throw new Error(`bench page: ${text}`);
      if (Date.now() - started > options.timeoutMs) throw new Error(`bench page did not finish in ${options.timeoutMs / 1000} s (at: ${text})`);
      options.onStatus?.(text);
      await page.waitForTimeout(2000);
    }
    const report = (await page.evaluate(() => window.benchReport))!;
    return {
      report,
      table: await tableCells(page, 'rows-table'),
      comparison: await tableCells(page, 'comparison-table'),
      screenshot: await page.screenshot({ fullPage: true }),
    };
  } finally {
    await page.close();
  }
}
