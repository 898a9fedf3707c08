/**
 * Per-layer precision as data: a map from canonical linear name to float / int8 / int4, plus the ConvRot
 * rotation applied to quantized layers. Presets are just maps; glob overrides adjust them.
 *
 * Only linears inside the blocks (q/k/v, attention out, MLP in/out) are ever quantized. Embedders,
 * modulation linears (norm1.linear, norm1_context.linear, single norm.linear) and the final layer
 * (norm_out.linear, proj_out) always stay float, as in the golden references.
 */
import { FluxError } from '../errors.ts';
import { assertRotationSize, type RotationKind } from '../quant/hadamard.ts';
import type { FluxConfig } from './config.ts';
import { canonicalLinears } from './layout.ts';

import { DEFAULT_GROUP_SIZE } from '../nn/factory.ts';
import type { LayerPrecision } from '../nn/linear.ts';

export type { LayerPrecision };
export type { RotationKind };
export type PrecisionPreset = 'fp32' | 'w8a8' | 'w4a4' | 'mixed';

export const PRECISION_PRESETS: readonly PrecisionPreset[] = ['fp32', 'w8a8', 'w4a4', 'mixed'];
export const ROTATION_KINDS: readonly RotationKind[] = ['regular', 'sylvester', 'none'];
export { DEFAULT_GROUP_SIZE } from '../nn/factory.ts';

export interface QuantPlan {
  /** Every canonical linear of the model, by name (no `.weight`). */
  readonly layers: ReadonlyMap<string, LayerPrecision>;
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
  readonly preset: PrecisionPreset;
  /** Applied in order after the preset; later ones win. */
  readonly overrides?: readonly PrecisionOverride[];
  readonly rotation?: RotationKind;
  readonly groupSize?: number;
}

/**
 * The 'mixed' preset keeps these block linears at INT8, the rest INT4. This is the subset suggested in the
 * issue and in docs/convrot.md §3: double-block attention output and single-block V (the W8A8 layers a
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

/**
 * Tiny glob: `*` matches any run of characters, dots included; everything else is literal, and the
 * pattern must match the whole name. So `transformer_blocks.*.ff.net.2` matches every double block's
 * image MLP output, and `*.attn.to_v` matches both block kinds.
 */
export function globMatch(pattern: string, name: string): boolean {
  const escaped = pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${escaped.join('.*')}$`).test(name);
}

export function presetPrecisions(preset: PrecisionPreset, config: FluxConfig): Map<string, LayerPrecision> {
  const blockPrecision: LayerPrecision = preset === 'fp32' ? 'float' : preset === 'w8a8' ? 'int8' : 'int4';
  const layers = new Map<string, LayerPrecision>();
  for (const linear of canonicalLinears(config)) {
    let precision: LayerPrecision = linear.role === 'block' ? blockPrecision : 'float';
    if (preset === 'mixed' && linear.role === 'block' && MIXED_INT8_PATTERNS.some((p) => globMatch(p, linear.name))) {
      precision = 'int8';
    }
    layers.set(linear.name, precision);
  }
  return layers;
}

/**
 * Builds the quantization plan. Overrides apply to block linears only; a pattern that matches none of
 * them is an error (FluxError 'bad-argument'), since it is most likely a typo or names an always-float layer.
 */
export function makeQuantPlan(config: FluxConfig, options: QuantPlanOptions): QuantPlan {
  const rotation = options.rotation ?? 'regular';
  const groupSize = options.groupSize ?? DEFAULT_GROUP_SIZE;
  assertRotationSize(rotation, groupSize);
  const layers = presetPrecisions(options.preset, config);
  const quantizable = blockLinearNames(config);
  for (const { pattern, precision } of options.overrides ?? []) {
    const matched = quantizable.filter((name) => globMatch(pattern, name));
    if (matched.length === 0) {
      throw new FluxError('bad-argument', `layer pattern "${pattern}" matches no block linear (e.g. "transformer_blocks.*.ff.net.2")`);
    }
    for (const name of matched) layers.set(name, precision);
  }
  return { layers, rotation, groupSize };
}
