/** `decode`: the VAE decoder on the GPU, latent in, unclamped image out, as safetensors (golden tests). */
import { writeFile } from 'node:fs/promises';
import { FluxError } from '../errors.ts';
import { formatBytes } from '../gpu/buffers.ts';
import { loadVaeDecoder } from '../pipeline/load-vae.ts';
import { encodeSafetensors } from '../weights/safetensors-writer.ts';
import { openCheckpoint } from '../weights/safetensors.ts';
import { UsageError, type Command, type ParsedArgs } from './args.ts';
import { asBytes } from './forward.ts';
import { readInput } from './inputs.ts';
import { progressLine, withGpu } from './gpu.ts';

export function requiredFlag(values: ParsedArgs['values'], flag: string): string {
  const v = values[flag];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${flag} is required`);
  return v;
}

/** Reads a [1, C, h, w] (or [C, h, w]) latent; returns it with its height and width. */
export async function readLatent(path: string, name: string): Promise<{ z: Float32Array; channels: number; h: number; w: number }> {
  const file = await openCheckpoint(path);
  try {
    const z = (await readInput(file, name))!;
    const shape = file.info(name).shape;
    const dims = shape.length === 4 && shape[0] === 1 ? shape.slice(1) : shape;
    if (dims.length !== 3) throw new FluxError('bad-shape', `${file.name}: "${name}" has shape [${shape}], expected [1, channels, height, width]`);
    return { z, channels: dims[0]!, h: dims[1]!, w: dims[2]! };
  } finally {
    await file.close();
  }
}

export const decodeCommand: Command = {
  name: 'decode',
  summary: 'decode a latent with the VAE on the GPU and write the unclamped image',
  usage: 'decode --vae <file|folder> [--config vae_config.json] --inputs <in.safetensors> --out <out.safetensors> [--band-rows N]',
  details: [
    'Reads `z` [1, 16, h, w] (before the z / scale + shift transform, as the reference decode takes it) and writes',
    '`image` [1, 3, 8h, 8w]. --vae takes a reference ae.safetensors or a diffusers vae/ folder; --config a',
    "diffusers-style config (a folder's config.json is used by default, FLUX.1's autoencoder otherwise).",
    '--band-rows sets the latent rows per decoding band (default: bands of at most 128 MiB).',
  ].join('\n'),
  options: { vae: { type: 'string' }, config: { type: 'string' }, inputs: { type: 'string' }, out: { type: 'string' }, 'band-rows': { type: 'string' } },
  positionals: { min: 0, max: 0 },
  async run({ values }) {
    const vaePath = requiredFlag(values, 'vae');
    const { z, channels, h, w } = await readLatent(requiredFlag(values, 'inputs'), 'z');
    const outPath = requiredFlag(values, 'out');
    const bandRows = values['band-rows'] === undefined ? undefined : Number(values['band-rows']);
    if (bandRows !== undefined && !(Number.isInteger(bandRows) && bandRows > 0)) throw new UsageError(`--band-rows must be a positive integer (got "${String(values['band-rows'])}")`);
    await withGpu(async (ctx) => {
      const vae = await loadVaeDecoder(ctx, vaePath, values.config as string | undefined);
      try {
        if (channels !== vae.config.latentChannels) throw new FluxError('bad-shape', `z has ${channels} channels, the VAE takes ${vae.config.latentChannels}`);
        const start = performance.now();
        const out = await vae.decode(z, h, w, { bandRows });
        const tensors = [{ name: 'image', dtype: 'F32' as const, shape: [1, vae.config.outChannels, out.height, out.width], data: asBytes(out.image) }];
        await writeFile(outPath, encodeSafetensors(tensors, { band_rows: String(out.bandRows) }));
        progressLine(`decoded ${out.width}x${out.height} in ${((performance.now() - start) / 1000).toFixed(2)} s (${formatBytes(vae.weightBytes)} of weights, peak activations ${formatBytes(ctx.pool.peakBytes)}); wrote ${outPath}`, true);
      } finally {
        vae.destroy();
      }
    });
  },
};
