/** `sample`: a whole denoising run from reference-style inputs (noise, text states), then the VAE decode. */
import { writeFile } from 'node:fs/promises';
import { FluxError } from '../errors.ts';
import { loadTransformer, openTransformerCheckpoint } from '../pipeline/load.ts';
import { loadVaeDecoder } from '../pipeline/load-vae.ts';
import { denoise, flowSchedule, imagePositionIds, packLatent, PATCH, unpackLatent } from '../pipeline/sampler.ts';
import { TransformerRunner } from '../pipeline/transformer-runner.ts';
import { encodeSafetensors } from '../weights/safetensors-writer.ts';
import { openCheckpoint } from '../weights/safetensors.ts';
import { UsageError, type Command } from './args.ts';
import { requiredFlag, readLatent } from './decode.ts';
import { asBytes, presetFlag } from './forward.ts';
import { readInput } from './inputs.ts';
import { progressLine, withGpu } from './gpu.ts';

export const sampleCommand: Command = {
  name: 'sample',
  summary: 'run the Euler sampler over the transformer from given noise and text states, then decode',
  usage:
    'sample --model <file|folder> [--config config.json] --vae <file|folder> [--vae-config vae_config.json] --inputs <in.safetensors> ' +
    '--out <out.safetensors> --steps N [--shift|--no-shift] [--guidance G] [--precision float|w8a8|w4a4|mixed]',
  details: [
    'Reads `noise` [1, 16, h, w], `txt`, `y` and, when present, `txt_ids` and `img_ids`; writes the denoised',
    '`latent` [1, 16, h, w], the unclamped `image` [1, 3, 8h, 8w] and the `timesteps` used. The schedule is shifted',
    '(mu from the image token count) unless --no-shift; --shift is the default for guidance-distilled (dev) models.',
    '--guidance defaults to 3.5 for dev models. --precision defaults to float (fp32, its old name, is accepted).',
  ].join('\n'),
  options: {
    model: { type: 'string' },
    config: { type: 'string' },
    vae: { type: 'string' },
    'vae-config': { type: 'string' },
    inputs: { type: 'string' },
    out: { type: 'string' },
    steps: { type: 'string' },
    shift: { type: 'boolean' },
    'no-shift': { type: 'boolean' },
    guidance: { type: 'string' },
    precision: { type: 'string', default: 'float' },
  },
  positionals: { min: 0, max: 0 },
  async run({ values }) {
    const inputsPath = requiredFlag(values, 'inputs');
    const outPath = requiredFlag(values, 'out');
    const steps = Number(requiredFlag(values, 'steps'));
    if (!Number.isInteger(steps) || steps < 1) throw new UsageError(`--steps must be a positive integer (got "${String(values.steps)}")`);
    if (values.shift && values['no-shift']) throw new UsageError('--shift and --no-shift exclude each other');
    const guidance = values.guidance === undefined ? undefined : Number(values.guidance);
    if (guidance !== undefined && !Number.isFinite(guidance)) throw new UsageError(`--guidance must be a number (got "${String(values.guidance)}")`);
    const preset = presetFlag(String(values.precision));

    const { z: noise, channels, h, w } = await readLatent(inputsPath, 'noise');
    const file = await openCheckpoint(inputsPath);
    const inputs = {
      txt: (await readInput(file, 'txt'))!,
      y: (await readInput(file, 'y'))!,
      txtIds: await readInput(file, 'txt_ids', true),
      imgIds: (await readInput(file, 'img_ids', true)) ?? imagePositionIds(h, w),
    };
    await file.close();
    if (h % PATCH !== 0 || w % PATCH !== 0) throw new FluxError('bad-shape', `noise sides ${h}x${w} must be even (2x2 patches)`);

    const checkpoint = await openTransformerCheckpoint(requiredFlag(values, 'model'), values.config as string | undefined);
    await withGpu(async (ctx) => {
      let transformer;
      try {
        transformer = await loadTransformer(ctx, checkpoint, { preset, onProgress: (p) => progressLine(`loading ${p.done}/${p.total} ${p.layer}`) });
      } finally {
        await checkpoint.close();
      }
      const runner = new TransformerRunner(transformer);
      const vae = await loadVaeDecoder(ctx, requiredFlag(values, 'vae'), values['vae-config'] as string | undefined);
      try {
        const dev = transformer.config.guidanceEmbed;
        const shift = values['no-shift'] ? false : values.shift === true || dev;
        const tokens = (h / PATCH) * (w / PATCH);
        const timesteps = flowSchedule(steps, tokens, shift);
        const start = performance.now();
        const packed = await denoise(runner, {
          img: packLatent(noise, channels, h, w),
          imgIds: inputs.imgIds,
          positive: { txt: inputs.txt, pooled: inputs.y, txtIds: inputs.txtIds },
          timesteps,
          guidance: dev ? (guidance ?? 3.5) : undefined,
          onStep: (k, n, ms) => progressLine(`step ${k}/${n} (${(ms / 1000).toFixed(2)} s)`),
        });
        const latent = unpackLatent(packed, channels, h, w);
        const decoded = await vae.decode(latent, h, w);
        const tensors = [
          { name: 'latent', dtype: 'F32' as const, shape: [1, channels, h, w], data: asBytes(latent) },
          { name: 'image', dtype: 'F32' as const, shape: [1, vae.config.outChannels, decoded.height, decoded.width], data: asBytes(decoded.image) },
          { name: 'timesteps', dtype: 'F32' as const, shape: [timesteps.length], data: asBytes(new Float32Array(timesteps)) },
        ];
        await writeFile(outPath, encodeSafetensors(tensors, { steps: String(steps), shift: String(shift), precision: preset }));
        progressLine(`sampled ${steps} steps (${preset}) and decoded in ${((performance.now() - start) / 1000).toFixed(1)} s; wrote ${outPath}`, true);
      } finally {
        vae.destroy();
        runner.dispose();
        transformer.destroy();
      }
    });
  },
};
