/** `calibrate`: per-channel input maxima of every block linear (and INT4 sensitivities), saved next to the model. */
import { writeFile } from 'node:fs/promises';
import { encodePrecisionMap, makeQuantPlan } from '../model/precision.ts';
import { autoPrecisionMap, DEFAULT_INT8_FRACTION, measureSensitivity } from '../model/quality/auto-precision.ts';
import { calibrate, defaultCalibrationPath, encodeCalibration } from '../model/quality/calibration.ts';
import { loadHostModel } from '../pipeline/quality.ts';
import { UsageError, type Command } from './args.ts';
import { progressLine } from './gpu.ts';
import { readInputsSpec } from './inputs.ts';

/** Two seeded calls: enough for the tiny models' maxima; real models want a prompt set. */
const DEFAULT_INPUTS = 'random:2:1';

export const calibrateCommand: Command = {
  name: 'calibrate',
  summary: 'record per-channel input maxima and INT4 sensitivity of every block linear (CPU reference)',
  usage: 'calibrate --model <file|folder> [--config config.json] [--inputs <in.safetensors>|random[:calls[:seed]]] [--out <calibration.safetensors>] [--sensitivity-calls 1] [--absmax-only] [--precision-map <auto.json> [--auto 0.2]]',
  details: [
    `Runs the float CPU reference on the inputs (default ${DEFAULT_INPUTS}) and writes, by default next to the`,
    'model (<name>.calibration.safetensors, or calibration.safetensors in a folder), the max |x| of every input',
    'channel of every block linear (for --smooth) and, unless --absmax-only, each layer\'s output error when it',
    'alone goes INT4 instead of INT8, over the first --sensitivity-calls calls (for --precision auto).',
    '--precision-map also writes the automatic INT4/INT8 choice for an INT8 share --auto of the parameters, as',
    "a map 'forward --precision <map.json>' reads. The CPU reference holds the model as f32 in memory: meant",
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
    const host = await loadHostModel(model, values.config as string | undefined);
    const { calls, source } = await readInputsSpec(String(values.inputs), host.config);
    const start = performance.now();
    let calibration = calibrate(host.config, host.params, calls, source, (done, total) => progressLine(`calibrating: call ${done}/${total}`));
    if (!values['absmax-only']) {
      const sensitivity = measureSensitivity(host.config, host.params, calls.slice(0, sensitivityCalls), {
        onProgress: (done, total, layer) => progressLine(`sensitivity ${done}/${total} ${layer}`),
      });
      calibration = { ...calibration, sensitivity };
    }
    const out = typeof values.out === 'string' && values.out !== '' ? values.out : defaultCalibrationPath(model);
    await writeFile(out, encodeCalibration(calibration));
    if (typeof mapPath === 'string' && calibration.sensitivity) {
      const plan = makeQuantPlan(host.config, { preset: autoPrecisionMap(host.config, calibration.sensitivity, fraction) });
      await writeFile(mapPath, encodePrecisionMap(plan, host.config, `auto: ${fraction} of the block parameters INT8, sensitivities over ${source}`));
      progressLine(`wrote the automatic precision map (${fraction} INT8) to ${mapPath}`, true);
    }
    const what = calibration.sensitivity ? 'input maxima and INT4 sensitivities' : 'input maxima';
    progressLine(`${what} of ${calibration.inputAbsMax.size} layers over ${calls.length} call(s) (${source}) in ${((performance.now() - start) / 1000).toFixed(1)} s; wrote ${out}`, true);
  },
};
