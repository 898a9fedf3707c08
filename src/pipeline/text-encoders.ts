/**
 * The text encoders as the pipeline uses them: CLIP-L and T5 loaded once onto the GPU with their tokenizers,
 * a prompt encoded to FLUX's `txt` (T5 hidden states) and `pooled` (CLIP's pooled output).
 */
import { FluxError } from '../errors.ts';
import type { GpuContext } from '../gpu/device.ts';
import { ClipTextModel } from '../model/clip.ts';
import { T5Encoder } from '../model/t5.ts';
import { clipConfigFromJson, clipLinearNames, t5ConfigFromJson, t5LinearNames } from '../model/text-config.ts';
import { textQuantPlan, type TextPrecision } from '../model/text-precision.ts';
import type { LoadProgress } from '../model/transformer.ts';
import { TextTokenizer } from '../text/tokenizers.ts';
import { openCheckpoint, sibling, type TensorReader } from '../weights/safetensors.ts';
import { readJson } from '../weights/sources.ts';

/** Folders (Node paths or URLs): `text_encoder/`, `tokenizer/`, `text_encoder_2/`, `tokenizer_2/`. */
export interface TextEncoderSources {
  readonly clip?: string;
  readonly clipTokenizer?: string;
  readonly t5?: string;
  readonly t5Tokenizer?: string;
}

export interface EncodedPrompt {
  /** [t5Length, t5Dim]: T5's final hidden states, FLUX's `txt`. */
  readonly txt: Float32Array;
  /** T5 ids before the padding (tokens + EOS). */
  readonly txtTokens: number;
  /** [clipDim]: CLIP's pooled output, FLUX's `y`. */
  readonly pooled: Float32Array;
}

export interface TextEncoderProgress extends LoadProgress {
  readonly model: 'clip' | 't5';
}

export interface TextEncoderLoadOptions {
  /** One precision for both encoders, or one each; default DEFAULT_TEXT_PRECISION. */
  readonly precision?: TextPrecision | { readonly clip?: TextPrecision; readonly t5?: TextPrecision };
  /** T5 sequence length: 256 for FLUX.1-schnell, 512 for dev; default the tokenizer's model_max_length. */
  readonly t5MaxLength?: number;
  readonly onProgress?: (p: TextEncoderProgress) => void;
  readonly signal?: AbortSignal;
}

/**
 * CLIP-L is 123 M parameters: float costs little. T5-XXL is 4.7 B: INT8 keeps it within 1 % of float (see
 * docs/text-encoders.md for the measurements) at half the memory of BF16; INT4 is an opt-in for tight memory.
 */
export const DEFAULT_TEXT_PRECISION: { readonly clip: TextPrecision; readonly t5: TextPrecision } = { clip: 'float', t5: 'w8a8' };
/** FLUX.1-dev's T5 length, used when no tokenizer says otherwise. */
export const DEFAULT_T5_MAX_LENGTH = 512;

const CONFIG_FILE = 'config.json';

/** A text encoder folder: its config.json and its weights (model.safetensors or shards). */
export async function openTextModel(location: string): Promise<{ readonly config: unknown; readonly reader: TensorReader }> {
  const folder = /\.(safetensors|json)$/.test(location) ? location.slice(0, location.lastIndexOf('/') + 1) || '.' : location;
  const config = await readJson(sibling(folder, CONFIG_FILE));
  return { config, reader: await openCheckpoint(location) };
}

/** Ids to encode without tokenizing (the CLI's --inputs). */
export interface TextEncoderIds {
  readonly t5?: Int32Array;
  readonly clip?: Int32Array;
}

export interface TextEncoderOutputs {
  readonly t5Hidden?: Float32Array;
  readonly clipHidden?: Float32Array;
  readonly clipPooled?: Float32Array;
}

export class TextEncoders {
  private constructor(
    readonly clip: ClipTextModel | undefined,
    readonly t5: T5Encoder | undefined,
    readonly clipTokenizer: TextTokenizer | undefined,
    readonly t5Tokenizer: TextTokenizer | undefined,
    readonly t5MaxLength: number,
  ) {}

  /** Loads whichever encoders and tokenizers `sources` names. */
  static async load(ctx: GpuContext, sources: TextEncoderSources, options: TextEncoderLoadOptions = {}): Promise<TextEncoders> {
    const precision = options.precision;
    const perModel = typeof precision === 'string' || precision instanceof Map ? { clip: precision, t5: precision } : (precision as { clip?: TextPrecision; t5?: TextPrecision } | undefined);
    const clipTokenizer = sources.clipTokenizer === undefined ? undefined : await TextTokenizer.load(sources.clipTokenizer);
    const t5Tokenizer = sources.t5Tokenizer === undefined ? undefined : await TextTokenizer.load(sources.t5Tokenizer);
    for (const [t, kind, flag] of [[clipTokenizer, 'clip', 'clipTokenizer'], [t5Tokenizer, 't5', 't5Tokenizer']] as const) {
      if (t && t.kind !== kind) throw new FluxError('bad-argument', `${t.source}: the ${flag} is a ${t.kind.toUpperCase()} tokenizer`);
    }
    const t5MaxLength = options.t5MaxLength ?? t5Tokenizer?.maxLength ?? DEFAULT_T5_MAX_LENGTH;
    if (!Number.isInteger(t5MaxLength) || t5MaxLength < 1) throw new FluxError('bad-argument', `t5MaxLength ${t5MaxLength} is not a positive integer`);

    let clip: ClipTextModel | undefined;
    let t5: T5Encoder | undefined;
    try {
      if (sources.clip !== undefined) {
        const { config: json, reader } = await openTextModel(sources.clip);
        try {
          const config = clipConfigFromJson(json);
          const quant = textQuantPlan(clipLinearNames(config), perModel?.clip ?? DEFAULT_TEXT_PRECISION.clip, 'CLIP');
          const onProgress = options.onProgress && ((p: LoadProgress) => options.onProgress!({ ...p, model: 'clip' }));
          clip = await ClipTextModel.load(ctx, reader, config, { quant, onProgress, signal: options.signal });
        } finally {
          await reader.close();
        }
      }
      if (sources.t5 !== undefined) {
        const { config: json, reader } = await openTextModel(sources.t5);
        try {
          const config = t5ConfigFromJson(json);
          const quant = textQuantPlan(t5LinearNames(config), perModel?.t5 ?? DEFAULT_TEXT_PRECISION.t5, 'T5');
          const onProgress = options.onProgress && ((p: LoadProgress) => options.onProgress!({ ...p, model: 't5' }));
          t5 = await T5Encoder.load(ctx, reader, config, { quant, onProgress, signal: options.signal });
        } finally {
          await reader.close();
        }
      }
    } catch (e) {
      clip?.destroy();
      throw e;
    }
    return new TextEncoders(clip, t5, clipTokenizer, t5Tokenizer, t5MaxLength);
  }

  /** Tokenizes and encodes a prompt with both encoders. */
  async encode(prompt: string): Promise<EncodedPrompt> {
    if (!this.clip || !this.t5 || !this.clipTokenizer || !this.t5Tokenizer) {
      throw new FluxError('bad-argument', 'encoding a prompt needs both encoders and both tokenizers (clip, clipTokenizer, t5, t5Tokenizer)');
    }
    const t5Ids = this.t5Tokenizer.encode(prompt, this.t5MaxLength);
    const clipIds = this.clipTokenizer.encode(prompt);
    const out = await this.encodeIds({ t5: t5Ids.ids, clip: clipIds.ids });
    return { txt: out.t5Hidden!, txtTokens: t5Ids.tokens, pooled: out.clipPooled! };
  }

  /** Encodes ready-made ids; each encoder runs only if its ids are given. */
  async encodeIds(ids: TextEncoderIds): Promise<TextEncoderOutputs> {
    const need = (model: unknown, name: string): void => {
      if (!model) throw new FluxError('bad-argument', `${name} ids were given but no ${name} encoder was loaded`);
    };
    let clipOut;
    let t5Hidden;
    if (ids.clip) {
      need(this.clip, 'CLIP');
      clipOut = await this.clip!.encode(ids.clip);
    }
    if (ids.t5) {
      need(this.t5, 'T5');
      t5Hidden = await this.t5!.encode(ids.t5);
    }
    return { t5Hidden, clipHidden: clipOut?.hidden, clipPooled: clipOut?.pooled };
  }

  /** Bytes of GPU memory the weights hold. */
  get weightBytes(): number {
    return (this.clip?.weightBytes ?? 0) + (this.t5?.weightBytes ?? 0);
  }

  /** Frees every GPU buffer of both encoders. */
  destroy(): void {
    this.clip?.destroy();
    this.t5?.destroy();
  }
}
