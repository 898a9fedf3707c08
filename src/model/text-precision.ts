/**
 * Precision of the text encoders' linears: a preset for every linear of a model, or an explicit map from
 * linear name (checkpoint name without `.weight`) to float / int8 / int4. Embeddings, norms and T5's bias
 * table always stay float. Quantized linears use ConvRot's regular Hadamard on groups of 256 inputs.
 */
import { FluxError } from '../errors.ts';
import { DEFAULT_GROUP_SIZE, LEGACY_FLOAT_PRESET, type LayerPrecision, type QuantPlan } from './precision.ts';

export type TextPrecisionPreset = 'float' | 'w8a8' | 'w4a4';
export const TEXT_PRECISION_PRESETS: readonly TextPrecisionPreset[] = ['float', 'w8a8', 'w4a4'];
/** A preset as callers may spell it ('fp32' is the old name of 'float', see LEGACY_FLOAT_PRESET). */
export type TextPrecisionPresetName = TextPrecisionPreset | typeof LEGACY_FLOAT_PRESET;

/** A preset, or precisions by linear name (names not listed stay float). */
export type TextPrecision = TextPrecisionPresetName | ReadonlyMap<string, LayerPrecision>;

const PRESET_PRECISION: Readonly<Record<TextPrecisionPresetName, LayerPrecision>> = {
  float: 'float',
  [LEGACY_FLOAT_PRESET]: 'float',
  w8a8: 'int8',
  w4a4: 'int4',
};

/** The plan for a model whose linears are `linearNames`; a map may also hold the other encoder's names, which are ignored. */
export function textQuantPlan(linearNames: readonly string[], precision: TextPrecision, what: string): QuantPlan {
  const layers = new Map<string, LayerPrecision>();
  if (typeof precision === 'string') {
    const p = Object.hasOwn(PRESET_PRECISION, precision) ? PRESET_PRECISION[precision] : undefined;
    if (!p) throw new FluxError('bad-argument', `${what}: precision "${precision}" must be one of ${TEXT_PRECISION_PRESETS.join(', ')}`);
    for (const name of linearNames) layers.set(name, p);
  } else {
    const known = new Set(linearNames);
    for (const [name, p] of precision) {
      if (!known.has(name)) continue;
      layers.set(name, p);
    }
  }
  return { layers, rotation: 'regular', groupSize: DEFAULT_GROUP_SIZE };
}
