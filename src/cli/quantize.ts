/**
 * `quantize`: a FLUX model quantized once and written as a loadable model folder, its transformer as a packed
 * file (docs/packed-format.md) that `generate`, `forward` and the browser load with no re-quantization.
 */
import { cp, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { FluxError } from '../errors.ts';
import { formatBytes } from '../gpu/buffers.ts';
import { packTransformer, type PackProgress } from '../model/packed-transformer.ts';
import { decodePrecisionMap, makeQuantPlan, type QuantPlanOptions } from '../model/precision.ts';
import type { RotationKind } from '../quant/hadamard.ts';
import { DEFAULT_PRESET, openTransformerWeights } from '../pipeline/load.ts';
import { SafetensorsStreamWriter, type ByteSink } from '../weights/safetensors-writer.ts';
import { PACKED_CHECKPOINT_FILE } from '../weights/safetensors.ts';
import { readJson } from '../weights/sources.ts';
import { UsageError, type Command, type ParsedArgs } from './args.ts';
import { requiredFlag } from './decode.ts';
import { int8Overrides, oneOf, presetFlag } from './forward.ts';
import { progressLine, withGpu } from './gpu.ts';

const ROTATIONS: readonly RotationKind[] = ['regular', 'sylvester', 'none'];
/** Copy granularity when the header is put in front of the streamed data. */
const COPY_CHUNK_BYTES = 16 * 1024 * 1024;
const TRANSFORMER_DIR = 'transformer';

/** A Node file as a ByteSink (appends). */
async function fileSink(path: string): Promise<ByteSink & { close(): Promise<void> }> {
  const handle = await open(path, 'w');
  return {
    async write(bytes) {
      let done = 0;
      while (done < bytes.byteLength) done += (await handle.write(bytes, done, bytes.byteLength - done)).bytesWritten;
    },
    close: () => handle.close(),
  };
}

/**
 * Writes a safetensors file tensor by tensor: the data goes to a side file as it is produced, then the header
 * and the data are copied into `<path>.partial`, which is renamed to `path` only when complete, so a crash
 * never leaves a file that looks whole. Memory: one tensor plus one copy chunk. Returns the file's size.
 */
export async function writeSafetensorsStreamed(path: string, produce: (writer: SafetensorsStreamWriter) => Promise<Record<string, string>>): Promise<number> {
  const dataPath = `${path}.data.partial`;
  const partial = `${path}.partial`;
  try {
    const data = await fileSink(dataPath);
    let metadata: Record<string, string>;
    let header: Uint8Array;
    try {
      const writer = new SafetensorsStreamWriter(data);
      metadata = await produce(writer);
      header = writer.header(metadata);
    } finally {
      await data.close();
    }
    const out = await fileSink(partial);
    const input = await open(dataPath, 'r');
    try {
      await out.write(header);
      const chunk = new Uint8Array(COPY_CHUNK_BYTES);
      for (;;) {
        const { bytesRead } = await input.read(chunk, 0, chunk.byteLength, null);
        if (bytesRead === 0) break;
        await out.write(chunk.subarray(0, bytesRead));
      }
    } finally {
      await input.close();
      await out.close();
    }
    await rename(partial, path);
    return (await stat(path)).size;
  } finally {
    await rm(dataPath, { force: true });
    await rm(partial, { force: true });
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** `--precision` (a preset or a precision map file), `--int8-layers`, `--rotation`, `--group` as plan options. */
async function planOptions(values: ParsedArgs['values']): Promise<QuantPlanOptions & { readonly label: string }> {
  const text = String(values.precision);
  const overrides = int8Overrides(values);
  const label = [text, ...overrides.map((o) => `+int8:${o.pattern}`)].join(' ');
  if (text.endsWith('.json')) {
    const map = decodePrecisionMap(await readJson(text), text);
    return { ...map, overrides, label };
  }
  const preset = presetFlag(text);
  const rotation = oneOf('rotation', String(values.rotation), ROTATIONS);
  const groupSize = Number(values.group);
  if (!Number.isInteger(groupSize) || groupSize <= 0) throw new UsageError(`--group must be a positive integer (got "${String(values.group)}")`);
  return { preset, overrides, rotation, groupSize, label };
}

/** A cli-progress bar over the layers on a terminal; a line per 10% elsewhere. */
function packProgress(): { onProgress: (p: PackProgress) => void; stop: () => void } {
  if (!process.stderr.isTTY) {
    let shown = -1;
    return {
      onProgress: (p) => {
        const tenth = Math.floor((10 * p.done) / p.total);
        if (tenth > shown) progressLine(`packed ${p.done}/${p.total} layers, ${formatBytes(p.bytes)}`, true);
        shown = tenth;
      },
      stop: () => {},
    };
  }
  const bar = new cliProgress.SingleBar(
    { format: 'quantize [{bar}] {value}/{total} layers | {size} | ETA {eta_formatted} | {layer}', stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    onProgress: (p) => {
      if (!started) bar.start(p.total, 0, { size: '', layer: '' });
      started = true;
      bar.update(p.done, { size: formatBytes(p.bytes), layer: p.layer });
    },
    stop: () => started && bar.stop(),
  };
}

/** Copies a diffusers folder's other components next to the packed transformer. */
async function copyComponents(model: string, out: string): Promise<void> {
  for (const entry of await readdir(model)) {
    if (entry === TRANSFORMER_DIR) continue;
    await cp(join(model, entry), join(out, entry), { recursive: true });
  }
  if (await exists(join(model, TRANSFORMER_DIR, 'config.json'))) await cp(join(model, TRANSFORMER_DIR, 'config.json'), join(out, TRANSFORMER_DIR, 'config.json'));
}

export const quantizeCommand: Command = {
  name: 'quantize',
  summary: 'quantize a FLUX model once and write it as a packed model folder that loads without re-quantizing',
  usage:
    'quantize --model <folder|file> --out <folder> [--config config.json] [--precision fp32|w8a8|w4a4|mixed|<map.json>] ' +
    '[--int8-layers <glob>]... [--rotation regular|sylvester|none] [--group 256]',
  details: [
    'A diffusers folder (model_index.json) becomes a folder of the same layout whose transformer/ holds',
    `${PACKED_CHECKPOINT_FILE}; the other components are copied. A transformer alone (a single file, a sharded`,
    `index or a transformer/ folder) becomes <out>/${PACKED_CHECKPOINT_FILE}. Layers are quantized on the GPU one at`,
    'a time and streamed to disk. --precision defaults to mixed; a .json precision map (calibrate --precision-map)',
    'gives every block linear its precision.',
  ].join('\n'),
  options: {
    model: { type: 'string' },
    out: { type: 'string' },
    config: { type: 'string' },
    precision: { type: 'string', default: DEFAULT_PRESET },
    rotation: { type: 'string', default: 'regular' },
    group: { type: 'string', default: '256' },
    'int8-layers': { type: 'string', multiple: true },
  },
  positionals: { min: 0, max: 0 },
  async run({ values }) {
    const model = resolve(requiredFlag(values, 'model'));
    const out = resolve(requiredFlag(values, 'out'));
    if (out === model) throw new UsageError('--out must differ from --model');
    const plan = await planOptions(values);
    const folder = await exists(join(model, 'model_index.json'));
    const transformer = folder ? join(model, TRANSFORMER_DIR) : model;
    const target = folder ? join(out, TRANSFORMER_DIR) : out;
    await mkdir(target, { recursive: true });
    const start = performance.now();
    await withGpu(async (ctx) => {
      const weights = await openTransformerWeights(ctx, transformer, values.config as string | undefined);
      const reporter = packProgress();
      try {
        if (weights.packed) throw new FluxError('bad-argument', `${transformer}: already a packed model (quantize its source instead)`);
        // Checked against the model before any work (a bad --int8-layers glob fails here).
        const quant = makeQuantPlan(weights.source.config, plan);
        const origin = { identity: transformer, label: basename(model) };
        const file = join(target, PACKED_CHECKPOINT_FILE);
        const bytes = await writeSafetensorsStreamed(file, (writer) => packTransformer(ctx, weights.source, quant, writer, origin, reporter.onProgress));
        reporter.stop();
        if (folder) await copyComponents(model, out);
        progressLine(`quantized ${basename(model)} (${plan.label}) in ${((performance.now() - start) / 1000).toFixed(1)} s: ${formatBytes(bytes)} packed transformer; wrote ${file}`, true);
      } finally {
        reporter.stop();
        await weights.close();
      }
    });
  },
};
