/** `tokenize` and `encode`: the text encoders' tokenizers and GPU models from the command line. */
import { writeFile } from 'node:fs/promises';
import { FluxError } from '../errors.ts';
import { formatBytes } from '../gpu/buffers.ts';
import { LEGACY_FLOAT_PRESET } from '../model/precision.ts';
import { TEXT_PRECISION_PRESETS, type TextPrecisionPresetName } from '../model/text-precision.ts';
import { TextEncoders, type TextEncoderIds } from '../pipeline/text-encoders.ts';
import { TextTokenizer } from '../text/tokenizers.ts';
import { encodeSafetensors, type TensorToWrite } from '../weights/safetensors-writer.ts';
import { openCheckpoint, type TensorReader } from '../weights/safetensors.ts';
import { UsageError, type Command, type ParsedArgs } from './args.ts';
import { progressLine, withGpu } from './gpu.ts';

function stringFlag(values: ParsedArgs['values'], flag: string, required: true): string;
function stringFlag(values: ParsedArgs['values'], flag: string, required: false): string | undefined;
function stringFlag(values: ParsedArgs['values'], flag: string, required: boolean): string | undefined {
  const v = values[flag];
  if (typeof v === 'string' && v !== '') return v;
  if (required) throw new UsageError(`--${flag} is required`);
  return undefined;
}

function lengthFlag(values: ParsedArgs['values'], flag: string): number | undefined {
  const text = stringFlag(values, flag, false);
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${flag} must be a positive integer (got "${text}")`);
  return n;
}

export const tokenizeCommand: Command = {
  name: 'tokenize',
  summary: "print a prompt's token ids (CLIP or T5, read from the tokenizer folder)",
  usage: 'tokenize --tokenizer <dir> --prompt <text> [--max-length N]',
  details: [
    'The folder is FLUX.1\'s tokenizer/ (CLIP: vocab.json + merges.txt, or tokenizer.json) or tokenizer_2/ (T5:',
    'tokenizer.json), with tokenizer_config.json. Ids are padded or cut to --max-length (default the config\'s',
    'model_max_length); the last line of stdout is the ids as one JSON array.',
  ].join('\n'),
  options: { tokenizer: { type: 'string' }, prompt: { type: 'string' }, 'max-length': { type: 'string' } },
  positionals: { min: 0, max: 0 },
  async run({ values }) {
    const folder = stringFlag(values, 'tokenizer', true);
    if (typeof values.prompt !== 'string') throw new UsageError('--prompt is required');
    const tokenizer = await TextTokenizer.load(folder);
    const { ids, tokens } = tokenizer.encode(values.prompt, lengthFlag(values, 'max-length'));
    process.stdout.write(`${tokenizer.kind} tokenizer: ${tokens} ids before padding, ${ids.length} in all\n${JSON.stringify(Array.from(ids))}\n`);
  },
};

/** A [1, L] or [L] I64/I32 ids tensor, if present. */
async function readIds(file: TensorReader, name: string): Promise<Int32Array | undefined> {
  if (!file.has(name)) return undefined;
  const { dtype, shape } = file.info(name);
  if (shape.length === 0 || shape.length > 2 || (shape.length === 2 && shape[0] !== 1)) {
    throw new FluxError('bad-shape', `${file.name}: "${name}" is [${shape}]; expected [1, length] or [length]`);
  }
  const { data } = await file.readTensor(name);
  if (dtype === 'I32') return new Int32Array(data.buffer, data.byteOffset, data.byteLength / 4);
  if (dtype === 'I64') {
    return Int32Array.from(new BigInt64Array(data.buffer, data.byteOffset, data.byteLength / 8), (v) => {
      if (v < -0x80000000n || v > 0x7fffffffn) throw new FluxError('bad-argument', `${file.name}: "${name}" holds id ${v}, outside the 32-bit range`);
      return Number(v);
    });
  }
  throw new FluxError('unsupported-dtype', `${file.name}: "${name}" is ${dtype}; ids must be I64 or I32`);
}

async function readInputIds(path: string): Promise<TextEncoderIds> {
  const file = await openCheckpoint(path);
  try {
    const ids = { t5: await readIds(file, 't5_input_ids'), clip: await readIds(file, 'clip_input_ids') };
    if (!ids.t5 && !ids.clip) throw new FluxError('bad-format', `${path}: neither t5_input_ids nor clip_input_ids is there`);
    return ids;
  } finally {
    await file.close();
  }
}

function f32Tensor(name: string, shape: readonly number[], values: Float32Array): TensorToWrite {
  return { name, dtype: 'F32', shape, data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

export const encodeCommand: Command = {
  name: 'encode',
  summary: 'run the T5 and CLIP text encoders on the GPU and write their outputs',
  usage:
    'encode [--t5 <dir>] [--clip <dir>] (--inputs <in.safetensors> | --prompt <text> [--t5-tokenizer <dir>] [--clip-tokenizer <dir>] [--t5-length N]) ' +
    '--out <out.safetensors> [--precision float|w8a8|w4a4]',
  details: [
    'Each encoder folder holds config.json and model.safetensors (or shards with an index). --inputs holds',
    't5_input_ids and/or clip_input_ids (I64 or I32, [1, L]); with --prompt the ids come from the tokenizers. The',
    'output holds t5_hidden [1, L, d], clip_hidden [1, 77, h] (after the final LayerNorm) and clip_pooled [1, h] (F32)',
    'for the encoders that ran. --precision applies to every linear of both; by default CLIP runs in float and T5',
    'at W8A8.',
  ].join('\n'),
  options: {
    t5: { type: 'string' },
    clip: { type: 'string' },
    inputs: { type: 'string' },
    prompt: { type: 'string' },
    't5-tokenizer': { type: 'string' },
    'clip-tokenizer': { type: 'string' },
    't5-length': { type: 'string' },
    out: { type: 'string' },
    precision: { type: 'string' },
  },
  positionals: { min: 0, max: 0 },
  async run({ values }) {
    const t5 = stringFlag(values, 't5', false);
    const clip = stringFlag(values, 'clip', false);
    const out = stringFlag(values, 'out', true);
    const inputs = stringFlag(values, 'inputs', false);
    const prompt = typeof values.prompt === 'string' ? values.prompt : undefined;
    if (!t5 && !clip) throw new UsageError('give --t5 and/or --clip');
    if ((inputs === undefined) === (prompt === undefined)) throw new UsageError('give either --inputs or --prompt');
    const precisionText = stringFlag(values, 'precision', false);
    const accepted: readonly string[] = [...TEXT_PRECISION_PRESETS, LEGACY_FLOAT_PRESET];
    if (precisionText !== undefined && !accepted.includes(precisionText)) {
      throw new UsageError(`--precision must be one of ${TEXT_PRECISION_PRESETS.join(', ')} (or ${LEGACY_FLOAT_PRESET}, the old name of float; got "${precisionText}")`);
    }
    const precision = precisionText as TextPrecisionPresetName | undefined;
    const t5Tokenizer = stringFlag(values, 't5-tokenizer', false);
    const clipTokenizer = stringFlag(values, 'clip-tokenizer', false);
    if (prompt !== undefined) {
      if (t5 && !t5Tokenizer) throw new UsageError('--prompt with --t5 needs --t5-tokenizer');
      if (clip && !clipTokenizer) throw new UsageError('--prompt with --clip needs --clip-tokenizer');
    }
    const fileIds = inputs === undefined ? undefined : await readInputIds(inputs);

    await withGpu(async (ctx) => {
      const start = performance.now();
      const encoders = await TextEncoders.load(
        ctx,
        { t5, clip, t5Tokenizer: t5 && t5Tokenizer, clipTokenizer: clip && clipTokenizer },
        { precision, t5MaxLength: lengthFlag(values, 't5-length'), onProgress: (p) => progressLine(`loading ${p.model} ${p.done}/${p.total} ${p.layer}`) },
      );
      try {
        progressLine(`loaded in ${((performance.now() - start) / 1000).toFixed(1)} s: ${formatBytes(encoders.weightBytes)} of weights`, true);
        let ids = fileIds;
        if (prompt !== undefined) {
          ids = {
            t5: encoders.t5Tokenizer?.encode(prompt, encoders.t5MaxLength).ids,
            clip: encoders.clipTokenizer?.encode(prompt).ids,
          };
        }
        const run = { t5: t5 ? ids!.t5 : undefined, clip: clip ? ids!.clip : undefined };
        if (!run.t5 && !run.clip) throw new FluxError('bad-argument', `${inputs}: no ids for the encoders given (${t5 ? 't5_input_ids' : 'clip_input_ids'} is missing)`);
        const encodeStart = performance.now();
        const result = await encoders.encodeIds(run);
        const tensors: TensorToWrite[] = [];
        if (result.t5Hidden) tensors.push(f32Tensor('t5_hidden', [1, run.t5!.length, result.t5Hidden.length / run.t5!.length], result.t5Hidden));
        if (result.clipHidden) tensors.push(f32Tensor('clip_hidden', [1, run.clip!.length, result.clipHidden.length / run.clip!.length], result.clipHidden));
        if (result.clipPooled) tensors.push(f32Tensor('clip_pooled', [1, result.clipPooled.length], result.clipPooled));
        await writeFile(out, encodeSafetensors(tensors, { precision: precision ?? 'default (clip float, t5 w8a8)' }));
        progressLine(`encoded in ${((performance.now() - encodeStart) / 1000).toFixed(2)} s; wrote ${tensors.map((t) => t.name).join(', ')} to ${out}`, true);
      } finally {
        encoders.destroy();
      }
    });
  },
};
