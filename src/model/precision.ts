/**
 * Per-layer precision as data: a map from canonical linear name to float / int8 / int4, plus the ConvRot
 * rotation applied to quantized layers. Presets are just maps; glob overrides adjust them.
 *
 * Linears inside the blocks (q/k/v, attention out, MLP in/out) are ConvRot-quantized (weights and activations).
 * Modulation linears (norm1.linear, norm1_context.linear, single norm.linear, norm_out.linear) are quantized
 * weight-only: they see one vector per step (precomputed for all steps before the first), so only their
 * weights matter, and they are 3.2 B of FLUX's 12 B parameters. Embedders and proj_out always stay float.
 */
import { FluxError } from '../errors.ts';
import { assertRotationSize, type RotationKind } from '../quant/hadamard.ts';
import type { FluxConfig } from './config.ts';
import { canonicalLinears } from './layout.ts';

import { DEFAULT_GROUP_SIZE } from '../nn/factory.ts';
import type { LayerPrecision } from '../nn/linear.ts';

export type { LayerPrecision };
export type { RotationKind };
/** 'float' keeps every linear at the checkpoint's float dtype (bf16 stays bf16); the others quantize block linears. */
export type PrecisionPreset = 'float' | 'w8a8' | 'w4a4' | 'mixed';

export const PRECISION_PRESETS: readonly PrecisionPreset[] = ['float', 'w8a8', 'w4a4', 'mixed'];
/**
 * The first name of the 'float' preset, still accepted wherever a preset is (CLI flags, saved settings, API
 * callers). It was renamed because the preset never converts bf16 weights to f32.
 */
export const LEGACY_FLOAT_PRESET = 'fp32';
/** A preset as callers may spell it. */
export type PrecisionPresetName = PrecisionPreset | typeof LEGACY_FLOAT_PRESET;

/** The preset `name` stands for, or undefined if it names none (e.g. untyped input from a CLI flag). */
export function parsePrecisionPreset(name: string): PrecisionPreset | undefined {
  if (name === LEGACY_FLOAT_PRESET) return 'float';
  return (PRECISION_PRESETS as readonly string[]).includes(name) ? (name as PrecisionPreset) : undefined;
}
export const ROTATION_KINDS: readonly RotationKind[] = ['regular', 'sylvester', 'none'];
export { DEFAULT_GROUP_SIZE } from '../nn/factory.ts';

/** Canonical linear name → precision: what a preset expands to, or what automatic selection produced. */
export type PrecisionMap = ReadonlyMap<string, LayerPrecision>;

export interface QuantPlan {
  /** Every canonical linear of the model, by name (no `.weight`). */
  readonly layers: PrecisionMap;
  /**
   * Rank of the float low-rank branch per quantized linear (docs/quality-methods.md); absent or 0 is none.
   * Float layers have no branch.
   */
  readonly ranks?: ReadonlyMap<string, number>;
  readonly rotation: RotationKind;
  /** Rotation block size along the input dimension of quantized layers. */
  readonly groupSize: number;
}

/** A glob over canonical layer names and the precision it forces (e.g. from `--int8-layers`). */
export interface PrecisionOverride {
  readonly pattern: string;
  readonly precision: LayerPrecision;
}

export interface QuantPlanOptions {
  /** A preset name, or a whole map (e.g. from automatic selection) over the block linears. */
  readonly preset: PrecisionPresetName | PrecisionMap;
  /** Low-rank branch ranks of quantized block linears. */
  readonly ranks?: ReadonlyMap<string, number>;
  /**
   * Precision of the modulation linears (weight-only when quantized); default MODULATION_PRECISION of the preset,
   * float for a map. The golden quantized references keep them float.
   */
  readonly modulation?: LayerPrecision;
  /** Applied in order after the preset; later ones win. */
  readonly overrides?: readonly PrecisionOverride[];
  readonly rotation?: RotationKind;
  readonly groupSize?: number;
}

/**
 * The 'mixed' preset keeps these block linears at INT8, the rest INT4. This is the subset suggested in the
 * issue and in docs/convrot-method.md §4: double-block attention output and single-block V (the W8A8 layers a
 * third-party ConvRot port attributes to the paper), and single-block proj_out (K = H + M), which a paper
 * reviewer reports loses quality at 4 bits. The official mix is unpublished; tune with overrides.
 */
const MIXED_INT8_PATTERNS: readonly string[] = [
  'transformer_blocks.*.attn.to_out.0',
  'single_transformer_blocks.*.attn.to_v',
  'single_transformer_blocks.*.proj_out',
];

/** Every linear inside the double and single blocks except the modulation linears, in forward order. */
export function blockLinearNames(config: FluxConfig): string[] {
  return canonicalLinears(config)
    .filter((l) => l.role === 'block')
    .map((l) => l.name);
}

/** Every modulation linear (weight-only when quantized), in forward order. */
export function modulationLinearNames(config: FluxConfig): string[] {
  return canonicalLinears(config)
    .filter((l) => l.role === 'modulation')
    .map((l) => l.name);
}

/** The linears a precision map may set: block linears and modulation linears. */
export function quantizableLinearNames(config: FluxConfig): string[] {
  return canonicalLinears(config)
    .filter((l) => l.role === 'block' || l.role === 'modulation')
    .map((l) => l.name);
}

/**
 * Modulation precision per preset. w4a4 stores them in INT4 (what makes the stored model ~4x smaller than BF16);
 * 'mixed' leans to quality and keeps them at INT8, as their outputs (shift, scale, gate) touch every token of a
 * block; w8a8 is INT8 throughout; float keeps them float.
 */
export const MODULATION_PRECISION: Readonly<Record<PrecisionPreset, LayerPrecision>> = { float: 'float', w8a8: 'int8', w4a4: 'int4', mixed: 'int8' };

/**
 * Regular (power-of-4) rotation group sizes that divide the input width K of every block linear, so that no
 * row is zero-padded: on FLUX.1 (K = 3072, 12288, 15360) up to 1024; on a hidden-128 model (K = 128, 512,
 * 640) only 4, 16 and 64. Larger groups are still valid, at the cost of padding (more integer work and bytes).
 */
export function unpaddedRegularGroups(config: FluxConfig): number[] {
  const widths = canonicalLinears(config).filter((l) => l.role === 'block').map((l) => l.inFeatures);
  const groups: number[] = [];
  for (let g = 4; g <= Math.min(...widths); g *= 4) if (widths.every((k) => k % g === 0)) groups.push(g);
  return groups;
}

/**
 * Tiny glob: `*` matches any run of characters, dots included; everything else is literal, and the
 * pattern must match the whole name. So `transformer_blocks.*.ff.net.2` matches every double block's
 * image MLP output, and `*.attn.to_v` matches both block kinds.
 */
export function globMatch(pattern: string, name: string): boolean {
  const escaped = pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${escaped.join('.*')}$`).test(name);
}

export function presetPrecisions(name: PrecisionPresetName, config: FluxConfig): Map<string, LayerPrecision> {
  const preset = parsePrecisionPreset(name);
  if (!preset) throw new FluxError('bad-argument', `precision preset "${String(name)}" must be one of ${PRECISION_PRESETS.join(', ')}`);
  const blockPrecision: LayerPrecision = preset === 'float' ? 'float' : preset === 'w8a8' ? 'int8' : 'int4';
  const layers = new Map<string, LayerPrecision>();
  for (const linear of canonicalLinears(config)) {
    let precision: LayerPrecision = linear.role === 'block' ? blockPrecision : linear.role === 'modulation' ? MODULATION_PRECISION[preset] : 'float';
    if (preset === 'mixed' && linear.role === 'block' && MIXED_INT8_PATTERNS.some((p) => globMatch(p, linear.name))) {
      precision = 'int8';
    }
    layers.set(linear.name, precision);
  }
  return layers;
}

/**
 * Builds the quantization plan. Overrides apply to block and modulation linears; a pattern that matches none of
 * them is an error (FluxError 'bad-argument'), since it is most likely a typo or names an always-float layer.
 */
export function makeQuantPlan(config: FluxConfig, options: QuantPlanOptions): QuantPlan {
  const rotation = options.rotation ?? 'regular';
  const groupSize = options.groupSize ?? DEFAULT_GROUP_SIZE;
  assertRotationSize(rotation, groupSize);
  const quantizable = quantizableLinearNames(config);
  const layers = typeof options.preset === 'string' ? presetPrecisions(options.preset, config) : mapPrecisions(options.preset, config, quantizable);
  if (options.modulation !== undefined) for (const name of modulationLinearNames(config)) layers.set(name, options.modulation);
  for (const { pattern, precision } of options.overrides ?? []) {
    const matched = quantizable.filter((name) => globMatch(pattern, name));
    if (matched.length === 0) {
      throw new FluxError('bad-argument', `layer pattern "${pattern}" matches no block or modulation linear (e.g. "transformer_blocks.*.ff.net.2")`);
    }
    for (const name of matched) layers.set(name, precision);
  }
  const ranks = options.ranks && checkedRanks(options.ranks, config, layers);
  return { layers, ranks, rotation, groupSize };
}

/** A given map completed to every linear: quantizable linears it leaves out stay float, the rest are always float. */
function mapPrecisions(map: PrecisionMap, config: FluxConfig, quantizable: readonly string[]): Map<string, LayerPrecision> {
  const blocks = new Set(quantizable);
  for (const [name, precision] of map) {
    if (precision !== 'float' && !blocks.has(name)) throw new FluxError('bad-argument', `precision map: "${name}" is not a block or modulation linear of this model; only those can be ${precision}`);
  }
  return new Map(canonicalLinears(config).map((l) => [l.name, map.get(l.name) ?? 'float']));
}

function checkedRanks(ranks: ReadonlyMap<string, number>, config: FluxConfig, layers: PrecisionMap): ReadonlyMap<string, number> {
  const shapes = new Map(canonicalLinears(config).map((l) => [l.name, l]));
  for (const [name, rank] of ranks) {
    const linear = shapes.get(name);
    if (!linear) throw new FluxError('bad-argument', `low-rank ranks: no linear "${name}" in this model`);
    const limit = Math.min(linear.inFeatures, linear.outFeatures);
    if (!Number.isInteger(rank) || rank < 0 || rank > limit) throw new FluxError('bad-argument', `low-rank rank of ${name} must be an integer in [0, ${limit}], got ${rank}`);
    if (rank > 0 && linear.role !== 'block') throw new FluxError('bad-argument', `low-rank rank given for ${name}: the branch is for block linears only`);
    if (rank > 0 && layers.get(name) === 'float') throw new FluxError('bad-argument', `low-rank rank given for ${name}, which is float (the branch only helps quantized layers)`);
  }
  return ranks;
}

/** Marks a saved precision map (JSON) so another JSON file is not mistaken for one. */
export const PRECISION_MAP_FORMAT = 'flux-w4a4-precision-map';

/** A plan's block-linear precisions and low-rank ranks as JSON (what `--precision <file.json>` reads). */
export function encodePrecisionMap(plan: QuantPlan, config: FluxConfig, note?: string): string {
  const layers: Record<string, LayerPrecision> = {};
  for (const name of quantizableLinearNames(config)) layers[name] = plan.layers.get(name) ?? 'float';
  const ranks = Object.fromEntries([...(plan.ranks ?? [])].filter(([, r]) => r > 0));
  return `${JSON.stringify({ format: PRECISION_MAP_FORMAT, note, rotation: plan.rotation, groupSize: plan.groupSize, layers, ranks }, null, 2)}\n`;
}

/** Reads a saved precision map into makeQuantPlan options (layers as the preset, ranks, rotation, group). */
export function decodePrecisionMap(json: unknown, source: string): Required<Pick<QuantPlanOptions, 'preset' | 'ranks' | 'rotation' | 'groupSize'>> {
  const bad = (why: string): never => {
    throw new FluxError('bad-format', `${source}: ${why}`);
  };
  if (typeof json !== 'object' || json === null || (json as { format?: unknown }).format !== PRECISION_MAP_FORMAT) bad(`not a precision map (no "format": "${PRECISION_MAP_FORMAT}")`);
  const map = json as { layers?: unknown; ranks?: unknown; rotation?: unknown; groupSize?: unknown };
  const entries = (value: unknown, what: string): [string, unknown][] => {
    if (value === undefined) return [];
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return bad(`"${what}" must be an object`);
    return Object.entries(value);
  };
  const layers = new Map<string, LayerPrecision>();
  for (const [name, p] of entries(map.layers, 'layers')) {
    if (p !== 'float' && p !== 'int8' && p !== 'int4') bad(`layer ${name}: precision must be float, int8 or int4, got ${JSON.stringify(p)}`);
    layers.set(name, p as LayerPrecision);
  }
  const ranks = new Map<string, number>();
  for (const [name, r] of entries(map.ranks, 'ranks')) {
    if (typeof r !== 'number') bad(`rank of ${name} must be a number`);
    ranks.set(name, r as number);
  }
  const rotation = map.rotation ?? 'regular';
  if (!ROTATION_KINDS.includes(rotation as RotationKind)) bad(`rotation must be one of ${ROTATION_KINDS.join(', ')}`);
  const groupSize = map.groupSize ?? DEFAULT_GROUP_SIZE;
  if (typeof groupSize !== 'number') bad('groupSize must be a number');
  return { preset: layers, ranks, rotation: rotation as RotationKind, groupSize: groupSize as number };
}
