/** `smooth`: SmoothQuant folded into the weights offline, written as a checkpoint every loader reads. */
import { writeFile } from 'node:fs/promises';
import { encodeDiffusersCheckpoint } from '../model/params.ts';
import { smoothParams } from '../model/quality/smoothing.ts';
import { loadHostModel } from '../pipeline/quality.ts';
import { UsageError, type Command } from './args.ts';
import { progressLine } from './gpu.ts';
import { calibrationFor, parseAlpha } from './quality-args.ts';

export const smoothCommand: Command = {
  name: 'smooth',
  summary: 'fold calibrated SmoothQuant factors into AdaLN and V/out weights; write a diffusers-layout F32 file',
  usage: 'smooth --model <file|folder> [--config config.json] --out <smoothed.safetensors> [--calib <calibration.safetensors>] [--alpha 0.5]',
  details: 'The output computes the same function (float); quantized, its activations have flatter channel maxima.',
  options: {
    model: { type: 'string' },
    config: { type: 'string' },
    out: { type: 'string' },
    calib: { type: 'string' },
    alpha: { type: 'string', default: '0.5' },
  },
  positionals: { min: 0, max: 0 },
  async run({ values }) {
    const model = values.model;
    const out = values.out;
    if (typeof model !== 'string' || model === '') throw new UsageError('--model is required');
    if (typeof out !== 'string' || out === '') throw new UsageError('--out is required');
    const alpha = parseAlpha(values.alpha);
    const host = await loadHostModel(model, values.config as string | undefined);
    const calibration = await calibrationFor(model, host.config, values.calib as string | undefined);
    const smoothed = smoothParams(host.config, host.params, calibration, { alpha });
    await writeFile(out, encodeDiffusersCheckpoint(smoothed, host.shapes, { smoothed_from: model, smoothing_alpha: String(alpha) }));
    progressLine(`smoothed (α ${alpha}, calibration ${calibration.source}); wrote ${out}`, true);
  },
};
