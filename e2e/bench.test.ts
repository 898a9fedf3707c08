import { mkdir, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { benchTable, comparisonTable, gridShapes } from '../src/pipeline/bench.ts';
import { ORT_ACCURACY_LEVELS } from '../src/pipeline/bench-ort.ts';
import { startBrowserSession, type BrowserSession } from './browser.ts';
import { runBenchPage } from './bench-page.ts';

/** The quick grid on a CPU-emulated GPU: about 90 s on 2 otherwise idle cores, half of it in the peers (see docs/benchmark.md). */
const SLOW = 360_000;
/** The e2e run's own screenshot; scripts/bench-page.ts writes bench-page.png with the README's numbers. */
const SCREENSHOT = new URL('../docs/images/bench-page-e2e.png', import.meta.url);

let session: BrowserSession;

beforeAll(async () => {
  session = await startBrowserSession({ appType: 'mpa' });
});

afterAll(async () => {
  await session?.close();
});

const positive = (cell: string) => Number.isFinite(Number(cell)) && Number(cell) > 0;

describe('bench page in Chromium', () => {
  it('fills every row of the quick grid, ours, the onnxruntime-web peers and the demo model, with numbers', async () => {
    // One timed run after the warm-up: the rows, not their precision, are under test.
    const run = await runBenchPage(session, { grid: 'quick', repeats: 1, timeoutMs: SLOW - 60_000 });
    await mkdir(new URL('.', SCREENSHOT), { recursive: true });
    await writeFile(SCREENSHOT, run.screenshot);
    const { report } = run;

    expect(report.peerErrors).toEqual([]);
    const names = (section: string) => report.rows.filter((r) => r.section === section).map((r) => r.name);
    const { linears, attentionRows } = gridShapes('quick');
    expect(names('linear')).toEqual(linears.flatMap(() => ['f32 GEMM', 'W8A8 layer', 'W4A4 layer']));
    expect(names('quantize')).toHaveLength(2 * linears.length);
    expect(names('peer')).toEqual(linears.flatMap(() => ['ORT MatMul f32', ...ORT_ACCURACY_LEVELS.map((l) => `ORT MatMulNBits 4-bit acc ${l}`)]));
    expect(names('attention')).toHaveLength(attentionRows.length);
    // The demo model: 2 double and 2 single blocks, between the embeddings and the final layer.
    expect(names('block')).toEqual(['embeddings + modulation', 'double block 0', 'double block 1', 'single block 0', 'single block 1', 'final layer']);
    expect(names('model')).toEqual(['denoising step', 'text encoding', 'VAE decode', 'generation']);
    expect(names('memory')).toEqual(['model activations', 'transformer weights', 'text encoder weights', 'VAE decoder weights']);
    // The peers ran on the adapter our kernels ran on.
    for (const adapter of Object.values(report.peerAdapters)) expect(adapter).toContain(report.adapter.architecture);

    // What the page shows is the shared table, and each row's measured columns hold positive numbers.
    expect(run.table).toEqual(benchTable(report));
    expect(run.comparison).toEqual(comparisonTable(report));
    const [header, ...rows] = run.table;
    const column = (name: string) => header!.indexOf(name);
    for (const [i, r] of report.rows.entries()) {
      const cells = rows[i]!;
      const label = `${r.section} ${r.name} ${r.shape}`;
      if (r.section === 'memory') expect(positive(cells[column('MiB')]!), label).toBe(true);
      else expect(positive(cells[column('wall ms')]!) || positive(cells[column('GPU ms')]!), label).toBe(true);
      if (r.section === 'linear' || r.section === 'peer') {
        expect(positive(cells[column('GOPS')]!), label).toBe(true);
        expect(positive(cells[column('MiB')]!), label).toBe(true);
      }
      for (const v of [r.wallMs, r.gpuMs, r.gops, r.bytes]) if (v !== undefined) expect(Number.isFinite(v) && v > 0, label).toBe(true);
    }
    for (const cells of run.comparison.slice(1)) for (const cell of cells.slice(1)) expect(positive(cell), cells[0]).toBe(true);
  }, SLOW);
});
