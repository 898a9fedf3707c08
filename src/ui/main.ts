/**
 * The demo page: WebGPU status, model loading (embedded demo model, URL, local folder) with a byte meter,
 * prompt → image with progress, live latent preview, cancel, PNG download and history, INT4/INT8 per layer
 * group without reloading, and the weight cache panel. Plain DOM over FluxPipeline.
 */
import type { GpuContext } from '../gpu/device.ts';
import { formatBytes } from '../gpu/buffers.ts';
import { quantizableLinearNames, presetPrecisions, type LayerPrecision, type PrecisionPreset } from '../model/precision.ts';
import { DEFAULT_GROUP_SIZE, DEFAULT_ROTATION, packedWeightBytes } from '../nn/conv-linear.ts';
import { FluxPipeline, SIZE_MULTIPLE, type GenerateResult, type PipelineProgress } from '../pipeline/flux-pipeline.ts';
import { encodePng } from '../pipeline/image.ts';
import { WeightCache } from '../weights/cache.ts';
import { observeReads } from '../weights/sources.ts';
import { CachePanel, openWeightCache, rememberCachedSource } from './cache-panel.ts';
import { showGpuStatus } from './gpu-status.ts';
import { drawLatent } from './latent-preview.ts';
import { blockCount, groupLayers, groupPrecision, LAYER_GROUPS, type LayerGroup } from './layer-groups.ts';
import { describeError, isAbort } from './messages.ts';
import { demoModelUrl, resolveModel, type ModelChoice } from './model-source.ts';

const $ = <T extends HTMLElement = HTMLElement>(selector: string) => document.querySelector<T>(selector)!;
const input = (id: string) => $<HTMLInputElement>(`#${id}`);

/** Prompts in the demo model's caption language (src/eval/scenes.ts templates): what it was trained to draw. */
const DEMO_EXAMPLES = [
  'a red circle on a blue background',
  'a yellow triangle and a green square on a black background',
  'a white square on a red background',
  'a blue circle next to a yellow triangle on a white background',
];
const FLUX_EXAMPLES = ['a photo of a red fox in fresh snow, morning light', 'a watercolor lighthouse on a cliff at dusk', 'a bowl of ramen, studio photo'];
const SIZES = [64, 128, 256, 512, 768, 1024];
const HISTORY_LIMIT = 12;
/** The fixed presets, and 'auto': the model folder's calibrated INT4/INT8 map (FluxPipeline.autoPrecision). */
type DemoPreset = PrecisionPreset | 'auto';
const PRESET_LABEL: Readonly<Record<DemoPreset, string>> = { w4a4: 'INT4', mixed: 'mixed INT4/INT8', w8a8: 'INT8', float: 'float', auto: 'auto INT4/INT8' };
/** What a model loads at when 'auto' is asked for: the map is then applied as layer rebuilds. */
const AUTO_LOAD_PRESET: PrecisionPreset = 'mixed';

interface Settings {
  readonly prompt: string;
  readonly negativePrompt: string;
  readonly trueCfgScale: number;
  readonly width: number;
  readonly height: number;
  readonly steps: number;
  readonly seed: number;
  readonly guidance: number | undefined;
  readonly precision: string;
}

interface HistoryEntry {
  readonly settings: Settings;
  readonly preset: DemoPreset;
  readonly url: string;
}

let gpu: GpuContext | undefined;
let pipe: FluxPipeline | undefined;
let modelLabel = '';
let appliedPreset: DemoPreset = 'mixed';
let busy: 'load' | 'generate' | 'layers' | undefined;
let controller: AbortController | undefined;
let lastDecodeMs: number | undefined;
const history: HistoryEntry[] = [];
const weightCache = openWeightCache(() => new WeightCache());
let cachePanel: CachePanel;

// ---------- errors and busy state ----------

function showError(e: unknown): void {
  if (isAbort(e)) return;
  console.error(e);
  $('#error-text').textContent = describeError(e);
  $('#error').hidden = false;
}

function clearError(): void {
  $('#error').hidden = true;
}

function setBusy(state: typeof busy): void {
  busy = state;
  document.body.dataset.busy = state ?? '';
  const ready = gpu !== undefined && pipe !== undefined && !gpu.isLost;
  $<HTMLButtonElement>('#generate').disabled = !ready || state !== undefined;
  $<HTMLButtonElement>('#load').disabled = gpu === undefined || state !== undefined;
  $<HTMLSelectElement>('#precision-preset').disabled = state !== undefined;
  $('#load-cancel').hidden = state !== 'load';
  $('#generate-cancel').hidden = state !== 'generate';
  for (const toggle of document.querySelectorAll<HTMLInputElement>('#layer-groups input')) toggle.disabled = state !== undefined || appliedPreset === 'float';
}

// ---------- loading ----------

function modelChoice(): ModelChoice {
  const kind = document.querySelector<HTMLInputElement>('input[name=source]:checked')!.value;
  if (kind === 'url') return { kind, url: input('model-url').value.trim() };
  if (kind === 'folder') return { kind, files: [...(input('model-folder').files ?? [])] };
  return { kind: 'demo' };
}

function selectedPreset(): DemoPreset {
  return $<HTMLSelectElement>('#precision-preset').value as DemoPreset;
}

/** Every quantizable linear's precision under `preset` for the loaded model. */
function presetTargets(preset: DemoPreset): Map<string, LayerPrecision> {
  const config = pipe!.transformer.config;
  const all = preset === 'auto' ? pipe!.autoPrecision! : presetPrecisions(preset, config);
  return new Map(quantizableLinearNames(config).map((name) => [name, all.get(name)!] as const));
}

/** The 'auto' choice is offered only for a model folder that has a calibrated map. */
function offerAutoPreset(available: boolean): void {
  const option = $<HTMLOptionElement>('#precision-preset option[value=auto]');
  option.hidden = option.disabled = !available;
  if (!available && selectedPreset() === 'auto') $<HTMLSelectElement>('#precision-preset').value = AUTO_LOAD_PRESET;
}

function formatSeconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

async function loadModel(): Promise<void> {
  if (gpu?.isLost) {
    // Everything on the lost device is gone: start a new one (the weight cache makes the reload quick).
    gpu = await startGpu();
  }
  if (!gpu) return;
  clearError();
  const choice = modelChoice();
  controller = new AbortController();
  const signal = controller.signal;
  setBusy('load');
  pipe?.destroy();
  pipe = undefined;
  $('#layer-panel').hidden = true;
  const bar = $<HTMLProgressElement>('#load-bar');
  const text = $('#load-text');
  $('#load-progress').hidden = false;
  $('#model-summary').dataset.state = 'loading';
  $('#model-summary').textContent = 'Loading…';
  let bytes = 0;
  let detail = 'reading the folder';
  const start = performance.now();
  let total: number | undefined;
  const update = () => {
    const seconds = (performance.now() - start) / 1000;
    const rate = seconds > 0 ? bytes / seconds : 0;
    const parts = [total ? `${formatBytes(bytes)} of ${formatBytes(total)}` : formatBytes(bytes), `${formatBytes(rate)}/s`];
    if (total && rate > 0 && bytes < total) parts.push(`about ${formatSeconds(((total - bytes) / rate) * 1000)} left`);
    parts.push(detail);
    text.textContent = parts.join(' · ');
    if (total) bar.value = Math.min(1, bytes / total);
    else bar.removeAttribute('value');
  };
  const stopMeter = observeReads((_name, n) => {
    bytes += n;
    update();
  });
  let release = () => {};
  try {
    const resolved = await resolveModel(choice);
    release = resolved.release;
    total = resolved.totalBytes;
    update();
    const asked = selectedPreset();
    const preset = asked === 'auto' ? AUTO_LOAD_PRESET : asked;
    const cache = input('use-cache').checked ? weightCache : undefined;
    pipe = await FluxPipeline.load(resolved.location, {
      gpu,
      precision: preset,
      signal,
      cache,
      cacheIdentity: resolved.cacheIdentity,
      onProgress: (p) => {
        detail = p.detail ?? detail;
        update();
      },
    });
    appliedPreset = preset;
    modelLabel = resolved.label;
    applyModelDefaults(pipe, resolved.isDemo);
    renderLayerPanel();
    $('#model-summary').dataset.state = 'ready';
    const stats = pipe.cacheStats;
    const fromCache = stats ? `, ${stats.cached} layers from the browser cache, ${stats.built} built and cached` : '';
    summarizeModel(`loaded in ${formatSeconds(performance.now() - start)}${fromCache}`);
    if (cache && resolved.url) rememberCachedSource(pipe.name, preset, resolved.url);
    void cachePanel.refresh();
    $('#load-progress').hidden = true;
    offerAutoPreset(pipe.autoPrecision !== undefined);
    if (asked === 'auto' && pipe.autoPrecision) await applyPresetNow('auto');
  } catch (e) {
    $('#model-summary').dataset.state = 'error';
    $('#model-summary').textContent = isAbort(e) ? 'Loading cancelled.' : 'No model loaded.';
    $('#load-progress').hidden = true;
    showError(e);
  } finally {
    stopMeter();
    release();
    setBusy(undefined);
  }
}

function summarizeModel(note: string): void {
  if (!pipe) return;
  const c = pipe.transformer.config;
  const kind = c.guidanceEmbed ? 'dev (guidance-distilled)' : 'schnell';
  $('#model-summary').textContent =
    `${modelLabel}: FLUX.1 ${kind}, ${c.depthDouble} double + ${c.depthSingle} single blocks, ` +
    `${PRESET_LABEL[appliedPreset]}, transformer weights ${formatBytes(pipe.transformer.weightBytes)} on the GPU; ${note}.`;
}

function fillSizes(select: HTMLSelectElement, value: number): void {
  const sizes = [...new Set([...SIZES, value])].filter((s) => s % SIZE_MULTIPLE === 0).sort((a, b) => a - b);
  select.replaceChildren(...sizes.map((s) => new Option(`${s} px`, String(s), false, s === value)));
}

function applyModelDefaults(p: FluxPipeline, isDemo: boolean): void {
  const d = p.defaults;
  input('steps').value = String(d.steps);
  input('cfg').value = String(d.trueCfgScale);
  input('negative').value = d.negativePrompt;
  fillSizes($<HTMLSelectElement>('#width'), d.width);
  fillSizes($<HTMLSelectElement>('#height'), d.height);
  $('#guidance-field').hidden = d.guidance === undefined;
  if (d.guidance !== undefined) input('guidance').value = String(d.guidance);
  const examples = isDemo ? DEMO_EXAMPLES : FLUX_EXAMPLES;
  if (isDemo && !DEMO_EXAMPLES.includes($<HTMLTextAreaElement>('#prompt').value)) $<HTMLTextAreaElement>('#prompt').value = DEMO_EXAMPLES[0]!;
  $('#examples').replaceChildren(
    ...examples.map((prompt) => {
      const chip = document.createElement('button');
      chip.type = 'button';
      chip.textContent = prompt;
      chip.addEventListener('click', () => {
        $<HTMLTextAreaElement>('#prompt').value = prompt;
        $('#prompt').focus();
      });
      return chip;
    }),
  );
}

// ---------- precision: preset and per-group toggles ----------

/** Rebuilds `names` at their target precisions (only the layers that change) and reports it. */
async function rebuildLayers(targets: ReadonlyMap<string, LayerPrecision>, what: string): Promise<void> {
  if (!pipe) return;
  const slots = pipe.layerSlots();
  const byPrecision = new Map<LayerPrecision, string[]>();
  for (const [name, precision] of targets) {
    if (slots.get(name)!.precision === precision) continue;
    byPrecision.set(precision, [...(byPrecision.get(precision) ?? []), name]);
  }
  const count = [...byPrecision.values()].reduce((n, names) => n + names.length, 0);
  setBusy('layers');
  const start = performance.now();
  $('#layer-status').textContent = `Rebuilding ${count} layers…`;
  try {
    for (const [precision, names] of byPrecision) await pipe.setPrecision(names, precision);
    $('#layer-status').textContent = `${what}: rebuilt ${count} layers in ${formatSeconds(performance.now() - start)}.`;
  } catch (e) {
    $('#layer-status').textContent = `${what}: failed.`;
    showError(e);
  } finally {
    summarizeModel(($('#layer-status').textContent ?? '').replace(/\.$/, ''));
    refreshLayerPanel();
    setBusy(undefined);
  }
}

async function applyPreset(preset: DemoPreset): Promise<void> {
  // A history entry may name 'auto' from a model that had a calibrated map.
  if (!pipe || busy || (preset === 'auto' && !pipe.autoPrecision)) return;
  await applyPresetNow(preset);
}

async function applyPresetNow(preset: DemoPreset): Promise<void> {
  const targets = presetTargets(preset);
  appliedPreset = preset;
  await rebuildLayers(targets, `Preset ${PRESET_LABEL[preset]}`);
}

interface GroupRow {
  readonly group: LayerGroup;
  readonly toggle: HTMLInputElement;
  readonly first: HTMLInputElement;
  readonly last: HTMLInputElement;
  readonly bytes: HTMLElement;
}
let groupRows: GroupRow[] = [];

function rangeOf(row: GroupRow): [number, number] {
  const first = Number(row.first.value);
  const last = Number(row.last.value);
  return [Math.min(first, last), Math.max(first, last)];
}

function rowLayers(row: GroupRow): string[] {
  return groupLayers(row.group, pipe!.layerSlots(), ...rangeOf(row));
}

function numberInput(label: string, value: number, max: number): HTMLInputElement {
  const el = Object.assign(document.createElement('input'), { type: 'number', min: '0', max: String(max), step: '1', value: String(value) });
  el.setAttribute('aria-label', label);
  return el;
}

function renderLayerPanel(): void {
  const slots = pipe!.layerSlots();
  const body = $('#layer-groups tbody');
  groupRows = [];
  body.replaceChildren();
  for (const group of LAYER_GROUPS) {
    const blocks = blockCount(slots.keys(), group.kind);
    if (blocks === 0) continue;
    const toggle = Object.assign(document.createElement('input'), { type: 'checkbox', id: `int8-${group.id}` });
    toggle.dataset.testid = `int8-toggle-${group.id}`;
    toggle.setAttribute('aria-label', `${group.label}: INT8`);
    const row: GroupRow = {
      group,
      toggle,
      first: numberInput(`${group.label}: first block`, 0, blocks - 1),
      last: numberInput(`${group.label}: last block`, blocks - 1, blocks - 1),
      bytes: document.createElement('td'),
    };
    groupRows.push(row);
    const tr = document.createElement('tr');
    const name = document.createElement('th');
    name.scope = 'row';
    name.append(Object.assign(document.createElement('label'), { htmlFor: toggle.id, textContent: group.label }));
    const toggleCell = document.createElement('td');
    toggleCell.append(toggle);
    const range = document.createElement('td');
    range.className = 'range';
    range.append(row.first, '–', row.last, ` of ${blocks} ${group.kind}`);
    tr.append(name, toggleCell, range, row.bytes);
    body.append(tr);
    toggle.addEventListener('change', () => {
      const precision: LayerPrecision = toggle.checked ? 'int8' : 'int4';
      const targets = new Map(rowLayers(row).map((n) => [n, precision] as const));
      void rebuildLayers(targets, `${group.label} ${precision.toUpperCase()}`);
    });
    for (const el of [row.first, row.last]) el.addEventListener('input', refreshLayerPanel);
  }
  $('#layer-panel').hidden = groupRows.length === 0;
  refreshLayerPanel();
}

/** Toggle states (indeterminate when a group is part INT4, part INT8) and the bytes each choice costs. */
function refreshLayerPanel(): void {
  if (!pipe) return;
  const slots = pipe.layerSlots();
  for (const row of groupRows) {
    const names = rowLayers(row);
    const state = groupPrecision(names.map((n) => slots.get(n)!.precision));
    row.toggle.checked = state === 'int8';
    row.toggle.indeterminate = state === 'mixed';
    const bytesAt = (format: 'int4' | 'int8') =>
      names.reduce((sum, n) => {
        const slot = slots.get(n)!;
        const q = { format, rotation: slot.spec.rotation ?? DEFAULT_ROTATION, groupSize: slot.spec.groupSize ?? DEFAULT_GROUP_SIZE };
        return sum + packedWeightBytes(slot.inFeatures, slot.outFeatures, q);
      }, 0);
    row.bytes.textContent = `${formatBytes(bytesAt('int4'))} → ${formatBytes(bytesAt('int8'))}`;
  }
  $('#precision-note').textContent = appliedPreset === 'float' ? 'Layer toggles need a quantized preset.' : '';
}

// ---------- generation ----------

function readSettings(): Settings {
  const guidanceShown = !$('#guidance-field').hidden;
  return {
    prompt: $<HTMLTextAreaElement>('#prompt').value,
    negativePrompt: input('negative').value,
    trueCfgScale: Number(input('cfg').value),
    width: Number($<HTMLSelectElement>('#width').value),
    height: Number($<HTMLSelectElement>('#height').value),
    steps: Number(input('steps').value),
    seed: Number(input('seed').value),
    guidance: guidanceShown ? Number(input('guidance').value) : undefined,
    precision: precisionLabel(),
  };
}

/** The preset, and how many block linears the toggles moved off it. */
function precisionLabel(): string {
  const preset = presetTargets(appliedPreset);
  let changed = 0;
  for (const [name, slot] of pipe!.layerSlots()) if (slot.precision !== preset.get(name)) changed++;
  return changed === 0 ? appliedPreset : `${appliedPreset} + ${changed} layers toggled`;
}

function restoreSettings(entry: HistoryEntry): void {
  const s = entry.settings;
  $<HTMLTextAreaElement>('#prompt').value = s.prompt;
  input('negative').value = s.negativePrompt;
  input('cfg').value = String(s.trueCfgScale);
  fillSizes($<HTMLSelectElement>('#width'), s.width);
  fillSizes($<HTMLSelectElement>('#height'), s.height);
  input('steps').value = String(s.steps);
  input('seed').value = String(s.seed);
  if (s.guidance !== undefined) input('guidance').value = String(s.guidance);
  if (entry.preset !== appliedPreset && (entry.preset !== 'auto' || pipe?.autoPrecision)) {
    $<HTMLSelectElement>('#precision-preset').value = entry.preset;
    void applyPreset(entry.preset);
  }
  $('#result').setAttribute('src', entry.url);
  $<HTMLAnchorElement>('#download').href = entry.url;
  $('#prompt').focus();
}

function showProgress(p: PipelineProgress, steps: number, stepMs: number[]): void {
  const bar = $<HTMLProgressElement>('#progress');
  const text = $('#progress-text');
  bar.max = steps;
  if (p.phase === 'encode') {
    bar.value = 0;
    text.textContent = 'Encoding the prompt (CLIP + T5)…';
  } else if (p.phase === 'step') {
    stepMs.push(p.ms ?? 0);
    bar.value = p.step!;
    const mean = stepMs.reduce((a, b) => a + b, 0) / stepMs.length;
    const left = (steps - p.step!) * mean + (lastDecodeMs ?? 0);
    text.textContent = `Denoising: step ${p.step}/${p.steps} · ${formatSeconds(mean)} per step${lastDecodeMs !== undefined ? ` · about ${formatSeconds(left)} left` : ''}`;
    if (p.latent) {
      const [h, w] = [Number($<HTMLSelectElement>('#height').value) / 8, Number($<HTMLSelectElement>('#width').value) / 8];
      drawLatent($<HTMLCanvasElement>('#preview'), p.latent, h, w);
      $('#preview-figure').hidden = false;
    }
  } else if (p.phase === 'decode' && p.ms === undefined) {
    bar.value = steps;
    text.textContent = 'Decoding the image (VAE)…';
  }
}

function pngSettings(s: Settings, result: GenerateResult): Record<string, string | number> {
  const out: Record<string, string | number> = {
    Software: 'flux-w4a4 demo',
    model: modelLabel,
    prompt: s.prompt,
    negative_prompt: s.negativePrompt,
    true_cfg_scale: s.trueCfgScale,
    width: result.width,
    height: result.height,
    steps: result.steps,
    seed: result.seed,
    precision: s.precision,
  };
  if (result.guidance !== undefined) out.guidance = result.guidance;
  return out;
}

function showTimings(result: GenerateResult): void {
  const t = result.timings;
  const steps = t.stepMs.reduce((a, b) => a + b, 0);
  const rows: [string, string][] = [
    ['encode', formatSeconds(t.encodeMs)],
    ['denoise', `${formatSeconds(steps)} (${t.stepMs.length} steps, ${formatSeconds(steps / t.stepMs.length)} each)`],
    ['decode', formatSeconds(t.decodeMs)],
    ['total', formatSeconds(t.totalMs)],
    ['GPU weights', `transformer ${formatBytes(pipe!.transformer.weightBytes)}, VAE ${formatBytes(pipe!.vaeWeightBytes)}`],
    ['GPU activations (peak)', formatBytes(gpu!.pool.peakBytes)],
  ];
  const dl = $('#timings');
  dl.replaceChildren(...rows.flatMap(([term, value]) => [Object.assign(document.createElement('dt'), { textContent: term }), Object.assign(document.createElement('dd'), { textContent: value })]));
  dl.hidden = false;
}

function addHistory(entry: HistoryEntry): void {
  history.unshift(entry);
  for (const dropped of history.splice(HISTORY_LIMIT)) URL.revokeObjectURL(dropped.url);
  $('#history-empty').hidden = true;
  $('#history').replaceChildren(
    ...history.map((h) => {
      const li = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.title = `${h.settings.prompt} · seed ${h.settings.seed} · ${h.settings.steps} steps · ${h.settings.precision}`;
      button.setAttribute('aria-label', `Restore: ${button.title}`);
      button.append(Object.assign(document.createElement('img'), { src: h.url, alt: '' }), Object.assign(document.createElement('span'), { textContent: `${h.settings.precision} · ${h.settings.seed}` }));
      button.addEventListener('click', () => restoreSettings(h));
      li.append(button);
      return li;
    }),
  );
}

async function generate(): Promise<void> {
  if (!pipe || !gpu || busy) return;
  clearError();
  const settings = readSettings();
  controller = new AbortController();
  setBusy('generate');
  $('#run').hidden = false;
  const stepMs: number[] = [];
  gpu.pool.resetPeak();
  try {
    const result = await pipe.generate({
      prompt: settings.prompt,
      negativePrompt: settings.negativePrompt,
      trueCfgScale: settings.trueCfgScale,
      width: settings.width,
      height: settings.height,
      steps: settings.steps,
      seed: settings.seed,
      guidance: settings.guidance,
      signal: controller.signal,
      onProgress: (p) => showProgress(p, settings.steps, stepMs),
    });
    lastDecodeMs = result.timings.decodeMs;
    const png = encodePng(result.rgba, result.width, result.height, pngSettings(settings, result));
    const url = URL.createObjectURL(new Blob([png as Uint8Array<ArrayBuffer>], { type: 'image/png' }));
    const image = $<HTMLImageElement>('#result');
    await new Promise<void>((resolve, reject) => {
      image.onload = () => resolve();
      image.onerror = () => reject(new Error('the browser could not show the PNG'));
      image.src = url;
    });
    const download = $<HTMLAnchorElement>('#download');
    download.href = url;
    download.download = `flux-w4a4-${result.seed}.png`;
    $('#result-figure').hidden = false;
    $('#progress-text').textContent = `Done in ${formatSeconds(result.timings.totalMs)}.`;
    showTimings(result);
    addHistory({ settings, preset: appliedPreset, url });
  } catch (e) {
    $('#progress-text').textContent = isAbort(e) ? 'Cancelled.' : 'Failed.';
    showError(e);
  } finally {
    setBusy(undefined);
  }
}

// ---------- wiring ----------

function wire(): void {
  $('#error-dismiss').addEventListener('click', clearError);
  for (const radio of document.querySelectorAll<HTMLInputElement>('input[name=source]')) {
    radio.addEventListener('change', () => {
      input('model-url').hidden = modelChoice().kind !== 'url';
      input('model-folder').hidden = modelChoice().kind !== 'folder';
    });
  }
  $('#load').addEventListener('click', () => void loadModel());
  $('#load-cancel').addEventListener('click', () => controller?.abort());
  $('#precision-preset').addEventListener('change', () => {
    if (pipe) void applyPreset(selectedPreset());
  });
  $('#seed-random').addEventListener('click', () => {
    input('seed').value = String(crypto.getRandomValues(new Uint32Array(1))[0]);
  });
  $('#generate-form').addEventListener('submit', (event) => {
    event.preventDefault();
    void generate();
  });
  $('#generate-cancel').addEventListener('click', () => controller?.abort());
  $('#prompt').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      void generate();
    }
  });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && (busy === 'generate' || busy === 'load')) controller?.abort();
  });
  fillSizes($<HTMLSelectElement>('#width'), 64);
  fillSizes($<HTMLSelectElement>('#height'), 64);
}

/** A GPU context whose loss is shown in the page, with the model marked gone until the next Load. */
function startGpu(): Promise<GpuContext | undefined> {
  return showGpuStatus((lost) => {
    showError(lost);
    $('#model-summary').dataset.state = 'lost';
    $('#model-summary').textContent = 'The GPU was lost, and the model with it: press Load to start again.';
    $('#gpu-summary').dataset.state = 'error';
    $('#gpu-summary').textContent = 'WebGPU device lost.';
    setBusy(busy);
  });
}

async function start(): Promise<void> {
  wire();
  cachePanel = new CachePanel(weightCache, showError, (url, precision) => {
    const demo = url === demoModelUrl();
    document.querySelector<HTMLInputElement>(`input[name=source][value=${demo ? 'demo' : 'url'}]`)!.checked = true;
    input('model-url').value = demo ? '' : url;
    input('model-url').hidden = demo;
    $<HTMLSelectElement>('#precision-preset').value = precision;
    void loadModel();
  });
  void cachePanel.refresh();
  gpu = await startGpu();
  setBusy(undefined);
  if (!gpu) {
    $('#model-summary').textContent = 'Models need WebGPU (see above).';
    return;
  }
  await loadModel();
}

void start();
