/**
 * Automatic INT4/INT8 selection. Sensitivity of a block linear: how much the model output moves when only
 * that layer goes from INT8 to INT4 (everything else INT8), on calibration inputs:
 *     sens_ℓ = ‖y(ℓ at INT4) − y(all INT8)‖₂ / ‖y_float‖₂
 * Errors of different layers add roughly in quadrature, so keeping ℓ at INT8 buys about sens_ℓ² of squared
 * output error for its parameter count. The greedy choice takes layers by sens_ℓ² per parameter, largest
 * first, while the INT8 parameters stay within the budget (a fraction of all block-linear parameters).
 */
import { FluxError } from '../../errors.ts';
import type { FluxConfig } from '../config.ts';
import type { FluxInputs } from '../inputs.ts';
import { canonicalLinears } from '../layout.ts';
import { paramGetter, type CanonicalParams } from '../params.ts';
import { type LayerPrecision, makeQuantPlan, type PrecisionMap, parsePrecisionPreset, type PrecisionPreset, PRECISION_PRESETS, type QuantPlan, type RotationKind } from '../precision.ts';
import { fluxForward, type LinearHook } from '../reference/flux-ref.ts';
import { FakeQuantModel } from './evaluate.ts';

/** Default INT8 budget: about the share of the 'mixed' preset (docs/convrot-method.md §4), ~1.2× the W4A4 bytes. */
export const DEFAULT_INT8_FRACTION = 0.2;

export interface SensitivityOptions {
  readonly rotation?: RotationKind;
  readonly groupSize?: number;
  /** Only these block linears (default all). */
  readonly layers?: readonly string[];
  /** Checked between layers (the CPU work itself is synchronous: run it in a worker to keep a page responsive). */
  readonly signal?: AbortSignal;
  readonly onProgress?: (done: number, total: number, layer: string) => void;
}

/**
 * sens_ℓ for every block linear. Each run differs from the all-INT8 run only from layer ℓ's first call on,
 * so the calls before it replay the all-INT8 run's outputs instead of recomputing them.
 */
export function measureSensitivity(config: FluxConfig, params: CanonicalParams, inputs: readonly FluxInputs[], options: SensitivityOptions = {}): Map<string, number> {
  const blocks = canonicalLinears(config).filter((l) => l.role === 'block').map((l) => l.name);
  const unknown = options.layers?.find((name) => !blocks.includes(name));
  if (unknown) throw new FluxError('bad-argument', `sensitivity: "${unknown}" is not a block linear of this model`);
  const names = options.layers ?? blocks;
  options.signal?.throwIfAborted();
  const plan = (int4?: string): QuantPlan =>
    makeQuantPlan(config, { preset: 'w8a8', rotation: options.rotation, groupSize: options.groupSize, overrides: int4 ? [{ pattern: int4, precision: 'int4' }] : [] });
  const getParam = paramGetter(params);
  const int8 = new FakeQuantModel(config, params, plan());
  const int4 = new FakeQuantModel(config, params, makeQuantPlan(config, { preset: 'w4a4', rotation: options.rotation, groupSize: options.groupSize }));

  const floatNorms: number[] = [];
  const baselines = inputs.map((call) => {
    const trace: { name: string; y: Float32Array }[] = [];
    const out = fluxForward(config, getParam, call, (name, x, rows) => {
      const y = int8.hook(name, x, rows);
      trace.push({ name, y });
      return y;
    }).out;
    floatNorms.push(fluxForward(config, getParam, call).out.reduce((s, v) => s + v * v, 0));
    return { out, trace };
  });

  const sensitivity = new Map<string, number>();
  for (const [done, layer] of names.entries()) {
    options.signal?.throwIfAborted();
    let diff = 0;
    for (const [c, call] of inputs.entries()) {
      const { out: base, trace } = baselines[c]!;
      const first = trace.findIndex((t) => t.name === layer);
      let index = 0;
      const hook: LinearHook = (name, x, rows) => {
        const i = index++;
        if (i < first) return trace[i]!.y;
        return name === layer ? int4.hook(name, x, rows) : int8.hook(name, x, rows);
      };
      const out = fluxForward(config, getParam, call, hook).out;
      for (let i = 0; i < out.length; i++) diff += (out[i]! - base[i]!) ** 2;
    }
    sensitivity.set(layer, Math.sqrt(diff / floatNorms.reduce((a, b) => a + b, 0)));
    options.onProgress?.(done + 1, names.length, layer);
  }
  return sensitivity;
}

/**
 * The greedy INT8 choice under a budget of `int8Fraction` of the block-linear parameters; every other block
 * linear is INT4. A map for makeQuantPlan's `preset` (and the demo's "auto" preset).
 */
export function autoPrecisionMap(config: FluxConfig, sensitivity: ReadonlyMap<string, number>, int8Fraction = DEFAULT_INT8_FRACTION): Map<string, LayerPrecision> {
  if (!(int8Fraction >= 0 && int8Fraction <= 1)) throw new FluxError('bad-argument', `the INT8 fraction must be in [0, 1], got ${int8Fraction}`);
  const blocks = canonicalLinears(config).filter((l) => l.role === 'block');
  const missing = blocks.find((l) => !sensitivity.has(l.name));
  if (missing) throw new FluxError('bad-argument', `no sensitivity for ${missing.name} (measure it with 'flux-w4a4 calibrate')`);
  const paramsOf = (l: { inFeatures: number; outFeatures: number }): number => l.inFeatures * l.outFeatures;
  const budget = int8Fraction * blocks.reduce((n, l) => n + paramsOf(l), 0);
  const byGain = [...blocks].sort((a, b) => sensitivity.get(b.name)! ** 2 / paramsOf(b) - sensitivity.get(a.name)! ** 2 / paramsOf(a));
  const map = new Map<string, LayerPrecision>(blocks.map((l) => [l.name, 'int4']));
  let used = 0;
  for (const l of byGain) {
    if (used + paramsOf(l) > budget) continue;
    map.set(l.name, 'int8');
    used += paramsOf(l);
  }
  return map;
}

/** A `--precision` value: a preset, or `auto` with an optional INT8 fraction (`auto:0.25`). */
export type PrecisionSpec = { readonly preset: PrecisionPreset } | { readonly auto: number };

export function parsePrecisionSpec(text: string): PrecisionSpec {
  const preset = parsePrecisionPreset(text);
  if (preset) return { preset };
  const auto = /^auto(?::(.*))?$/.exec(text);
  if (auto) {
    const fraction = auto[1] === undefined ? DEFAULT_INT8_FRACTION : Number(auto[1]);
    if (auto[1] === '' || !(fraction >= 0 && fraction <= 1)) throw new FluxError('bad-argument', `precision "${text}": the INT8 fraction after "auto:" must be a number in [0, 1]`);
    return { auto: fraction };
  }
  throw new FluxError('bad-argument', `precision must be one of ${PRECISION_PRESETS.join(', ')} or auto[:fraction], got "${text}"`);
}

/** The preset or map a spec stands for; `auto` needs the calibrated sensitivities. */
export function resolvePrecisionSpec(spec: PrecisionSpec, config: FluxConfig, sensitivity: ReadonlyMap<string, number> | undefined): PrecisionPreset | PrecisionMap {
  if ('preset' in spec) return spec.preset;
  if (!sensitivity) throw new FluxError('bad-argument', "precision auto needs layer sensitivities: run 'flux-w4a4 calibrate' on the model first");
  return autoPrecisionMap(config, sensitivity, spec.auto);
}
