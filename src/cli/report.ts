/** `report`: every quantization method measured against the float model (CPU reference), as a table or JSON. */
import { DEFAULT_INT8_FRACTION, measureSensitivity } from '../model/quality/auto-precision.ts';
import { calibrate } from '../model/quality/calibration.ts';
import { DEFAULT_REPORT_RANK, formatReport, qualityReport, REPORT_METHOD_IDS } from '../model/quality/report.ts';
import { findCalibration, loadHostModel } from '../pipeline/quality.ts';
import { UsageError, type Command } from './args.ts';
import { progressLine } from './gpu.ts';
import { isRandomSpec, readInputsSpec } from './inputs.ts';
import { parseAlpha } from './quality-args.ts';

/** Inputs a model without calibration file is calibrated on (seeds apart from the default evaluation inputs). */
const FALLBACK_CALIBRATION = 'random:2:1';
const DEFAULT_EVALUATION = 'random:1:101';

export const reportCommand: Command = {
  name: 'report',
  summary: 'quality of every quantization method (float, W8A8, W4A4 rotations, smoothing, low-rank, mixed, auto)',
  usage: 'report --model <file|folder> [--config config.json] [--inputs <in.safetensors>|random[:calls[:seed]]] [--calib <calibration.safetensors>] [--alpha 0.5] [--rank 8] [--auto 0.2] [--methods <id,...>] [--json]',
  details: [
    `Relative L2 error and cosine similarity of the transformer output against the float model on --inputs (default`,
    `${DEFAULT_EVALUATION}), fake-quantized on the CPU as the golden references are, and the weight bytes the GPU`,
    'engine holds. Smoothing and auto precision use the calibration next to the model (or --calib); without one',
    `the model is calibrated on ${FALLBACK_CALIBRATION} first. --methods picks rows by id (${REPORT_METHOD_IDS.join(', ')}).`,
    '--json prints the report as JSON instead of the table.',
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
  },
  positionals: { min: 0, max: 0 },
  async run({ values }) {
    const model = values.model;
    if (typeof model !== 'string' || model === '') throw new UsageError('--model is required');
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
    if (!calibration.sensitivity) {
      const sensitivityInputs = isRandomSpec(calibration.source) ? (await readInputsSpec(calibration.source, host.config)).calls.slice(0, 1) : calls;
      calibration = {
        ...calibration,
        sensitivity: measureSensitivity(host.config, host.params, sensitivityInputs, { onProgress: (d, t, l) => progressLine(`sensitivity ${d}/${t} ${l}`) }),
      };
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
