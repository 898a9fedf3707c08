/** `calibrate`: per-channel input maxima of every block linear (and INT4 sensitivities), saved next to the model. */
import { writeFile } from 'node:fs/promises';
import { encodePrecisionMap, makeQuantPlan, MODULATION_PRECISION } from '../model/precision.ts';
import { autoPrecisionMap, DEFAULT_INT8_FRACTION, measureSensitivity } from '../model/quality/auto-precision.ts';
import { calibrate, defaultCalibrationPath, encodeCalibration, sensitivityFor } from '../model/quality/calibration.ts';
import { smoothParams } from '../model/quality/smoothing.ts';
import { loadHostModel } from '../pipeline/quality.ts';
import { UsageError, type Command } from './args.ts';
import { progressLine } from './gpu.ts';
import { readInputsSpec } from './inputs.ts';
import { parseAlpha } from './quality-args.ts';

/** Two seeded calls: enough for the tiny models' maxima; real models want a prompt set. */
const DEFAULT_INPUTS = 'random:2:1';

export const calibrateCommand: Command = {
  name: 'calibrate',
  summary: 'record per-channel input maxima and INT4 sensitivity of every block linear (CPU reference)',
  usage: 'calibrate --model <file|folder> [--config config.json] [--inputs <in.safetensors>|random[:calls[:seed]]] [--out <calibration.safetensors>] [--sensitivity-calls 1] [--absmax-only] [--smooth [--alpha 0.5]] [--precision-map <auto.json> [--auto 0.2]]',
  details: [
    `Runs the float CPU reference on the inputs (default ${DEFAULT_INPUTS}) and writes, by default next to the`,
    'model (<name>.calibration.safetensors, or calibration.safetensors in a folder), the max |x| of every input',
    'channel of every block linear (for --smooth) and, unless --absmax-only, each layer\'s output error when it',
    'alone goes INT4 instead of INT8, over the first --sensitivity-calls calls (for --precision auto). --smooth',
    'measures the sensitivities of the model smoothed with --alpha as well (for --precision auto --smooth).',
    '--precision-map also writes the automatic INT4/INT8 choice for an INT8 share --auto of the parameters, as',
    "a map 'forward --precision <map.json>' reads (modulation linears INT8, as in the mixed preset); saved as",
    "precision-auto.json in a model folder it is the demo's \"auto\" preset. The CPU reference holds the model as f32 in memory: meant",
    'for the tiny models.',
  ].join('\n'),
  options: {
    model: { type: 'string' },
    config: { type: 'string' },
    inputs: { type: 'string', default: DEFAULT_INPUTS },
    out: { type: 'string' },
    'sensitivity-calls': { type: 'string', default: '1' },
    'absmax-only': { type: 'boolean', default: false },
    'precision-map': { type: 'string' },
    smooth: { type: 'boolean', default: false },
    alpha: { type: 'string', default: '0.5' },
    auto: { type: 'string', default: String(DEFAULT_INT8_FRACTION) },
  },
  positionals: { min: 0, max: 0 },
  async run({ values }) {
    const model = values.model;
    if (typeof model !== 'string' || model === '') throw new UsageError('--model is required');
    const sensitivityCalls = Number(values['sensitivity-calls']);
    if (!Number.isInteger(sensitivityCalls) || sensitivityCalls < 1) throw new UsageError(`--sensitivity-calls must be a positive integer (got "${String(values['sensitivity-calls'])}")`);
    const mapPath = values['precision-map'];
    if (mapPath !== undefined && (typeof mapPath !== 'string' || mapPath === '' || values['absmax-only'])) throw new UsageError('--precision-map needs a file name and the sensitivities (not --absmax-only)');
    const fraction = Number(values.auto);
    if (values.auto === '' || !(fraction >= 0 && fraction <= 1)) throw new UsageError(`--auto must be a fraction in [0, 1] (got "${String(values.auto)}")`);
    const alpha = parseAlpha(values.alpha);
    const host = await loadHostModel(model, values.config as string | undefined);
    const { calls, source } = await readInputsSpec(String(values.inputs), host.config);
    const start = performance.now();
    let calibration = calibrate(host.config, host.params, calls, source, (done, total) => progressLine(`calibrating: call ${done}/${total}`));
    if (!values['absmax-only']) {
      const sensitivity = measureSensitivity(host.config, host.params, calls.slice(0, sensitivityCalls), {
        onProgress: (done, total, layer) => progressLine(`sensitivity ${done}/${total} ${layer}`),
      });
      calibration = { ...calibration, sensitivity };
      if (values.smooth) {
        const smoothed = smoothParams(host.config, host.params, calibration, { alpha });
        const measured = measureSensitivity(host.config, smoothed, calls.slice(0, sensitivityCalls), {
          onProgress: (done, total, layer) => progressLine(`sensitivity (smoothed) ${done}/${total} ${layer}`),
        });
        calibration = { ...calibration, smoothedSensitivity: { alpha, values: measured } };
      }
    }
    const out = typeof values.out === 'string' && values.out !== '' ? values.out : defaultCalibrationPath(model);
    await writeFile(out, encodeCalibration(calibration));
    if (typeof mapPath === 'string' && calibration.sensitivity) {
      // Modulation linears as the 'mixed' preset keeps them (the map's INT8 budget is over the block linears).
      const map = autoPrecisionMap(host.config, sensitivityFor(calibration, values.smooth ? alpha : undefined)!, fraction);
      const plan = makeQuantPlan(host.config, { preset: map, modulation: MODULATION_PRECISION.mixed });
      await writeFile(mapPath, encodePrecisionMap(plan, host.config, `auto: ${fraction} of the block parameters INT8, sensitivities over ${source}`));
      progressLine(`wrote the automatic precision map (${fraction} INT8) to ${mapPath}`, true);
    }
    const what = calibration.sensitivity ? 'input maxima and INT4 sensitivities' : 'input maxima';
    progressLine(`${what} of ${calibration.inputAbsMax.size} layers over ${calls.length} call(s) (${source}) in ${((performance.now() - start) / 1000).toFixed(1)} s; wrote ${out}`, true);
  },
};
