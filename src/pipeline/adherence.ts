/**
 * Prompt adherence of a loaded FluxPipeline (the demo model, public/models/flux-demo) at several transformer
 * precisions: every method generates the fixed prompt set (EVAL_PROMPTS, each prompt with its own seed) at the
 * model's default size, steps and guidance; the scorer (src/eval/scorer.ts) reads each image back, and the
 * final latents are compared with the fp32 run's. Shared by `flux-w4a4 report --adherence` and the bench page.
 */
import { FluxError } from '../errors.ts';
import { EVAL_PROMPTS, type EvalPrompt } from '../eval/prompts.ts';
import { accuracy, detectScene, scoreScene, type Accuracy, type ImageScore } from '../eval/scorer.ts';
import { DEFAULT_GROUP_SIZE, makeQuantPlan, unpaddedRegularGroups, type PrecisionPreset, type RotationKind } from '../model/precision.ts';
import type { FluxPipeline, GenerateResult } from './flux-pipeline.ts';

export interface AdherenceMethod {
  readonly id: string;
  readonly label: string;
  readonly preset: PrecisionPreset;
  readonly rotation: RotationKind;
}

/** The reference every latent error is measured against; always measured first. */
export const ADHERENCE_REFERENCE = 'fp32';

/** Table order: the float reference, W8A8, the W4A4 rotation ablation, the mixed INT8/INT4 preset. */
export const ADHERENCE_METHODS: readonly AdherenceMethod[] = [
  { id: ADHERENCE_REFERENCE, label: 'fp32', preset: 'float', rotation: 'regular' },
  { id: 'w8a8-regular', label: 'W8A8, regular', preset: 'w8a8', rotation: 'regular' },
  { id: 'w4a4-none', label: 'W4A4, no rotation', preset: 'w4a4', rotation: 'none' },
  { id: 'w4a4-sylvester', label: 'W4A4, Sylvester', preset: 'w4a4', rotation: 'sylvester' },
  { id: 'w4a4-regular', label: 'W4A4, regular (ConvRot)', preset: 'w4a4', rotation: 'regular' },
  { id: 'mixed', label: 'mixed (INT8 list, rest W4A4 regular)', preset: 'mixed', rotation: 'regular' },
];
export const ADHERENCE_METHOD_IDS: readonly string[] = ADHERENCE_METHODS.map((m) => m.id);

/**
 * What the demo model must reach at fp32 (issue 11): single-object background, object colour and shape;
 * two-object object colours. Fractions.
 */
export const ADHERENCE_THRESHOLDS = {
  single: { background: 0.95, colour: 0.9, shape: 0.7 },
  double: { colour: 0.85 },
} as const;
/** W4A4 regular may lose at most this much accuracy (a fraction) on any attribute against fp32. */
export const W4A4_MAX_ACCURACY_DROP = 0.05;

export interface AdherenceRow {
  readonly id: string;
  readonly label: string;
  readonly accuracy: Accuracy;
  /** sqrt(Σ‖latent − latent_fp32‖² / Σ‖latent_fp32‖²) over all prompts; 0 for fp32 itself. */
  readonly latentRelativeL2: number;
  /** Mean wall time of one generation (encode, steps, decode). */
  readonly msPerImage: number;
}

export interface AdherenceReport {
  readonly model: string;
  readonly prompts: number;
  readonly steps: number;
  readonly trueCfgScale: number;
  readonly width: number;
  readonly height: number;
  /** Rotation group size of the quantized methods. */
  readonly groupSize: number;
  /** Regular group sizes that pad no block linear of this model (unpaddedRegularGroups). */
  readonly unpaddedGroups: readonly number[];
  readonly rows: readonly AdherenceRow[];
}

export interface AdherenceProgress {
  readonly method: string;
  /** Images done of this method, and in all. */
  readonly done: number;
  readonly total: number;
  readonly overallDone: number;
  readonly overallTotal: number;
}

export interface AdherenceOptions {
  /** Method ids (default all); fp32 is always measured, as the latent reference. */
  readonly methods?: readonly string[];
  /** Default the fixed set EVAL_PROMPTS. */
  readonly prompts?: readonly EvalPrompt[];
  /** Rotation group of the quantized methods (default 256, ConvRot's). */
  readonly groupSize?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: AdherenceProgress) => void;
  /** Each generated image with its score (e.g. for sample grids). */
  readonly onImage?: (method: AdherenceMethod, prompt: EvalPrompt, result: GenerateResult, score: ImageScore) => void;
  /** Each method's row as soon as it is measured (a long run shows results before it ends). */
  readonly onRow?: (row: AdherenceRow) => void;
}

function relativeL2(latents: readonly Float32Array[], references: readonly Float32Array[]): number {
  let error = 0;
  let norm = 0;
  latents.forEach((latent, n) => {
    const ref = references[n]!;
    for (let i = 0; i < ref.length; i++) {
      error += (latent[i]! - ref[i]!) ** 2;
      norm += ref[i]! ** 2;
    }
  });
  return Math.sqrt(error / norm);
}

/**
 * The methods `ids` names, in that order (default: table order), with the fp32 reference first: a long run can
 * put the rows that matter most early.
 */
export function adherenceMethods(ids?: readonly string[]): AdherenceMethod[] {
  const unknown = ids?.find((id) => !ADHERENCE_METHOD_IDS.includes(id));
  if (unknown !== undefined) throw new FluxError('bad-argument', `unknown adherence method "${unknown}" (one of ${ADHERENCE_METHOD_IDS.join(', ')})`);
  const wanted = [ADHERENCE_REFERENCE, ...(ids ?? ADHERENCE_METHOD_IDS).filter((id) => id !== ADHERENCE_REFERENCE)];
  return [...new Set(wanted)].map((id) => ADHERENCE_METHODS.find((m) => m.id === id)!);
}

/**
 * Generates and scores the prompt set once per method on `pipe` (its transformer linears are rebuilt per
 * method and put back as they were at the end).
 */
export async function measureAdherence(pipe: FluxPipeline, options: AdherenceOptions = {}): Promise<AdherenceReport> {
  const methods = adherenceMethods(options.methods);
  const prompts = options.prompts ?? EVAL_PROMPTS;
  if (prompts.length === 0) throw new FluxError('bad-argument', 'adherence needs at least one prompt');
  const groupSize = options.groupSize ?? DEFAULT_GROUP_SIZE;
  const config = pipe.transformer.config;
  const plans = methods.map((m) => makeQuantPlan(config, { preset: m.preset, rotation: m.rotation, groupSize }));
  const original = new Map([...pipe.layerSlots()].map(([name, slot]) => [name, slot.spec]));
  const rows: AdherenceRow[] = [];
  let references: Float32Array[] = [];
  try {
    for (const [m, method] of methods.entries()) {
      await pipe.applyQuantPlan(plans[m]!);
      const scores: ImageScore[] = [];
      const latents: Float32Array[] = [];
      const start = performance.now();
      for (const [n, prompt] of prompts.entries()) {
        options.signal?.throwIfAborted();
        const result = await pipe.generate({ prompt: prompt.prompt, seed: prompt.seed, signal: options.signal });
        const score = scoreScene(prompt.spec, detectScene(result.rgba, result.width, result.height));
        scores.push(score);
        latents.push(result.latent);
        options.onImage?.(method, prompt, result, score);
        options.onProgress?.({ method: method.id, done: n + 1, total: prompts.length, overallDone: m * prompts.length + n + 1, overallTotal: methods.length * prompts.length });
      }
      if (method.id === ADHERENCE_REFERENCE) references = latents;
      const row: AdherenceRow = {
        id: method.id,
        label: method.label,
        accuracy: accuracy(scores),
        latentRelativeL2: relativeL2(latents, references),
        msPerImage: (performance.now() - start) / prompts.length,
      };
      rows.push(row);
      options.onRow?.(row);
    }
  } finally {
    await pipe.applyLayerSpecs(original);
  }
  const d = pipe.defaults;
  return { model: pipe.name, prompts: prompts.length, steps: d.steps, trueCfgScale: d.trueCfgScale, width: d.width, height: d.height, groupSize, unpaddedGroups: unpaddedRegularGroups(config), rows };
}

/** Accuracy checks of the fp32 row against ADHERENCE_THRESHOLDS and of W4A4 regular against fp32. */
export interface AdherenceCheck {
  readonly name: string;
  readonly value: number;
  /** The bound `value` is compared with: a minimum accuracy, or for drops the maximum drop. */
  readonly bound: number;
  readonly passed: boolean;
}

const ATTRIBUTES = ['background', 'colour', 'shape', 'allCorrect'] as const;

export function adherenceChecks(report: AdherenceReport): AdherenceCheck[] {
  const row = (id: string) => report.rows.find((r) => r.id === id);
  const fp32 = row(ADHERENCE_REFERENCE)!;
  const checks: AdherenceCheck[] = [];
  // A subset without prompts of a kind has nothing to check for it.
  const groups = (['single', 'double'] as const).filter((g) => fp32.accuracy[g].images > 0);
  for (const group of groups) {
    for (const [attribute, bound] of Object.entries(ADHERENCE_THRESHOLDS[group])) {
      const value = fp32.accuracy[group][attribute as keyof typeof ADHERENCE_THRESHOLDS.single];
      checks.push({ name: `fp32 ${group} ${attribute} ≥ ${bound}`, value, bound, passed: value >= bound });
    }
  }
  const w4 = row('w4a4-regular');
  if (w4) {
    for (const group of groups) {
      for (const attribute of ATTRIBUTES.slice(0, 3)) {
        const drop = fp32.accuracy[group][attribute] - w4.accuracy[group][attribute];
        checks.push({ name: `W4A4 regular ${group} ${attribute} drop ≤ ${W4A4_MAX_ACCURACY_DROP}`, value: drop, bound: W4A4_MAX_ACCURACY_DROP, passed: drop <= W4A4_MAX_ACCURACY_DROP + 1e-9 });
      }
    }
  }
  const none = row('w4a4-none');
  if (w4 && none) {
    const lowerScore = none.accuracy.all.allCorrect < w4.accuracy.all.allCorrect;
    const largerError = none.latentRelativeL2 > w4.latentRelativeL2;
    checks.push({ name: 'no rotation: lower all-correct or larger latent error than regular', value: none.latentRelativeL2 - w4.latentRelativeL2, bound: 0, passed: lowerScore || largerError });
  }
  return checks;
}

const percent = (v: number) => (100 * v).toFixed(1);

/** The report's rows as text cells (accuracies in %), header first: the Markdown table's and the bench page's. */
export function adherenceTable(report: AdherenceReport): string[][] {
  const header = ['method', ...ATTRIBUTES.map((a) => `1 obj ${a === 'allCorrect' ? 'all' : a}`), ...ATTRIBUTES.map((a) => `2 obj ${a === 'allCorrect' ? 'all' : a}`), 'latent rel. L2', 's / image'];
  const rows = report.rows.map((r) => [r.label, ...ATTRIBUTES.map((a) => percent(r.accuracy.single[a])), ...ATTRIBUTES.map((a) => percent(r.accuracy.double[a])), r.latentRelativeL2.toFixed(4), (r.msPerImage / 1000).toFixed(1)]);
  return [header, ...rows];
}

/** The report as a Markdown table (percentages), followed by the checks. */
export function formatAdherence(report: AdherenceReport): string {
  const [header, ...rows] = adherenceTable(report);
  const lines = [`| ${header!.join(' | ')} |`, `|${header!.map(() => '---').join('|')}|`, ...rows.map((cells) => `| ${cells.join(' | ')} |`)];
  const single = report.rows[0]!.accuracy.single.images;
  const double = report.rows[0]!.accuracy.double.images;
  lines.push(
    '',
    `${report.model}: ${single} single-object and ${double} two-object prompts (accuracy in %), ${report.width}x${report.height}, ${report.steps} steps, true CFG ${report.trueCfgScale}, rotation group ${report.groupSize} (sizes that pad no layer of this model: ${report.unpaddedGroups.join(', ')}).`,
    '',
    ...adherenceChecks(report).map((c) => `- ${c.passed ? 'met' : 'NOT met'}: ${c.name} (${c.value.toFixed(3)})`),
  );
  return lines.join('\n');
}
