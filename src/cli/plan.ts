/** `plan`: GPU memory per component of a FLUX model at a precision and size, from the checkpoint headers alone. */
import { FluxError } from '../errors.ts';
import { resolvePipelineSource } from '../pipeline/flux-pipeline.ts';
import { openTransformerCheckpoint } from '../pipeline/load.ts';
import { formatPlan, planMemory, WEBGPU_DEFAULT_MAX_BINDING, type PlanSources } from '../pipeline/plan.ts';
import { openCheckpoint, type TensorReader } from '../weights/safetensors.ts';
import { optionalNumber, UsageError, type Command } from './args.ts';
import { requiredFlag } from './decode.ts';
import { presetFlag } from './forward.ts';

const BYTE_UNITS: Readonly<Record<string, number>> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** `8GiB`, `8e9`, `12GB`, `4096MiB` → bytes. */
export function parseBytes(flag: string, text: string): number {
  const match = /^\s*([0-9]+(?:\.[0-9]+)?(?:e[0-9]+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = match ? BYTE_UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || unit === undefined) throw new UsageError(`--${flag} must be a byte count such as 8589934592, 8GiB or 8GB (got "${text}")`);
  return Math.round(Number(match[1]) * unit);
}

async function optionalReader(location: string): Promise<TensorReader | undefined> {
  try {
    return await openCheckpoint(location);
  } catch (e) {
    if (e instanceof FluxError && e.code === 'io') return undefined;
    throw e;
  }
}

/** The headers of what `model` names: a FLUX folder (every component found), or one transformer file. */
export async function openPlanSources(model: string): Promise<PlanSources> {
  if (model.endsWith('.safetensors') || model.endsWith('.json')) return { transformer: await openTransformerCheckpoint(model) };
  const source = await resolvePipelineSource(model);
  const transformer = await openTransformerCheckpoint(source.transformer, source.transformerConfig);
  return {
    transformer,
    t5: source.text.t5 === undefined ? undefined : await optionalReader(source.text.t5),
    clip: source.text.clip === undefined ? undefined : await optionalReader(source.text.clip),
    vae: await optionalReader(source.vae),
  };
}

export const planCommand: Command = {
  name: 'plan',
  summary: 'GPU memory per component (transformer, modulation, T5, CLIP, VAE, activations) from the checkpoint headers',
  usage: 'plan --model <folder | transformer.safetensors> [--precision float|w8a8|w4a4|mixed] [--width W --height H] [--steps N] [--budget BYTES] [--max-binding BYTES] [--json]',
  details: [
    'Reads headers and configs only, never tensor data. Resident bytes are those on the GPU while denoising at',
    'W x H (default 1024 x 1024): the text encoders and the modulation weights are released before the first step.',
    'With --budget (e.g. 8GiB) and a plan over it, blocks are kept in CPU memory and streamed each step, one ahead.',
    `--max-binding is the adapter's maxStorageBufferBindingSize (default ${WEBGPU_DEFAULT_MAX_BINDING}, WebGPU's default).`,
    '--json prints one JSON object (sourceBytes, weightBytes, residentBytes, peakBytes, components, ...).',
  ].join('\n'),
  options: {
    model: { type: 'string' },
    precision: { type: 'string', default: 'mixed' },
    width: { type: 'string' },
    height: { type: 'string' },
    steps: { type: 'string' },
    budget: { type: 'string' },
    'max-binding': { type: 'string' },
    json: { type: 'boolean' },
  },
  positionals: { min: 0, max: 0 },
  async run({ values }) {
    const model = requiredFlag(values, 'model');
    const precision = presetFlag(String(values.precision));
    const sources = await openPlanSources(model);
    try {
      const plan = planMemory(sources, {
        precision,
        width: optionalNumber(values, 'width', true),
        height: optionalNumber(values, 'height', true),
        steps: optionalNumber(values, 'steps', true),
        budget: values.budget === undefined ? undefined : parseBytes('budget', String(values.budget)),
        maxBindingBytes: values['max-binding'] === undefined ? undefined : parseBytes('max-binding', String(values['max-binding'])),
      });
      process.stdout.write(values.json ? `${JSON.stringify(plan)}\n` : `${formatPlan(plan)}\n`);
    } finally {
      await Promise.all([sources.transformer.close(), sources.t5?.close(), sources.clip?.close(), sources.vae?.close()]);
    }
  },
};
