/**
 * Benchmark page: runs the shared benchmark (src/pipeline/bench.ts) with onnxruntime-web's WebGPU peers and
 * the embedded demo model, on one WebGPU device, and shows the rows as tables, uPlot charts and JSON.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { isFluxError } from '../errors.ts';
import { GpuContext } from '../gpu/device.ts';
import { adapterName, benchTable, comparisonTable, runBench, type BenchGrid, type BenchReport, type LinearPeer } from '../pipeline/bench.ts';
import { EVAL_DOUBLE_COUNT, EVAL_PROMPTS, EVAL_SINGLE_COUNT } from '../eval/prompts.ts';
import { adherenceChecks, adherenceTable, measureAdherence } from '../pipeline/adherence.ts';
import { FluxPipeline } from '../pipeline/flux-pipeline.ts';
import { DEMO_MODEL_PATH } from './model-source.ts';

declare global {
  interface Window {
    /** The last finished run, for automation (e2e/bench.test.ts). */
    benchReport?: BenchReport;
  }
}

/** The embedded demo model, served from public/. */
const DEMO_MODEL = new URL(DEMO_MODEL_PATH, document.baseURI).href;
/** The model benchmark runs the demo's default preset. */
const MODEL_PRECISION = 'mixed';
const MODEL_NAME = `flux-demo (${MODEL_PRECISION})`;
const CHART_HEIGHT = 260;
/** Share of a category's width its bars take, and uPlot's BarsPathBuilderFacetUnit.ScaleValue (a const enum). */
const GROUP_WIDTH = 0.8;
const SCALE_VALUE = 1 as uPlot.Series.BarsPathBuilderFacetUnit;
const SERIES_COLORS = ['#444', '#c77c02', '#1f6fd1', '#9b59b6', '#c0392b', '#16a085', '#7f8c8d'];

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const adapterLine = $<HTMLParagraphElement>('bench-adapter');
const form = $<HTMLFormElement>('bench-form');
const runButton = $<HTMLButtonElement>('run-bench');
const cancelButton = $<HTMLButtonElement>('cancel-bench');
const adherenceButton = $<HTMLButtonElement>('run-adherence');
const adherenceCancel = $<HTMLButtonElement>('cancel-adherence');
const adherenceStatus = $<HTMLParagraphElement>('adherence-status');
const progressBar = $<HTMLProgressElement>('bench-progress');
const status = $<HTMLParagraphElement>('bench-status');
const results = $<HTMLElement>('bench-results');

let ctx: GpuContext | undefined;
let peers: LinearPeer[] | undefined;
let pipeline: FluxPipeline | undefined;
let report: BenchReport | undefined;
let abort: AbortController | undefined;
const charts: uPlot[] = [];

function showError(e: unknown, where: HTMLElement = status): void {
  where.dataset.state = 'error';
  where.textContent = isFluxError(e) ? e.message : e instanceof Error ? e.message : String(e);
}

/**
 * Runs one of the page's jobs (the benchmark, the adherence table): both use the GPU and the demo model's
 * layers, so only one runs at a time; its cancel button aborts it.
 */
async function exclusive(cancel: HTMLButtonElement, where: HTMLElement, job: (signal: AbortSignal) => Promise<void>): Promise<void> {
  abort = new AbortController();
  runButton.disabled = adherenceButton.disabled = true;
  cancel.disabled = false;
  where.dataset.state = 'pending';
  try {
    await job(abort.signal);
    where.dataset.state = 'ok';
  } catch (e) {
    if (abort.signal.aborted) {
      where.dataset.state = 'pending';
      where.textContent = 'Cancelled.';
    } else showError(e, where);
  } finally {
    runButton.disabled = adherenceButton.disabled = false;
    cancel.disabled = true;
    abort = undefined;
  }
}

async function demoPipeline(gpu: GpuContext, where: HTMLElement, signal: AbortSignal): Promise<FluxPipeline> {
  if (!pipeline) {
    where.textContent = 'Loading the demo model…';
    pipeline = await FluxPipeline.load(DEMO_MODEL, { gpu, precision: MODEL_PRECISION, signal });
  }
  return pipeline;
}

/** ORT is loaded on first use: it is large and only the peers need it. Its wasm is served by Vite from the package. */
async function loadPeers(): Promise<LinearPeer[]> {
  const [ort, wasm, { ortPeers }] = await Promise.all([
    import('onnxruntime-web/webgpu'),
    import('onnxruntime-web/ort-wasm-simd-threaded.asyncify.wasm?url'),
    import('../pipeline/bench-ort.ts'),
  ]);
  ort.env.wasm.wasmPaths = { wasm: wasm.default };
  return ortPeers(ort);
}

function fillTable(table: HTMLTableElement, cells: string[][]): void {
  const [header, ...body] = cells;
  const head = table.createTHead().insertRow();
  for (const h of header!) head.append(Object.assign(document.createElement('th'), { textContent: h, scope: 'col' }));
  const tbody = table.createTBody();
  for (const row of body) {
    const tr = tbody.insertRow();
    for (const c of row) tr.insertCell().textContent = c;
  }
}

function chart(target: HTMLElement, title: string, xLabels: string[], series: { label: string; values: (number | null)[] }[], yLabel: string): void {
  if (xLabels.length === 0) {
    target.textContent = 'not measured in this run';
    return;
  }
  const width = Math.min(target.clientWidth || 800, 900);
  // Grouped bars: series i of S takes the i-th slot of width GROUP_WIDTH / S around each category's index.
  const barWidth = GROUP_WIDTH / series.length;
  const barsOf = (i: number) =>
    uPlot.paths.bars!({
      disp: {
        x0: { unit: SCALE_VALUE, values: () => xLabels.map((_, x) => x + (i - series.length / 2) * barWidth) },
        size: { unit: SCALE_VALUE, values: () => xLabels.map(() => barWidth) },
      },
    });
  const plot = new uPlot(
    {
      title,
      width,
      height: CHART_HEIGHT,
      scales: { x: { time: false, range: [-0.5, xLabels.length - 0.5] } },
      axes: [
        { values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? (xLabels[t] ?? '') : '')), splits: () => xLabels.map((_, i) => i) },
        { label: yLabel },
      ],
      series: [
        {},
        ...series.map((s, i) => ({ label: s.label, stroke: SERIES_COLORS[i % SERIES_COLORS.length], fill: SERIES_COLORS[i % SERIES_COLORS.length], paths: barsOf(i), points: { show: false } })),
      ],
    },
    [xLabels.map((_, i) => i), ...series.map((s) => s.values)] as uPlot.AlignedData,
    target,
  );
  charts.push(plot);
}

function showReport(r: BenchReport): void {
  for (const c of charts.splice(0)) c.destroy();
  for (const id of ['comparison-table', 'rows-table']) $<HTMLTableElement>(id).replaceChildren();
  for (const id of ['linear-chart', 'model-chart']) $<HTMLDivElement>(id).replaceChildren();
  $('bench-summary').textContent =
    `${adapterName(r.adapter)} · ${r.platform} · integer GEMM: ${r.dot4 ? 'dot4 built-ins' : 'plain integer math'} · ` +
    `timing: ${r.timing === 'timestamp' ? 'GPU timestamps + wall clock' : 'wall clock'} · ${r.grid} grid, median of ${r.repeats} · ${r.date}` +
    [...new Set(Object.values(r.peerAdapters))].map((a) => ` · ORT adapter: ${a}`).join('');
  fillTable($<HTMLTableElement>('comparison-table'), comparisonTable(r));
  fillTable($<HTMLTableElement>('rows-table'), benchTable(r));
  const errors = $<HTMLParagraphElement>('peer-errors');
  errors.hidden = r.peerErrors.length === 0;
  errors.textContent = r.peerErrors.length ? `Peers that did not run: ${r.peerErrors.join('; ')}` : '';

  const linear = r.rows.filter((row) => row.section === 'linear' || row.section === 'peer');
  const shapes = [...new Set(linear.map((row) => row.shape))];
  const kernels = [...new Set(linear.map((row) => row.name))];
  chart(
    $('linear-chart'),
    'GOPS (2·M·K·N per wall second), higher is faster',
    shapes,
    kernels.map((name) => ({ label: name, values: shapes.map((s) => linear.find((row) => row.name === name && row.shape === s)?.gops ?? null) })),
    'GOPS',
  );
  const blocks = r.rows.filter((row) => row.section === 'block');
  chart($('model-chart'), `${r.model ?? 'model'}: time per transformer block`, blocks.map((b) => b.name), [{ label: 'ms', values: blocks.map((b) => b.gpuMs ?? b.wallMs ?? null) }], 'ms');
  results.hidden = false;
}

function reportJson(): string {
  return JSON.stringify(report, null, 2);
}

async function runBenchmark(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const gpu = ctx;
  if (!gpu) return;
  const grid = $<HTMLSelectElement>('bench-grid').value as BenchGrid;
  const repeats = Number($<HTMLInputElement>('bench-repeats').value);
  const withPeers = $<HTMLInputElement>('bench-peers').checked;
  const withModel = $<HTMLInputElement>('bench-model').checked;
  progressBar.hidden = false;
  progressBar.removeAttribute('value');
  await exclusive(cancelButton, status, async (signal) => {
    if (withPeers && !peers) {
      status.textContent = 'Loading onnxruntime-web…';
      peers = await loadPeers();
    }
    report = await runBench(gpu, {
      grid,
      repeats,
      peers: withPeers ? peers : [],
      model: withModel ? await demoPipeline(gpu, status, signal) : undefined,
      modelName: MODEL_NAME,
      platform: navigator.userAgent,
      signal,
      onProgress: (p) => {
        progressBar.max = p.total;
        progressBar.value = p.done;
        status.textContent = `${p.done}/${p.total} · ${p.label}`;
      },
    });
    window.benchReport = report;
    showReport(report);
    status.textContent = `Done: ${report.rows.length} rows.`;
  });
  progressBar.hidden = true;
}

async function runAdherence(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const gpu = ctx;
  if (!gpu) return;
  const count = (id: string, max: number) => Math.min(max, Math.max(0, Math.floor(Number($<HTMLInputElement>(id).value) || 0)));
  const single = count('adherence-single', EVAL_SINGLE_COUNT);
  const double = count('adherence-double', EVAL_DOUBLE_COUNT);
  // EVAL_PROMPTS holds the single-object prompts first, then the two-object ones.
  const prompts = [...EVAL_PROMPTS.slice(0, single), ...EVAL_PROMPTS.slice(EVAL_SINGLE_COUNT, EVAL_SINGLE_COUNT + double)];
  await exclusive(adherenceCancel, adherenceStatus, async (signal) => {
    const pipe = await demoPipeline(gpu, adherenceStatus, signal);
    const result = await measureAdherence(pipe, {
      prompts,
      signal,
      onProgress: (p) => (adherenceStatus.textContent = `${p.method}: image ${p.done}/${p.total} (${p.overallDone}/${p.overallTotal} in all)`),
    });
    const table = $<HTMLTableElement>('adherence-table');
    table.replaceChildren();
    fillTable(table, adherenceTable(result));
    $('adherence-checks').replaceChildren(
      ...adherenceChecks(result).map((c) => Object.assign(document.createElement('li'), { textContent: `${c.passed ? 'met' : 'not met'}: ${c.name} (${c.value.toFixed(3)})` })),
    );
    adherenceStatus.textContent = `${result.model}: ${single} single-object and ${double} two-object prompts, ${result.width}x${result.height}, ${result.steps} steps.`;
  });
}

async function start(): Promise<void> {
  try {
    ctx = await GpuContext.create({ onLost: showError });
    adapterLine.dataset.state = 'ok';
    adapterLine.textContent = `Adapter: ${adapterName(ctx.adapter)} · timestamps: ${ctx.caps.timestampQuery ? 'yes' : 'no (wall clock only)'}`;
    runButton.disabled = adherenceButton.disabled = false;
  } catch (e) {
    adapterLine.dataset.state = 'error';
    adapterLine.textContent = isFluxError(e) ? e.message : `WebGPU failed to start: ${String(e)}`;
  }
}

form.addEventListener('submit', (e) => void runBenchmark(e));
$('adherence-form').addEventListener('submit', (e) => void runAdherence(e as SubmitEvent));
for (const cancel of [cancelButton, adherenceCancel]) cancel.addEventListener('click', () => abort?.abort());
$('copy-json').addEventListener('click', () => {
  void navigator.clipboard.writeText(reportJson()).then(
    () => (status.textContent = 'JSON copied.'),
    (e: unknown) => showError(e),
  );
});
$('download-json').addEventListener('click', () => {
  const url = URL.createObjectURL(new Blob([reportJson()], { type: 'application/json' }));
  const a = Object.assign(document.createElement('a'), { href: url, download: 'flux-w4a4-bench.json' });
  a.click();
  URL.revokeObjectURL(url);
});
void start();
