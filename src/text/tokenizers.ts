/**
 * The text encoders' tokenizers, built with @huggingface/tokenizers from the checkpoint's own files (pure CPU).
 *
 * CLIP (FLUX.1 `tokenizer/`): byte-level BPE. FLUX ships only `vocab.json` + `merges.txt`, so the
 * tokenizer.json that Hugging Face's CLIPTokenizerFast conversion would produce is assembled here: NFC, runs
 * of whitespace to one space, lower case; CLIP's split pattern; byte-level symbols; `</w>` ends each word. A
 * folder with a `tokenizer.json` is used as is. Ids: BOS, tokens, EOS, padded with the pad token; over-long
 * prompts are cut so that EOS stays last.
 *
 * T5 (FLUX.1 `tokenizer_2/`): the Unigram `tokenizer.json`. Ids: tokens, EOS, padded with the pad token (0);
 * cut so that EOS stays last. FLUX runs T5 without an attention mask, so none is returned.
 *
 * Lengths and special tokens come from `tokenizer_config.json` (model_max_length, bos/eos/pad tokens).
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { FluxError } from '../errors.ts';
import { sibling } from '../weights/safetensors.ts';
import { readJson, readText } from '../weights/sources.ts';

export type TokenizerKind = 'clip' | 't5';

const TOKENIZER_JSON = 'tokenizer.json';
const TOKENIZER_CONFIG = 'tokenizer_config.json';
const CLIP_VOCAB = 'vocab.json';
const CLIP_MERGES = 'merges.txt';

/** CLIP's pre-tokenizer split (OpenAI's `pat`): its special tokens, contractions, letter runs, single digits, other runs. */
const CLIP_SPLIT_PATTERN = "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";
/** The suffix CLIP's BPE marks the end of a word with. */
const CLIP_END_OF_WORD = '</w>';
/** Configs sometimes say "no limit" with a huge model_max_length (1e30); a real text encoder's is in the hundreds. */
const MAX_SANE_LENGTH = 1 << 16;

export interface TokenizedPrompt {
  /** Exactly `length` ids, padded. */
  readonly ids: Int32Array;
  /** Ids before the padding: specials included (CLIP: BOS … EOS; T5: … EOS). */
  readonly tokens: number;
}

export class TextTokenizer {
  private constructor(
    readonly kind: TokenizerKind,
    private readonly tokenizer: Tokenizer,
    /** Default sequence length (the config's model_max_length). */
    readonly maxLength: number,
    readonly bosId: number | undefined,
    readonly eosId: number,
    readonly padId: number,
    /** Where the tokenizer came from, for messages. */
    readonly source: string,
  ) {}

  /** Loads the tokenizer of a `tokenizer/` or `tokenizer_2/` folder (a path or URL); the kind is read from the files. */
  static async load(folder: string): Promise<TextTokenizer> {
    if (folder.endsWith(TOKENIZER_JSON) || folder.endsWith(TOKENIZER_CONFIG)) folder = folder.slice(0, folder.lastIndexOf('/') + 1) || '.';
    const config = await readOptional(sibling(folder, TOKENIZER_CONFIG), readJson);
    if (!isRecord(config)) {
      throw new FluxError('bad-format', `${folder}: no tokenizer here (expected ${TOKENIZER_CONFIG} with ${TOKENIZER_JSON}, or with ${CLIP_VOCAB} + ${CLIP_MERGES})`);
    }
    let json = await readOptional(sibling(folder, TOKENIZER_JSON), readJson);
    if (json === undefined) {
      const vocab = await readOptional(sibling(folder, CLIP_VOCAB), readJson);
      const merges = await readOptional(sibling(folder, CLIP_MERGES), readText);
      if (vocab === undefined || merges === undefined) {
        throw new FluxError('bad-format', `${folder}: no tokenizer here (expected ${TOKENIZER_JSON}, or ${CLIP_VOCAB} + ${CLIP_MERGES})`);
      }
      if (!isRecord(vocab)) throw new FluxError('bad-format', `${sibling(folder, CLIP_VOCAB)}: not a token → id map`);
      json = clipTokenizerJson(vocab as Record<string, number>, merges, config);
    }
    if (!isRecord(json) || !isRecord(json.model)) throw new FluxError('bad-format', `${sibling(folder, TOKENIZER_JSON)}: no "model" section`);
    const kind = tokenizerKind(config, String(json.model.type), folder);
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(json, config);
    } catch (e) {
      throw new FluxError('bad-format', `${folder}: cannot build the tokenizer (${e instanceof Error ? e.message : String(e)})`, { cause: e });
    }
    const special = (key: string, required: boolean): number | undefined => {
      const name = tokenName(config[key]);
      if (name === undefined) {
        if (required) throw new FluxError('bad-format', `${folder}/${TOKENIZER_CONFIG}: no ${key}`);
        return undefined;
      }
      const id = tokenizer.token_to_id(name);
      if (id === undefined) throw new FluxError('bad-format', `${folder}: the ${key} "${name}" is not in the vocabulary`);
      return id;
    };
    const maxLength = config.model_max_length;
    if (typeof maxLength !== 'number' || !Number.isInteger(maxLength) || maxLength < 2 || maxLength > MAX_SANE_LENGTH) {
      throw new FluxError('bad-format', `${folder}/${TOKENIZER_CONFIG}: model_max_length ${String(maxLength)} is not a usable sequence length`);
    }
    const eosId = special('eos_token', true)!;
    const bosId = kind === 'clip' ? special('bos_token', true) : undefined;
    const padId = special('pad_token', false) ?? eosId;
    return new TextTokenizer(kind, tokenizer, maxLength, bosId, eosId, padId, folder);
  }

  /** The prompt's token ids without specials, padding or truncation. */
  tokenize(prompt: string): number[] {
    return this.tokenizer.encode(prompt, { add_special_tokens: false }).ids;
  }

  /** `length` ids (default maxLength): CLIP BOS … EOS, T5 … EOS, then padding; over-long text is cut before EOS. */
  encode(prompt: string, length = this.maxLength): TokenizedPrompt {
    const specials = this.bosId === undefined ? 1 : 2;
    if (!Number.isInteger(length) || length < specials || length > MAX_SANE_LENGTH) {
      throw new FluxError('bad-argument', `${this.kind} tokenizer: length ${length} must be an integer in [${specials}, ${MAX_SANE_LENGTH}]`);
    }
    const body = this.tokenize(prompt).slice(0, length - specials);
    const real = [...(this.bosId === undefined ? [] : [this.bosId]), ...body, this.eosId];
    const ids = new Int32Array(length).fill(this.padId);
    ids.set(real);
    return { ids, tokens: real.length };
  }
}

/** tokenizer.json for CLIP from vocab.json + merges.txt, as Hugging Face's CLIPTokenizerFast conversion builds it. */
function clipTokenizerJson(vocab: Record<string, number>, mergesText: string, config: Record<string, unknown>): Record<string, unknown> {
  // The first line is a "#version" header; the rest are "left right" pairs.
  const merges = mergesText.split(/\r?\n/).filter((line) => line !== '' && !line.startsWith('#version'));
  const specialNames = ['bos_token', 'eos_token', 'pad_token', 'unk_token'].map((k) => tokenName(config[k])).filter((n): n is string => n !== undefined);
  const added = [...new Set(specialNames)]
    .filter((name) => vocab[name] !== undefined)
    .map((name) => ({ id: vocab[name], content: name, special: true, normalized: false, lstrip: false, rstrip: false, single_word: false }));
  return {
    added_tokens: added,
    normalizer: {
      type: 'Sequence',
      normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }],
    },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: CLIP_SPLIT_PATTERN }, behavior: 'Removed', invert: true },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    // BOS/EOS are placed by TextTokenizer.encode, so that truncation keeps EOS.
    post_processor: null,
    decoder: { type: 'BPEDecoder', suffix: CLIP_END_OF_WORD },
    model: {
      type: 'BPE',
      vocab,
      merges,
      end_of_word_suffix: CLIP_END_OF_WORD,
      continuing_subword_suffix: '',
      unk_token: tokenName(config.unk_token) ?? null,
      fuse_unk: false,
      ignore_merges: false,
    },
  };
}

function tokenizerKind(config: Record<string, unknown>, modelType: string, folder: string): TokenizerKind {
  const cls = String(config.tokenizer_class ?? '');
  if (/^CLIP/i.test(cls)) return 'clip';
  if (/^T5/i.test(cls)) return 't5';
  if (modelType === 'BPE') return 'clip';
  if (modelType === 'Unigram') return 't5';
  throw new FluxError('bad-format', `${folder}: cannot tell a CLIP from a T5 tokenizer (tokenizer_class "${cls}", model ${modelType})`);
}

/** A special token in a config: a string, or an AddedToken object with `content`. */
function tokenName(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (isRecord(value) && typeof value.content === 'string') return value.content;
  return undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The file's contents, or undefined when it does not exist (other errors propagate). */
async function readOptional<T>(location: string, read: (l: string) => Promise<T>): Promise<T | undefined> {
  try {
    return await read(location);
  } catch (e) {
    if (e instanceof FluxError && e.code === 'io') return undefined;
    throw e;
  }
}
