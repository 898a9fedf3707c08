/** `forward`: one transformer call on the GPU, inputs and outputs as safetensors (golden tests, debugging). */
import { writeFile } from 'node:fs/promises';
import { formatBytes } from '../gpu/buffers.ts';
import type { FluxCheckpoint } from '../model/checkpoint.ts';
import { decodePrecisionMap, makeQuantPlan, type PrecisionMap, type PrecisionOverride, type PrecisionPreset, type PrecisionPresetName, LEGACY_FLOAT_PRESET, parsePrecisionPreset, PRECISION_PRESETS } from '../model/precision.ts';
import { resolvePrecisionSpec } from '../model/quality/auto-precision.ts';
import { sensitivityFor } from '../model/quality/calibration.ts';
import { smoothParams } from '../model/quality/smoothing.ts';
import type { RotationKind } from '../quant/hadamard.ts';
import { openTransformerWeights } from '../pipeline/load.ts';
import { FluxTransformer } from '../model/transformer.ts';
import { checkpointFromParams, loadHostModel } from '../pipeline/quality.ts';
import { TransformerRunner } from '../pipeline/transformer-runner.ts';
import { encodeSafetensors } from '../weights/safetensors-writer.ts';
import { readJson } from '../weights/sources.ts';
import { UsageError, type Command, type ParsedArgs } from './args.ts';
import { progressLine, withGpu } from './gpu.ts';
import { readInputs } from './inputs.ts';
import { calibrationFor, parseAlpha, precisionSpec } from './quality-args.ts';

const ROTATIONS: readonly RotationKind[] = ['regular', 'sylvester', 'none'];
const DEFAULT_PRECISION: PrecisionPreset = 'mixed';

export function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`--${flag} must be one of ${allowed.join(', ')} (got "${value}")`);
  return value as T;
}

/** A `--precision` preset; the legacy name 'fp32' is accepted for 'float'. */
export function presetFlag(value: string): PrecisionPreset {
  const preset = parsePrecisionPreset(value);
  if (!preset) throw new UsageError(`--precision must be one of ${PRECISION_PRESETS.join(', ')} (or ${LEGACY_FLOAT_PRESET}, the old name of float; got "${value}")`);
  return preset;
}

/** `--int8-layers` globs (repeatable or comma-separated) as precision overrides. */
export function int8Overrides(values: ParsedArgs['values']): PrecisionOverride[] {
  return ((values['int8-layers'] as string[] | undefined) ?? [])
    .flatMap((v) => v.split(','))
    .filter((p) => p !== '')
    .map((pattern) => ({ pattern, precision: 'int8' }));
}

export function asBytes(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

export const forwardCommand: Command = {
  name: 'forward',
  summary: 'run one transformer call on the GPU from reference-style inputs and write the output',
  usage:
    'forward --model <file|folder> [--config config.json] --inputs <in.safetensors> --out <out.safetensors> ' +
    '[--precision float|w8a8|w4a4|mixed|auto[:fraction]|<map.json>] [--rotation regular|sylvester|none] [--group 256] [--int8-layers <glob>]... ' +
    '[--smooth [--alpha 0.5]] [--calib <calibration.safetensors>] [--intermediates]',
  details: [
    'Inputs are named as the reference Flux.forward arguments: img, img_ids, txt, txt_ids, timesteps, y and,',
    'for guidance-distilled (dev) models, guidance. The output file holds `out` and, with --intermediates, the',
    `streams after every block. --precision defaults to ${DEFAULT_PRECISION} (a packed model: its own); --int8-layers takes glob patterns over`,
    'diffusers-style layer names (e.g. "single_transformer_blocks.*.proj_out"), repeatable or comma-separated.',
    '--precision auto[:fraction] keeps the most sensitive block linears at INT8 within that share of the',
    'parameters (default 0.2) and --smooth folds SmoothQuant into the weights first; both read the calibration',
    "file ('flux-w4a4 calibrate'), by default the one next to the model. A .json precision map (calibrate",
    '--precision-map) gives every block linear its precision, low-rank rank, rotation and group.',
  ].join('\n'),
  options: {
    model: { type: 'string' },
    config: { type: 'string' },
    inputs: { type: 'string' },
    out: { type: 'string' },
    precision: { type: 'string' },
    rotation: { type: 'string', default: 'regular' },
    group: { type: 'string', default: '256' },
    'int8-layers': { type: 'string', multiple: true },
    smooth: { type: 'boolean', default: false },
    alpha: { type: 'string', default: '0.5' },
    calib: { type: 'string' },
    intermediates: { type: 'boolean', default: false },
  },
  positionals: { min: 0, max: 0 },
  async run({ values }) {
    const required = (flag: string): string => {
      const v = values[flag];
      if (typeof v !== 'string' || v === '') throw new UsageError(`--${flag} is required`);
      return v;
    };
    const model = required('model');
    const inputsPath = required('inputs');
    const outPath = required('out');
    const precisionText = String(values.precision ?? DEFAULT_PRECISION);
    const mapFile = precisionText.endsWith('.json') ? decodePrecisionMap(await readJson(precisionText), precisionText) : undefined;
    const spec = mapFile ? undefined : precisionSpec(precisionText);
    const alpha = parseAlpha(values.alpha);
    const rotation = mapFile?.rotation ?? oneOf('rotation', String(values.rotation), ROTATIONS);
    const groupSize = mapFile?.groupSize ?? Number(values.group);
    if (!Number.isInteger(groupSize) || groupSize <= 0) throw new UsageError(`--group must be a positive integer (got "${String(values.group)}")`);
    const overrides = int8Overrides(values);

    const inputs = await readInputs(inputsPath);
    const configPath = values.config as string | undefined;
    // Undefined: open the model as it is (a source checkpoint, or a packed model at its own precision).
    let checkpoint: FluxCheckpoint | undefined;
    let preset: PrecisionPresetName | PrecisionMap | undefined = mapFile?.preset ?? (spec && 'preset' in spec ? spec.preset : undefined);
    if (preset === undefined || values.smooth) {
      // Smoothing and automatic precision work from the parameters in host memory and the calibration.
      const host = await loadHostModel(model, configPath);
      const calibration = await calibrationFor(model, host.config, values.calib as string | undefined);
      preset ??= resolvePrecisionSpec(spec!, host.config, sensitivityFor(calibration, values.smooth ? alpha : undefined));
      const params = values.smooth ? smoothParams(host.config, host.params, calibration, { alpha }) : host.params;
      checkpoint = await checkpointFromParams(params, host, values.smooth ? `${model} (smoothed)` : model);
    }
    const plannedPreset = preset;
    await withGpu(async (ctx) => {
      const loadStart = performance.now();
      const plan = { preset: plannedPreset, ranks: mapFile?.ranks, rotation, groupSize, overrides };
      // A packed model loads at its own precision unless one was asked for.
      const ownPrecision = values.precision === undefined && overrides.length === 0;
      const weights = checkpoint
        ? { source: checkpoint, plan: makeQuantPlan(checkpoint.config, plan), close: () => checkpoint.close() }
        : await openTransformerWeights(ctx, model, configPath, plan, { packedAtOwnPlan: ownPrecision });
      let transformer;
      try {
        transformer = await FluxTransformer.load(ctx, weights.source, { quant: weights.plan, onProgress: (p) => progressLine(`loading ${p.done}/${p.total} ${p.layer}`) });
      } finally {
        await weights.close();
      }
      progressLine(`loaded in ${((performance.now() - loadStart) / 1000).toFixed(1)} s: ${formatBytes(transformer.weightBytes)} of weights`, true);
      const runner = new TransformerRunner(transformer);
      try {
        const start = performance.now();
        const { out, streams } = await runner.forward(inputs, { intermediates: Boolean(values.intermediates) });
        const seconds = (performance.now() - start) / 1000;
        const { config } = transformer;
        const imageRows = out.length / config.outChannels;
        const tensors = [{ name: 'out', dtype: 'F32' as const, shape: [1, imageRows, config.outChannels], data: asBytes(out) }];
        for (const [name, data] of streams) {
          tensors.push({ name, dtype: 'F32', shape: [1, data.length / config.hiddenSize, config.hiddenSize], data: asBytes(data) });
        }
        const metadata = { precision: precisionText, smooth: String(Boolean(values.smooth)), rotation, group: String(groupSize), adapter: ctx.adapter.description || ctx.adapter.vendor };
        await writeFile(outPath, encodeSafetensors(tensors, metadata));
        const quantization = plannedPreset === 'float' ? plannedPreset : `${precisionText}${values.smooth ? ' smoothed' : ''}, ${rotation} ${groupSize}`;
        progressLine(`forward (${quantization}) in ${seconds.toFixed(2)} s, activations ${formatBytes(runner.activationBytes)}; wrote ${outPath}`, true);
      } finally {
        runner.dispose();
        transformer.destroy();
      }
    });
  },
};
