/** Transformer call inputs for the CLI: a reference-style safetensors file, or seeded random ones. */
import { FluxError } from '../errors.ts';
import type { FluxConfig } from '../model/config.ts';
import type { FluxInputs } from '../model/inputs.ts';
import { randomFluxInputs } from '../model/quality/random-inputs.ts';
import { openCheckpoint, type TensorReader } from '../weights/safetensors.ts';
import { UsageError } from './args.ts';

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

export async function readInputs(path: string): Promise<FluxInputs> {
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

/** `random[:calls[:seed]]`: calls seeded random inputs, seeds seed, seed + 1, … (default 1 call, seed 1). */
const RANDOM_SPEC = /^random(?::(\d+))?(?::(\d+))?$/;

/** `random` or `random:…`; anything else (a file such as random.safetensors included) is a path. */
export function isRandomSpec(spec: string): boolean {
  return /^random(:|$)/.test(spec);
}

/** The calls an `--inputs` value names, and a description for reports. */
export async function readInputsSpec(spec: string, config: FluxConfig, defaultCalls = 1): Promise<{ calls: FluxInputs[]; source: string }> {
  if (!isRandomSpec(spec)) return { calls: [await readInputs(spec)], source: spec };
  const m = RANDOM_SPEC.exec(spec);
  const calls = m?.[1] === undefined ? defaultCalls : Number(m[1]);
  const seed = m?.[2] === undefined ? 1 : Number(m[2]);
  if (!m || calls < 1) throw new UsageError(`--inputs random must look like random[:calls[:seed]] with calls >= 1 (got "${spec}")`);
  return { calls: Array.from({ length: calls }, (_, i) => randomFluxInputs(config, seed + i)), source: `random:${calls}:${seed}` };
}
