/**
 * The quality report: every quantization method of docs/quality-methods.md measured on the same inputs
 * against the float model (CPU reference, fake-quantized layers), with the weight bytes the GPU engine
 * would hold. A scorer can add a column (the demo model's prompt adherence, src/eval).
 */
import type { FluxConfig } from '../config.ts';
import type { FluxInputs } from '../inputs.ts';
import { paramGetter, type CanonicalParams } from '../params.ts';
import { FluxError } from '../../errors.ts';
import { makeQuantPlan, type QuantPlan, type RotationKind } from '../precision.ts';
import { fluxForward } from '../reference/flux-ref.ts';
import { autoPrecisionMap, DEFAULT_INT8_FRACTION } from './auto-precision.ts';
import { sensitivityFor, type Calibration } from './calibration.ts';
import { DEFAULT_SMOOTHING_ALPHA } from '../../quant/smooth.ts';
import { FakeQuantModel, outputError, planWeightBytes, type OutputError, type WeightBytes } from './evaluate.ts';
import { smoothParams } from './smoothing.ts';

/** The rank of the low-rank rows: on FLUX.1 (K = 3072) it adds under 1 % to the W4A4 bytes. */
export const DEFAULT_REPORT_RANK = 8;
/** The byte budget of the headline comparison, relative to plain W4A4. */
export const REPORT_BYTE_BUDGET = 1.25;
/** The method every other is compared with: ConvRot W4A4, regular Hadamard 256. */
export const BASELINE_METHOD = 'w4a4-regular';

/** Row ids of the report, in table order. */
export const REPORT_METHOD_IDS: readonly string[] = [
  'float',
  'w8a8-regular',
  'w4a4-none',
  'w4a4-sylvester',
  BASELINE_METHOD,
  'smooth-none',
  'smooth-regular',
  'lowrank-regular',
  'smooth-lowrank-regular',
  'mixed',
  'auto',
  'smooth-auto',
];

/** One method: its plan and the parameters it runs on (smoothed or the checkpoint's own). */
export interface ReportMethod {
  readonly id: string;
  readonly label: string;
  readonly plan: QuantPlan;
  readonly params: CanonicalParams;
}

export interface ReportRow extends OutputError {
  readonly id: string;
  readonly label: string;
  readonly weightBytes: WeightBytes;
  /** Block-linear bytes over the plain W4A4 method's. */
  readonly bytesVsW4a4: number;
  /** From the report's scorer (e.g. the demo model's prompt adherence); absent without one. */
  readonly score?: number;
}

export interface QualityReport {
  readonly rows: readonly ReportRow[];
  /** Calls the errors are measured over, and where they came from. */
  readonly calls: number;
  readonly inputs: string;
  /** Name of the scorer's column, when there is one. */
  readonly scoreName?: string;
  /**
   * The lowest-error quantized method within REPORT_BYTE_BUDGET × the W4A4 bytes, and its error reduction
   * against plain W4A4 regular 256 (when both are in the report).
   */
  readonly best?: { readonly id: string; readonly errorReduction: number };
}

export interface ReportOptions {
  /** Smoothing strength α (default 0.5). */
  readonly alpha?: number;
  readonly rank?: number;
  /** INT8 share of the block parameters for the auto methods. */
  readonly autoFraction?: number;
  /** Only these method ids (default all). */
  readonly only?: readonly string[];
  /** Checkpoint value width for float layers (2 for bf16, 4 for f32). */
  readonly floatValueBytes?: number;
  /** An extra column per method, e.g. the demo model's prompt adherence. */
  readonly scorer?: { readonly name: string; score(method: ReportMethod): Promise<number | undefined> };
  /** Checked between methods. */
  readonly signal?: AbortSignal;
  readonly onProgress?: (done: number, total: number, method: string) => void;
}

/** The methods of the report, in table order (needs sensitivities in the calibration for the auto rows). */
export function reportMethods(config: FluxConfig, params: CanonicalParams, calibration: Calibration, options: ReportOptions = {}): ReportMethod[] {
  const alpha = options.alpha ?? DEFAULT_SMOOTHING_ALPHA;
  let smoothed: CanonicalParams | undefined;
  const smooth = (): CanonicalParams => (smoothed ??= smoothParams(config, params, calibration, { alpha }));
  // The methods differ in the block linears only; modulation stays float, as in the reference method's numbers.
  const plan = (preset: Parameters<typeof makeQuantPlan>[1]['preset'], rotation: RotationKind = 'regular', ranks?: ReadonlyMap<string, number>) =>
    makeQuantPlan(config, { preset, rotation, ranks, modulation: 'float' });
  const rank = options.rank ?? DEFAULT_REPORT_RANK;
  const w4 = plan('w4a4');
  const ranks = new Map([...w4.layers].filter(([, p]) => p !== 'float').map(([name]) => [name, rank]));
  const fraction = options.autoFraction ?? DEFAULT_INT8_FRACTION;
  const methods: { id: string; label: string; make: () => ReportMethod['plan']; params: () => CanonicalParams }[] = [
    { id: 'float', label: 'float (checkpoint weights)', make: () => plan('float'), params: () => params },
    { id: 'w8a8-regular', label: 'W8A8, regular 256', make: () => plan('w8a8'), params: () => params },
    { id: 'w4a4-none', label: 'W4A4, no rotation', make: () => plan('w4a4', 'none'), params: () => params },
    { id: 'w4a4-sylvester', label: 'W4A4, Sylvester 256', make: () => plan('w4a4', 'sylvester'), params: () => params },
    { id: BASELINE_METHOD, label: 'W4A4, regular 256 (ConvRot)', make: () => w4, params: () => params },
    { id: 'smooth-none', label: `smooth α ${alpha}, W4A4 no rotation`, make: () => plan('w4a4', 'none'), params: smooth },
    { id: 'smooth-regular', label: `smooth α ${alpha} + W4A4 regular 256`, make: () => w4, params: smooth },
    { id: 'lowrank-regular', label: `low-rank r ${rank} + W4A4 regular 256`, make: () => plan('w4a4', 'regular', ranks), params: () => params },
    { id: 'smooth-lowrank-regular', label: `smooth + low-rank r ${rank} + W4A4 regular`, make: () => plan('w4a4', 'regular', ranks), params: smooth },
    { id: 'mixed', label: 'mixed preset (fixed INT8 list)', make: () => plan('mixed'), params: () => params },
    { id: 'auto', label: `auto, ${fraction} of parameters INT8`, make: () => plan(autoPrecisionMap(config, sensitivityOf(calibration, undefined), fraction)), params: () => params },
    { id: 'smooth-auto', label: `smooth + auto ${fraction}`, make: () => plan(autoPrecisionMap(config, sensitivityOf(calibration, alpha), fraction)), params: smooth },
  ];
  if (methods.some((m, i) => m.id !== REPORT_METHOD_IDS[i])) throw new Error('REPORT_METHOD_IDS is out of date');
  return methods.filter((m) => !options.only || options.only.includes(m.id)).map((m) => ({ id: m.id, label: m.label, plan: m.make(), params: m.params() }));
}

function sensitivityOf(calibration: Calibration, smoothingAlpha: number | undefined): ReadonlyMap<string, number> {
  const sensitivity = sensitivityFor(calibration, smoothingAlpha);
  if (!sensitivity) throw new FluxError('bad-argument', "the calibration has no layer sensitivities (run 'flux-w4a4 calibrate' without --absmax-only)");
  return sensitivity;
}

/** Runs every method on `inputs` and compares with the float outputs of the checkpoint's own weights. */
export async function qualityReport(
  config: FluxConfig,
  params: CanonicalParams,
  calibration: Calibration,
  inputs: readonly FluxInputs[],
  inputsSource: string,
  options: ReportOptions = {},
): Promise<QualityReport> {
  const references = inputs.map((call) => fluxForward(config, paramGetter(params), call).out);
  const methods = reportMethods(config, params, calibration, options);
  const floatBytes = options.floatValueBytes ?? 2;
  const baselineBytes = planWeightBytes(config, makeQuantPlan(config, { preset: 'w4a4' }), floatBytes).blockLinears;
  const rows: ReportRow[] = [];
  for (const [done, method] of methods.entries()) {
    options.signal?.throwIfAborted();
    const model = new FakeQuantModel(config, method.params, method.plan);
    const error = outputError(inputs.map((call) => model.forward(call)), references);
    const weightBytes = planWeightBytes(config, method.plan, floatBytes);
    const score = await options.scorer?.score(method);
    rows.push({ id: method.id, label: method.label, ...error, weightBytes, bytesVsW4a4: weightBytes.blockLinears / baselineBytes, ...(score === undefined ? {} : { score }) });
    options.onProgress?.(done + 1, methods.length, method.id);
  }
  const baseline = rows.find((r) => r.id === BASELINE_METHOD);
  const candidates = rows.filter((r) => r.id !== 'float' && r.bytesVsW4a4 <= REPORT_BYTE_BUDGET);
  const best = candidates.reduce<ReportRow | undefined>((a, b) => (a === undefined || b.relativeL2 < a.relativeL2 ? b : a), undefined);
  return {
    rows,
    calls: inputs.length,
    inputs: inputsSource,
    scoreName: options.scorer?.name,
    best: best && baseline ? { id: best.id, errorReduction: 1 - best.relativeL2 / baseline.relativeL2 } : undefined,
  };
}

const formatBytes = (bytes: number): string => (bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(2)} MiB` : `${(bytes / 2 ** 10).toFixed(1)} KiB`);

/** The report as a Markdown table (what `flux-w4a4 report` prints). */
export function formatReport(report: QualityReport): string {
  const header = ['method', 'rel. L2 error', 'cosine', 'block-linear bytes', '× W4A4', 'all weights', report.scoreName ?? 'prompt adherence'];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const r of report.rows) {
    const cells = [
      r.label,
      r.relativeL2.toFixed(4),
      r.cosine.toFixed(5),
      formatBytes(r.weightBytes.blockLinears),
      r.bytesVsW4a4.toFixed(3),
      formatBytes(r.weightBytes.total),
      r.score === undefined ? '—' : r.score.toFixed(3),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  lines.push('', `Errors against the float model over ${report.calls} call(s) (${report.inputs}).`);
  const best = report.rows.find((r) => r.id === report.best?.id);
  if (best && report.best) {
    lines[lines.length - 1] += ` Best within ${REPORT_BYTE_BUDGET}× the W4A4 bytes: ${best.label}, ${(report.best.errorReduction * 100).toFixed(1)} % lower error than W4A4 regular 256.`;
  }
  return lines.join('\n');
}
