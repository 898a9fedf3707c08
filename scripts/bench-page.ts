/**
 * Runs the bench page in Chromium (the e2e launcher) and records what it measured:
 *   npx tsx scripts/bench-page.ts [--full] [--repeats N]
 * writes docs/bench-results.json (the page's report), docs/images/bench-page.png (the page after the run) and
 * prints the rows and speed-ups as Markdown tables for the README.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { startBrowserSession } from '../e2e/browser.ts';
import { runBenchPage } from '../e2e/bench-page.ts';
import { adapterName, DEFAULT_REPEATS } from '../src/pipeline/bench.ts';

/** The full grid at M = 4096 takes hours on a CPU-emulated GPU. */
const TIMEOUT_MS = 6 * 3600_000;
const RESULTS = new URL('../docs/bench-results.json', import.meta.url);
const SCREENSHOT = new URL('../docs/images/bench-page.png', import.meta.url);

function markdown(cells: readonly (readonly string[])[]): string {
  const [header, ...rows] = cells;
  const line = (r: readonly string[]) => `| ${r.join(' | ')} |`;
  return [line(header!), line(header!.map(() => '---')), ...rows.map(line)].join('\n');
}

const { values } = parseArgs({ options: { full: { type: 'boolean' }, repeats: { type: 'string' } } });
const session = await startBrowserSession({ appType: 'mpa' });
try {
  const run = await runBenchPage(session, {
    grid: values.full ? 'full' : 'quick',
    repeats: values.repeats === undefined ? DEFAULT_REPEATS : Number(values.repeats),
    timeoutMs: TIMEOUT_MS,
    onStatus: (s) => process.stderr.write(`\r\u001b[2K${s}`),
  });
  process.stderr.write('\n');
  await mkdir(new URL('.', SCREENSHOT), { recursive: true });
  await writeFile(SCREENSHOT, run.screenshot);
  await writeFile(RESULTS, JSON.stringify(run.report, null, 2) + '\n');
  const r = run.report;
  process.stdout.write(`${adapterName(r.adapter)}, ${r.grid} grid, median of ${r.repeats}\n\n${markdown(run.comparison)}\n\n${markdown(run.table)}\n`);
} finally {
  await session.close();
}
