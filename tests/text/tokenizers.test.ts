import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TextTokenizer } from '../../src/text/tokenizers.ts';

const CLIP_DIR = 'tests/fixtures/tokenizers/clip';
const T5_DIR = 'tests/fixtures/tokenizers/t5';
const expected = JSON.parse(readFileSync(`${CLIP_DIR}/expected_ids.json`, 'utf8')) as { max_length: number; cases: { prompt: string; ids: number[] }[] };

/** CLIP's ids for "a" (320), a prompt of n such words is n tokens. */
const CLIP_A = 320;
const BOS = 49406;
const EOS = 49407;

describe('CLIP tokenizer from vocab.json + merges.txt (FLUX.1 tokenizer/)', async () => {
  const clip = await TextTokenizer.load(CLIP_DIR);

  it('reads the kind, length and special ids from the config', () => {
    expect([clip.kind, clip.maxLength, clip.bosId, clip.eosId, clip.padId]).toEqual(['clip', expected.max_length, BOS, EOS, EOS]);
  });

  for (const c of expected.cases) {
    it(`gives OpenAI's ids for "${c.prompt}"`, () => {
      expect(Array.from(clip.encode(c.prompt).ids)).toEqual(c.ids);
    });
  }

  it('lower-cases and collapses whitespace like the reference', () => {
    expect(clip.tokenize('  A   PHOTO\tof a\ncat ')).toEqual([320, 1125, 539, 320, 2368]);
  });

  for (const n of [75, 76, 77, 78]) {
    it(`${n} tokens: BOS, at most 75 tokens, EOS last, padded with EOS to 77`, () => {
      const { ids, tokens } = clip.encode(Array(n).fill('a').join(' '));
      const kept = Math.min(n, 75);
      expect(ids.length).toBe(77);
      expect(tokens).toBe(kept + 2);
      expect(ids[0]).toBe(BOS);
      expect(Array.from(ids.subarray(1, kept + 1)).every((id) => id === CLIP_A)).toBe(true);
      expect(Array.from(ids.subarray(kept + 1)).every((id) => id === EOS)).toBe(true);
      expect(ids[76]).toBe(EOS);
    });
  }

  it('an empty prompt is BOS, EOS and padding', () => {
    expect(Array.from(clip.encode('').ids.subarray(0, 3))).toEqual([BOS, EOS, EOS]);
  });

  it('accepts a folder holding tokenizer.json instead of vocab + merges', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'clip-tokenizer-'));
    // A one-word BPE tokenizer.json in the CLIP format: "ab" is one token (a + b</w>), "a" is a</w>.
    const vocab = { 'a': 0, 'b': 1, 'ab': 2, 'ab</w>': 3, 'a</w>': 4, 'b</w>': 5, '<|startoftext|>': 6, '<|endoftext|>': 7 };
    const json = {
      added_tokens: [6, 7].map((id) => ({ id, content: id === 6 ? '<|startoftext|>' : '<|endoftext|>', special: true })),
      normalizer: { type: 'Lowercase' },
      pre_tokenizer: { type: 'WhitespaceSplit' },
      post_processor: null,
      decoder: null,
      model: { type: 'BPE', vocab, merges: ['a b</w>'], end_of_word_suffix: '</w>', continuing_subword_suffix: '', unk_token: '<|endoftext|>', ignore_merges: false },
    };
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(json));
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'CLIPTokenizer', model_max_length: 5, bos_token: '<|startoftext|>', eos_token: '<|endoftext|>', pad_token: '<|endoftext|>' }));
    const t = await TextTokenizer.load(dir);
    expect(Array.from(t.encode('AB a').ids)).toEqual([6, 3, 4, 7, 7]);
  });
});

describe('T5 tokenizer (Unigram tokenizer.json, hand-made)', async () => {
  const t5 = await TextTokenizer.load(T5_DIR);

  it('reads the kind, length and special ids from the config', () => {
    expect([t5.kind, t5.maxLength, t5.bosId, t5.eosId, t5.padId]).toEqual(['t5', 12, undefined, 1, 0]);
  });

  it('segments by the best Unigram score, EOS appended, padded with 0', () => {
    // ▁a ▁photo ▁of ▁a ▁cat; "cats" is ▁cat + s (−13) rather than ▁ca t s (−23); "x" is unknown.
    expect(Array.from(t5.encode('a photo of a cat').ids)).toEqual([4, 5, 6, 4, 7, 1, 0, 0, 0, 0, 0, 0]);
    expect(t5.tokenize('cats')).toEqual([7, 12]);
    expect(t5.tokenize('a  cat x')).toEqual([4, 7, 3, 2]);
  });

  it('cuts over-long prompts so that EOS stays last; the length is adjustable', () => {
    const long = Array(20).fill('a').join(' ');
    expect(Array.from(t5.encode(long).ids)).toEqual([...Array(11).fill(4), 1]);
    const { ids, tokens } = t5.encode('a cat', 4);
    expect([Array.from(ids), tokens]).toEqual([[4, 7, 1, 0], 3]);
    expect(Array.from(t5.encode('a cat', 2).ids)).toEqual([4, 1]);
  });
});

describe('tokenizer errors', () => {
  it('a folder without a tokenizer gets one clear line', async () => {
    await expect(TextTokenizer.load('tests/fixtures/text-tiny-a')).rejects.toThrow(/text-tiny-a: no tokenizer here/);
  });

  it('a config with a special token missing from the vocabulary', async () => {
    const dir = await mkdtemp(join(tmpdir(), 't5-tokenizer-'));
    await writeFile(join(dir, 'tokenizer.json'), readFileSync(`${T5_DIR}/tokenizer.json`));
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'T5Tokenizer', model_max_length: 8, eos_token: '</eos>' }));
    await expect(TextTokenizer.load(dir)).rejects.toThrow(/the eos_token "<\/eos>" is not in the vocabulary/);
  });

  it('a length too short for the special tokens', async () => {
    const clip = await TextTokenizer.load(CLIP_DIR);
    expect(() => clip.encode('a', 1)).toThrow(/length 1 must be an integer/);
  });
});
