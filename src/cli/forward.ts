/** `forward`: one transformer call on the GPU, inputs and outputs as safetensors (golden tests, debugging). */
import { writeFile } from 'node:fs/promises';
import { FluxError } from '../errors.ts';
import { formatBytes } from '../gpu/buffers.ts';
import { PRECISION_PRESETS, type PrecisionOverride, type PrecisionPreset } from '../model/precision.ts';
import { quantizedLinear } from '../nn/conv-linear.ts';
import type { RotationKind } from '../quant/hadamard.ts';
import { loadTransformer, openTransformerCheckpoint } from '../pipeline/load.ts';
import type { FluxInputs } from '../model/inputs.ts';
import { TransformerRunner } from '../pipeline/transformer-runner.ts';
import { encodeSafetensors } from '../weights/safetensors-writer.ts';
import { openCheckpoint, type TensorReader } from '../weights/safetensors.ts';
import { UsageError, type Command } from './args.ts';
import { progressLine, withGpu } from './gpu.ts';

const ROTATIONS: readonly RotationKind[] = ['regular', 'sylvester', 'none'];
const DEFAULT_PRECISION: PrecisionPreset = 'mixed';

export function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`--${flag} must be one of ${allowed.join(', ')} (got "${value}")`);
  return value as T;
}

/** A reference-style input: [1, rows, cols] (or without the batch dimension) as flat float32. */
export async function readInput(file: TensorReader, name: string, optional = false): Promise<Float32Array | undefined> {
  if (!file.has(name)) {
    if (optional) return undefined;
    throw new FluxError('bad-format', `${file.name}: missing input tensor "${name}"`);
  }
  const { shape } = file.info(name);
  if (shape.length === 3 && shape[0] !== 1) throw new FluxError('bad-shape', `${file.name}: "${name}" has batch ${shape[0]}; only batch 1 is supported`);
  return file.readFloat32(name);
}

function scalar(name: string, values: Float32Array): number {
  if (values.length !== 1) throw new FluxError('bad-shape', `input "${name}" must hold one value, has ${values.length}`);
  return values[0]!;
}

async function readInputs(path: string): Promise<FluxInputs> {
  const file = await openCheckpoint(path);
  try {
    const guidance = await readInput(file, 'guidance', true);
    return {
      img: (await readInput(file, 'img'))!,
      imgIds: (await readInput(file, 'img_ids'))!,
      txt: (await readInput(file, 'txt'))!,
      txtIds: (await readInput(file, 'txt_ids'))!,
      timestep: scalar('timesteps', (await readInput(file, 'timesteps'))!),
      y: (await readInput(file, 'y'))!,
      guidance: guidance && scalar('guidance', guidance),
    };
  } finally {
    await file.close();
  }
}

export function asBytes(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

export const forwardCommand: Command = {
  name: 'forward',
  summary: 'run one transformer call on the GPU from reference-style inputs and write the output',
  usage:
    'forward --model <file|folder> [--config config.json] --inputs <in.safetensors> --out <out.safetensors> ' +
    '[--precision fp32|w8a8|w4a4|mixed] [--rotation regular|sylvester|none] [--group 256] [--int8-layers <glob>]... [--intermediates]',
  details: [
    'Inputs are named as the reference Flux.forward arguments: img, img_ids, txt, txt_ids, timesteps, y and,',
    'for guidance-distilled (dev) models, guidance. The output file holds `out` and, with --intermediates, the',
    `streams after every block. --precision defaults to ${DEFAULT_PRECISION}; --int8-layers takes glob patterns over`,
    'diffusers-style layer names (e.g. "single_transformer_blocks.*.proj_out"), repeatable or comma-separated.',
  ].join('\n'),
  options: {
    model: { type: 'string' },
    config: { type: 'string' },
    inputs: { type: 'string' },
    out: { type: 'string' },
    precision: { type: 'string', default: DEFAULT_PRECISION },
    rotation: { type: 'string', default: 'regular' },
    group: { type: 'string', default: '256' },
    'int8-layers': { type: 'string', multiple: true },
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
    const preset = oneOf('precision', String(values.precision), PRECISION_PRESETS);
    const rotation = oneOf('rotation', String(values.rotation), ROTATIONS);
    const groupSize = Number(values.group);
    if (!Number.isInteger(groupSize) || groupSize <= 0) throw new UsageError(`--group must be a positive integer (got "${String(values.group)}")`);
    const overrides: PrecisionOverride[] = ((values['int8-layers'] as string[] | undefined) ?? [])
      .flatMap((v) => v.split(','))
      .filter((p) => p !== '')
      .map((pattern) => ({ pattern, precision: 'int8' }));

    const inputs = await readInputs(inputsPath);
    const checkpoint = await openTransformerCheckpoint(model, values.config as string | undefined);
    await withGpu(async (ctx) => {
      const loadStart = performance.now();
      let transformer;
      try {
        transformer = await loadTransformer(ctx, checkpoint, {
          preset,
          rotation,
          groupSize,
          overrides,
          quantizedLinear,
          onProgress: (p) => progressLine(`loading ${p.done}/${p.total} ${p.layer}`),
        });
      } finally {
        await checkpoint.close();
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
        const metadata = { precision: preset, rotation, group: String(groupSize), adapter: ctx.adapter.description || ctx.adapter.vendor };
        await writeFile(outPath, encodeSafetensors(tensors, metadata));
        const quantization = preset === 'fp32' ? preset : `${preset}, ${rotation} ${groupSize}`;
        progressLine(`forward (${quantization}) in ${seconds.toFixed(2)} s, activations ${formatBytes(runner.activationBytes)}; wrote ${outPath}`, true);
      } finally {
        runner.dispose();
        transformer.destroy();
      }
    });
  },
};
