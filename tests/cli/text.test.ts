import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeSafetensors } from '../../src/weights/safetensors-writer.ts';
import { openCheckpoint } from '../../src/weights/safetensors.ts';
import { maxRelError } from '../helpers/random.ts';
import { CLIP_DIR, loadTextGolden, T5_DIR, TEXT_GOLDEN } from '../helpers/text-golden.ts';
import { cli, expectOneErrorLine } from './helpers.ts';

const CLIP_TOKENIZER = 'tests/fixtures/tokenizers/clip';
const T5_TOKENIZER = 'tests/fixtures/tokenizers/t5';

function lastLineIds(stdout: string): number[] {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as number[];
}

describe('flux-w4a4 tokenize', () => {
  it('prints the CLIP ids as a JSON array on the last line', async () => {
    const run = await cli('tokenize', '--tokenizer', CLIP_TOKENIZER, '--prompt', 'a photo of a cat');
    expect(run.code).toBe(0);
    expect(lastLineIds(run.stdout)).toEqual([49406, 320, 1125, 539, 320, 2368, ...Array(71).fill(49407)]);
  });

  it('T5 with --max-length', async () => {
    const run = await cli('tokenize', '--tokenizer', T5_TOKENIZER, '--prompt', 'a photo of a cat', '--max-length', '8');
    expect(lastLineIds(run.stdout)).toEqual([4, 5, 6, 4, 7, 1, 0, 0]);
  });

  it('a folder without a tokenizer is one clear line', async () => {
    const line = expectOneErrorLine(await cli('tokenize', '--tokenizer', TEXT_GOLDEN, '--prompt', 'x'), 1);
    expect(line).toContain('no tokenizer here');
  });
});

describe('flux-w4a4 encode', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flux-encode-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('--inputs: the golden ids give the golden outputs in fp32', async () => {
    const out = join(dir, 'fp32.safetensors');
    const run = await cli('encode', '--t5', T5_DIR, '--clip', CLIP_DIR, '--inputs', `${TEXT_GOLDEN}/encode.safetensors`, '--out', out, '--precision', 'float');
    expect(run.stderr).toContain('wrote');
    const golden = await loadTextGolden();
    const file = await openCheckpoint(out);
    expect(file.names().sort()).toEqual(['clip_hidden', 'clip_pooled', 't5_hidden']);
    expect(file.info('t5_hidden').shape).toEqual([1, 160, 64]);
    expect(maxRelError(await file.readFloat32('t5_hidden'), golden.t5Hidden)).toBeLessThan(1e-4);
    expect(maxRelError(await file.readFloat32('clip_hidden'), golden.clipHidden)).toBeLessThan(1e-4);
    expect(maxRelError(await file.readFloat32('clip_pooled'), golden.clipPooled)).toBeLessThan(1e-4);
    await file.close();
  });

  it('--prompt with only T5 writes only t5_hidden, at the tokenizer length', async () => {
    const out = join(dir, 'prompt.safetensors');
    const run = await cli('encode', '--t5', T5_DIR, '--prompt', 'a photo of a cat', '--t5-tokenizer', T5_TOKENIZER, '--out', out, '--precision', 'float');
    expect(run.code).toBe(0);
    const file = await openCheckpoint(out);
    expect(file.names()).toEqual(['t5_hidden']);
    expect(file.info('t5_hidden').shape).toEqual([1, 12, 64]);
    await file.close();
  });

  it('I32 ids out of the vocabulary are one clear line', async () => {
    const inputs = join(dir, 'bad-ids.safetensors');
    const ids = new Int32Array(77).fill(999);
    ids[0] = 5000;
    await writeFile(inputs, encodeSafetensors([{ name: 'clip_input_ids', dtype: 'I32', shape: [1, 77], data: new Uint8Array(ids.buffer) }]));
    const run = await cli('encode', '--clip', CLIP_DIR, '--inputs', inputs, '--out', join(dir, 'x.safetensors'));
    expect(run.code).toBe(1);
    // After the "loaded" progress line, the error is one line.
    expect(run.stderr.trim().split('\n').pop()).toBe('flux-w4a4: CLIP ids: id 5000 at position 0 is outside the vocabulary (0..999)');
  });

  it('usage mistakes exit 2', async () => {
    expectOneErrorLine(await cli('encode', '--out', join(dir, 'x.safetensors'), '--inputs', 'x'), 2);
    expectOneErrorLine(await cli('encode', '--clip', CLIP_DIR, '--out', join(dir, 'x.safetensors'), '--prompt', 'x'), 2);
  });
});
