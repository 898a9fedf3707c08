/** `generate`: prompt → PNG with a FLUX folder, a progress bar (phase, step i/N, ETA) on a terminal. */
import { writeFile } from 'node:fs/promises';
import cliProgress from 'cli-progress';
import { FluxPipeline, type PipelineProgress } from '../pipeline/flux-pipeline.ts';
import { encodePng } from '../pipeline/image.ts';
import { UsageError, type Command, type ParsedArgs } from './args.ts';
import { requiredFlag } from './decode.ts';
import { presetFlag } from './forward.ts';
import { progressLine } from './gpu.ts';

function optionalNumber(values: ParsedArgs['values'], flag: string, integer: boolean): number | undefined {
  const v = values[flag];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || (integer && !Number.isSafeInteger(n))) throw new UsageError(`--${flag} must be ${integer ? 'an integer' : 'a number'} (got "${String(v)}")`);
  return n;
}

/** A cli-progress bar over the steps on a TTY; one line per phase elsewhere. */
function progressReporter(): { onProgress: (p: PipelineProgress) => void; stop: () => void } {
  if (!process.stderr.isTTY) {
    return {
      onProgress: (p) => {
        if (p.phase === 'step') progressLine(`step ${p.step}/${p.steps} (${((p.ms ?? 0) / 1000).toFixed(2)} s)`, true);
        else if (p.ms !== undefined && p.phase !== 'done') progressLine(`${p.phase} ${(p.ms / 1000).toFixed(2)} s`, true);
      },
      stop: () => {},
    };
  }
  const bar = new cliProgress.SingleBar(
    { format: '{phase} [{bar}] step {value}/{total} | ETA {eta_formatted} | {elapsed}s', stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    onProgress: (p) => {
      const elapsed = (p.elapsedMs / 1000).toFixed(1);
      if (!started && p.phase === 'encode') {
        bar.start(1, 0, { phase: 'encode', elapsed });
        started = true;
      } else if (p.phase === 'step') {
        bar.setTotal(p.steps!);
        bar.update(p.step!, { phase: `step ${p.step}/${p.steps}`, elapsed });
      } else if (started) bar.update({ phase: p.phase, elapsed });
    },
    stop: () => started && bar.stop(),
  };
}

export const generateCommand: Command = {
  name: 'generate',
  summary: 'generate an image from a prompt with a FLUX folder and write a PNG',
  usage: 'generate --model <folder> --prompt <text> [--negative-prompt <text>] [--true-cfg S] [--steps N] [--seed S] [--width W] [--height H] [--guidance G] [--precision float|w8a8|w4a4|mixed] --out <x.png>',
  details: [
    'The model is a diffusers FLUX folder (model_index.json, transformer/, text_encoder/, text_encoder_2/, tokenizer/,',
    'tokenizer_2/, vae/, scheduler/). Defaults come from the model: schnell 4 steps without guidance, dev 28 steps with',
    'guidance 3.5, 1024x1024; a generation_defaults.json in the folder overrides them (the demo model public/models/flux-demo:',
    '64x64, 8 steps, true CFG 3 with the empty negative prompt). Sizes are multiples of 16.',
    'The PNG carries prompt, seed, steps, guidance, size, precision and model as text metadata. --precision defaults to',
    'mixed; a packed model (flux-w4a4 quantize) loads at the precision it was quantized at.',
  ].join('\n'),
  options: {
    model: { type: 'string' },
    prompt: { type: 'string' },
    'negative-prompt': { type: 'string' },
    'true-cfg': { type: 'string' },
    steps: { type: 'string' },
    seed: { type: 'string' },
    width: { type: 'string' },
    height: { type: 'string' },
    guidance: { type: 'string' },
    precision: { type: 'string' },
    out: { type: 'string' },
  },
  positionals: { min: 0, max: 0 },
  async run({ values }) {
    const model = requiredFlag(values, 'model');
    const prompt = requiredFlag(values, 'prompt');
    const out = requiredFlag(values, 'out');
    // Unset: mixed for a source model, a packed model's own precision.
    const precision = values.precision === undefined ? undefined : presetFlag(String(values.precision));
    const precisionLabel = precision ?? 'default';
    const options = {
      prompt,
      negativePrompt: values['negative-prompt'] as string | undefined,
      trueCfgScale: optionalNumber(values, 'true-cfg', false),
      steps: optionalNumber(values, 'steps', true),
      seed: optionalNumber(values, 'seed', true),
      width: optionalNumber(values, 'width', true),
      height: optionalNumber(values, 'height', true),
      guidance: optionalNumber(values, 'guidance', false),
    };
    const loadStart = performance.now();
    const pipe = await FluxPipeline.load(model, { precision, onProgress: (p) => progressLine(`loading ${p.detail ?? ''}`) });
    try {
      progressLine(`loaded ${pipe.name} (${precisionLabel}) in ${((performance.now() - loadStart) / 1000).toFixed(1)} s`, true);
      const reporter = progressReporter();
      let result;
      try {
        result = await pipe.generate({ ...options, onProgress: reporter.onProgress });
      } finally {
        reporter.stop();
      }
      const settings = {
        prompt,
        seed: result.seed,
        steps: result.steps,
        guidance: result.guidance ?? 'none',
        'true cfg': result.trueCfgScale,
        size: `${result.width}x${result.height}`,
        precision: precisionLabel,
        model: pipe.name,
        software: 'flux-w4a4',
      };
      await writeFile(out, encodePng(result.rgba, result.width, result.height, settings));
      const t = result.timings;
      const perStep = t.stepMs.reduce((a, b) => a + b, 0) / t.stepMs.length;
      progressLine(`encode ${(t.encodeMs / 1000).toFixed(2)} s, ${t.stepMs.length} steps at ${(perStep / 1000).toFixed(2)} s, decode ${(t.decodeMs / 1000).toFixed(2)} s; seed ${result.seed}; wrote ${out}`, true);
    } finally {
      pipe.destroy();
    }
  },
};
