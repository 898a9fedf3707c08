/** `report --adherence`: the demo model's prompt adherence at every precision, generated on the GPU. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encode } from 'fast-png';
import { EVAL_DOUBLE_COUNT, EVAL_SINGLE_COUNT, evalPromptSubset } from '../eval/prompts.ts';
import { ADHERENCE_METHOD_IDS, formatAdherence, measureAdherence } from '../pipeline/adherence.ts';
import { FluxPipeline } from '../pipeline/flux-pipeline.ts';
import { assertRotationSize } from '../quant/hadamard.ts';
import { tileImages } from '../pipeline/image.ts';
import { UsageError, type ParsedArgs } from './args.ts';
import { progressLine } from './gpu.ts';

/** Sample grids: this many images a row, each pixel shown 2×2. */
const GRID_COLUMNS = 8;
const GRID_SCALE = 2;

export const ADHERENCE_DETAILS = [
  '--adherence: generates the fixed prompt set (src/eval/prompts.ts: 32 single-object and 16 two-object captions, each',
  'with its seed) on the GPU at the model\'s defaults (generation_defaults.json), once per method',
  `(${ADHERENCE_METHOD_IDS.join(', ')}; fp32 always runs as the reference), scores each image (background, object`,
  'colours and shapes, all correct) and gives the relative L2 error of the final latents against fp32. --group sets the',
  'rotation group (default 256; groups larger than a layer\'s K, or not dividing it, zero-pad it), --subset',
  '<single>,<double> takes the first prompts of each kind, --samples <dir> writes one PNG grid per method.',
].join('\n');

function parseSubset(value: unknown): ReturnType<typeof evalPromptSubset> | undefined {
  if (value === undefined) return undefined;
  const parts = String(value).split(',').map(Number);
  if (parts.length !== 2 || parts.some((n) => !Number.isInteger(n))) {
    throw new UsageError(`--subset must be <single>,<double> (at most ${EVAL_SINGLE_COUNT},${EVAL_DOUBLE_COUNT}), got "${String(value)}"`);
  }
  return evalPromptSubset(parts[0]!, parts[1]!);
}

export async function adherenceReportCommand(model: string, values: ParsedArgs['values']): Promise<void> {
  const methods = typeof values.methods === 'string' ? values.methods.split(',').filter((m) => m !== '') : undefined;
  const unknown = methods?.find((m) => !ADHERENCE_METHOD_IDS.includes(m));
  if (unknown !== undefined) throw new UsageError(`--methods: unknown adherence method "${unknown}" (one of ${ADHERENCE_METHOD_IDS.join(', ')})`);
  const groupSize = Number(values.group);
  if (!Number.isInteger(groupSize) || groupSize <= 0) throw new UsageError(`--group must be a positive integer (got "${String(values.group)}")`);
  // Every quantized method but 'none' rotates, most of them with the regular transform: check before loading.
  assertRotationSize('regular', groupSize);
  const prompts = parseSubset(values.subset);
  const samples = typeof values.samples === 'string' ? values.samples : undefined;
  const pipe = await FluxPipeline.load(model, { precision: 'float', onProgress: (p) => progressLine(`loading ${p.detail ?? ''}`) });
  try {
    const images = new Map<string, Uint8ClampedArray[]>();
    let size = { width: 0, height: 0 };
    const report = await measureAdherence(pipe, {
      methods,
      prompts,
      groupSize,
      onProgress: (p) => progressLine(`${p.method} ${p.done}/${p.total} (${p.overallDone}/${p.overallTotal} in all)`),
      onRow: (row) => progressLine(`${row.id}: ${JSON.stringify({ single: row.accuracy.single, double: row.accuracy.double, latentRelativeL2: row.latentRelativeL2 })}`, true),
      onImage: samples === undefined ? undefined : (method, _prompt, result) => {
        size = { width: result.width, height: result.height };
        images.set(method.id, [...(images.get(method.id) ?? []), result.rgba]);
      },
    });
    progressLine('', false);
    if (samples !== undefined) {
      await mkdir(samples, { recursive: true });
      for (const [id, list] of images) {
        const grid = tileImages(list, size.width, size.height, 4, GRID_COLUMNS, GRID_SCALE);
        await writeFile(join(samples, `${id}.png`), encode({ ...grid, channels: 4, depth: 8 }));
      }
    }
    process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatAdherence(report)}\n`);
  } finally {
    pipe.destroy();
  }
}
