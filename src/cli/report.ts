/** `report`: every quantization method measured against the float model (CPU reference), as a table or JSON. */
import { DEFAULT_INT8_FRACTION, measureSensitivity } from '../model/quality/auto-precision.ts';
import { calibrate } from '../model/quality/calibration.ts';
import { smoothParams } from '../model/quality/smoothing.ts';
import { DEFAULT_REPORT_RANK, formatReport, qualityReport, REPORT_METHOD_IDS } from '../model/quality/report.ts';
import { findCalibration, loadHostModel } from '../pipeline/quality.ts';
import { UsageError, type Command } from './args.ts';
import { progressLine } from './gpu.ts';
import { isRandomSpec, readInputsSpec } from './inputs.ts';
import { parseAlpha } from './quality-args.ts';
import { ADHERENCE_DETAILS, adherenceReportCommand } from './adherence.ts';
import { DEFAULT_GROUP_SIZE } from '../model/precision.ts';

/** Inputs a model without calibration file is calibrated on (seeds apart from the default evaluation inputs). */
const FALLBACK_CALIBRATION = 'random:2:1';
const DEFAULT_EVALUATION = 'random:1:101';

export const reportCommand: Command = {
  name: 'report',
  summary: 'quality of every quantization method (float, W8A8, W4A4 rotations, smoothing, low-rank, mixed, auto)',
  usage: 'report --model <file|folder> [--config config.json] [--inputs <in.safetensors>|random[:calls[:seed]]] [--calib <calibration.safetensors>] [--alpha 0.5] [--rank 8] [--auto 0.2] [--methods <id,...>] [--json]\n       report --adherence --model <demo folder> [--methods <id,...>] [--group 256] [--subset <single>,<double>] [--samples <dir>] [--json]',
  details: [
    `Relative L2 error and cosine similarity of the transformer output against the float model on --inputs (default`,
    `${DEFAULT_EVALUATION}), fake-quantized on the CPU as the golden references are, and the weight bytes the GPU`,
    'engine holds. Smoothing and auto precision use the calibration next to the model (or --calib); without one',
    `the model is calibrated on ${FALLBACK_CALIBRATION} first. --methods picks rows by id (${REPORT_METHOD_IDS.join(', ')}).`,
    '--json prints the report as JSON instead of the table.',
    '',
    ADHERENCE_DETAILS,
  ].join('\n'),
  options: {
    model: { type: 'string' },
    config: { type: 'string' },
    inputs: { type: 'string', default: DEFAULT_EVALUATION },
    calib: { type: 'string' },
    alpha: { type: 'string', default: '0.5' },
    rank: { type: 'string', default: String(DEFAULT_REPORT_RANK) },
    auto: { type: 'string', default: String(DEFAULT_INT8_FRACTION) },
    methods: { type: 'string' },
    json: { type: 'boolean', default: false },
    adherence: { type: 'boolean', default: false },
    group: { type: 'string', default: String(DEFAULT_GROUP_SIZE) },
    subset: { type: 'string' },
    samples: { type: 'string' },
  },
  positionals: { min: 0, max: 0 },
  async run({ values }) {
    const model = values.model;
    if (typeof model !== 'string' || model === '') throw new UsageError('--model is required');
    if (values.adherence) return adherenceReportCommand(model, values);
    const alpha = parseAlpha(values.alpha);
    const rank = Number(values.rank);
    if (!Number.isInteger(rank) || rank < 0) throw new UsageError(`--rank must be a non-negative integer (got "${String(values.rank)}")`);
    const autoFraction = Number(values.auto);
    if (values.auto === '' || !(autoFraction >= 0 && autoFraction <= 1)) throw new UsageError(`--auto must be a fraction in [0, 1] (got "${String(values.auto)}")`);

    const only = typeof values.methods === 'string' ? values.methods.split(',').filter((m) => m !== '') : undefined;
    const unknown = only?.find((m) => !REPORT_METHOD_IDS.includes(m));
    if (unknown !== undefined) throw new UsageError(`--methods: unknown method "${unknown}" (one of ${REPORT_METHOD_IDS.join(', ')})`);
    const host = await loadHostModel(model, values.config as string | undefined);
    const { calls, source } = await readInputsSpec(String(values.inputs), host.config);
    let calibration = await findCalibration(model, host.config, values.calib as string | undefined);
    if (!calibration) {
      progressLine(`no calibration next to the model: calibrating on ${FALLBACK_CALIBRATION}`, true);
      const fallback = await readInputsSpec(FALLBACK_CALIBRATION, host.config);
      calibration = calibrate(host.config, host.params, fallback.calls, fallback.source);
    }
    // Missing sensitivities are measured on the calibration's first call (or, for a file, the evaluation call).
    const sensitivityInputs = async () => (isRandomSpec(calibration!.source) ? (await readInputsSpec(calibration!.source, host.config)).calls.slice(0, 1) : calls);
    const wanted = (id: string): boolean => only === undefined || only.includes(id);
    if (!calibration.sensitivity && wanted('auto')) {
      const sensitivity = measureSensitivity(host.config, host.params, await sensitivityInputs(), { onProgress: (d, t, l) => progressLine(`sensitivity ${d}/${t} ${l}`) });
      calibration = { ...calibration, sensitivity };
    }
    if (calibration.smoothedSensitivity?.alpha !== alpha && wanted('smooth-auto')) {
      const smoothed = smoothParams(host.config, host.params, calibration, { alpha });
      const measured = measureSensitivity(host.config, smoothed, await sensitivityInputs(), { onProgress: (d, t, l) => progressLine(`sensitivity (smoothed) ${d}/${t} ${l}`) });
      calibration = { ...calibration, smoothedSensitivity: { alpha, values: measured } };
    }
    const report = await qualityReport(host.config, host.params, calibration, calls, source, {
      alpha,
      rank,
      autoFraction,
      only,
      floatValueBytes: host.floatValueBytes,
      onProgress: (done, total, method) => progressLine(`measuring ${done}/${total} ${method}`),
    });
    progressLine('', false);
    process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatReport(report)}\n`);
  },
};
