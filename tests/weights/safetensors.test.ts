import { copyFile, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFileSource } from '#platform';
import { FluxError } from '../../src/errors.ts';
import { bf16ToF32 } from '../../src/weights/dtypes.ts';
import { openCheckpoint, SafetensorsFile, sibling } from '../../src/weights/safetensors.ts';
import { blobSource } from '../../src/weights/sources.ts';
import { DIFFUSERS_TRANSFORMER, FIXTURES, FORWARD, rawSafetensors, recordingSource, sameBytes, TRANSFORMER } from './helpers.ts';

/** Opens in-memory bytes as a safetensors file. */
function openBytes(bytes: Uint8Array<ArrayBuffer>, name = 'test.safetensors'): Promise<SafetensorsFile> {
  return SafetensorsFile.open(blobSource(new Blob([bytes]), name));
}

/** Expects opening `bytes` to fail with a one-line FluxError of `code` whose message matches `pattern`. */
async function expectOpenError(bytes: Uint8Array<ArrayBuffer>, code: FluxError['code'], pattern: RegExp): Promise<void> {
  const error = await openBytes(bytes, 'bad.safetensors').then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(FluxError);
  const flux = error as FluxError;
  expect(flux.code).toBe(code);
  expect(flux.message).toMatch(pattern);
  expect(flux.message).toMatch(/^bad\.safetensors: /);
  expect(flux.message).not.toContain('\n');
}

describe('the flux-tiny-a reference transformer (BFL layout)', () => {
  let file: SafetensorsFile;
  beforeAll(async () => {
    file = await SafetensorsFile.open(await openFileSource(TRANSFORMER));
  });
  afterAll(() => file.close());

  it('lists 100 BF16 tensors in file order with their shapes', () => {
    const names = file.names();
    expect(names).toHaveLength(100);
    expect(names.slice(0, 3)).toEqual(['img_in.weight', 'img_in.bias', 'time_in.in_layer.weight']);
    expect(names.at(-1)).toBe('final_layer.adaLN_modulation.1.bias');
    expect(new Set(names.map((n) => file.info(n).dtype))).toEqual(new Set(['BF16']));
    expect(file.info('img_in.weight')).toMatchObject({ dtype: 'BF16', shape: [256, 64], byteLength: 32768, offset: 8 + 10088 });
    expect(file.info('double_blocks.0.img_attn.qkv.weight').shape).toEqual([768, 256]);
    expect(file.info('single_blocks.3.linear1.weight').shape).toEqual([1792, 256]);
    expect(file.info('single_blocks.0.linear2.weight').shape).toEqual([256, 1280]);
    expect(file.info('final_layer.adaLN_modulation.1.weight').shape).toEqual([512, 256]);
    expect(file.metadata).toEqual({});
    const offsets = names.map((n) => file.info(n).offset);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
  });

  it('reads a tensor and decodes it to float32', async () => {
    const raw = await file.readTensor('img_in.bias');
    expect(raw.dtype).toBe('BF16');
    expect(raw.shape).toEqual([256]);
    expect(raw.data.byteLength).toBe(512);
    const bytes = await readFile(TRANSFORMER);
    const offset = file.info('img_in.bias').offset;
    expect(raw.data).toEqual(new Uint8Array(bytes.subarray(offset, offset + 512)));
    const values = await file.readFloat32('img_in.bias');
    expect(values).toHaveLength(256);
    expect(values[7]).toBe(bf16ToF32(bytes.readUInt16LE(offset + 14)));
  });

  it('holds the same parameters as the diffusers copy', async () => {
    const diffusers = await openCheckpoint(DIFFUSERS_TRANSFORMER);
    try {
      expect(diffusers.names()).toHaveLength(140);
      expect(sameBytes((await diffusers.readTensor('x_embedder.weight')).data, (await file.readTensor('img_in.weight')).data)).toBe(true);
      // to_k is the middle third of the fused qkv rows: a byte range.
      const qkv = (await file.readTensor('double_blocks.1.img_attn.qkv.weight')).data;
      const third = qkv.byteLength / 3;
      expect(sameBytes((await diffusers.readTensor('transformer_blocks.1.attn.to_k.weight')).data, qkv.subarray(third, 2 * third))).toBe(true);
    } finally {
      await diffusers.close();
    }
  });

  it('names the file and the tensor for an unknown name', async () => {
    await expect(file.readTensor('img_in.weights')).rejects.toThrow(/transformer\.safetensors: no tensor named "img_in\.weights"/);
    expect(() => file.info('nope')).toThrow(FluxError);
  });
});

describe('reading lazily', () => {
  it('reads only the header on open, then one read per tensor', async () => {
    const bytes = new Uint8Array(await readFile(FORWARD));
    const source = recordingSource(bytes);
    const file = await SafetensorsFile.open(source);
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(source.reads).toEqual([
      [0, 8],
      [8, headerLength],
    ]);
    expect(Array.from(await file.readFloat32('guidance'))).toEqual([3.5]);
    expect((await file.readFloat32('timesteps'))[0]).toBeCloseTo(0.73, 7);
    expect(source.reads).toHaveLength(4);
    expect(source.reads[2]).toEqual([file.info('guidance').offset, 4]);
    expect(file.info('out').shape).toEqual([1, 64, 64]);
  });
});

describe('corrupt files', () => {
  const bf16Pair = { dtype: 'BF16', shape: [2], data_offsets: [0, 4] };

  it('rejects a file shorter than the length field', () =>
    expectOpenError(new Uint8Array(5), 'bad-format', /too small/));

  it('rejects garbage JSON', () => expectOpenError(rawSafetensors('{"a": garbage\n}'), 'bad-format', /not valid JSON/));

  it('rejects a header that is not an object', () => expectOpenError(rawSafetensors([1, 2]), 'bad-format', /not a JSON object/));

  it('rejects a header length bigger than the file', () =>
    expectOpenError(rawSafetensors({}, new Uint8Array(0), 1000n), 'bad-format', /header length 1000 does not fit in the file \(10 bytes, 2 after the length field\)/));

  it('rejects an absurd header length', () =>
    expectOpenError(rawSafetensors({}, new Uint8Array(0), 1n << 40n), 'bad-format', /exceeds the 104857600-byte limit/));

  it('rejects an unknown dtype, naming the tensor', () =>
    expectOpenError(rawSafetensors({ w: { ...bf16Pair, dtype: 'Q4' } }, new Uint8Array(4)), 'unsupported-dtype', /tensor "w": unknown dtype "Q4"/));

  it('rejects a byte length that does not match the shape', () =>
    expectOpenError(rawSafetensors({ w: { ...bf16Pair, shape: [3] } }, new Uint8Array(4)), 'bad-shape', /"w": BF16 \[3\] needs 6 bytes .* span 4/));

  it('rejects negative or fractional dimensions', async () => {
    await expectOpenError(rawSafetensors({ w: { ...bf16Pair, shape: [-2] } }, new Uint8Array(4)), 'bad-format', /shape \[-2\]/);
    await expectOpenError(rawSafetensors({ w: { ...bf16Pair, shape: [1.5] } }, new Uint8Array(4)), 'bad-format', /shape \[1.5\]/);
  });

  it('rejects data_offsets with begin after end', () =>
    expectOpenError(rawSafetensors({ w: { ...bf16Pair, data_offsets: [4, 0] } }, new Uint8Array(4)), 'bad-format', /begin after end/));

  it('rejects overlapping tensors, naming both', () =>
    expectOpenError(
      rawSafetensors({ a: bf16Pair, b: { ...bf16Pair, data_offsets: [2, 6] } }, new Uint8Array(6)),
      'bad-format',
      /tensors "a" \[0, 4\) and "b" \[2, 6\) overlap/,
    ));

  it('rejects non-string metadata', () =>
    expectOpenError(rawSafetensors({ __metadata__: { step: 3 } }), 'bad-format', /__metadata__ entry "step" is not a string/));

  it('accepts zero-size tensors and string metadata', async () => {
    const file = await openBytes(rawSafetensors({ __metadata__: { format: 'pt' }, empty: { dtype: 'F32', shape: [0, 3], data_offsets: [0, 0] } }));
    expect(file.metadata).toEqual({ format: 'pt' });
    expect((await file.readTensor('empty')).data.byteLength).toBe(0);
  });
});

describe('truncated files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flux-w4a4-truncated-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('names the first tensor past the end and the sizes', async () => {
    const copy = join(dir, 'transformer.safetensors');
    await copyFile(TRANSFORMER, copy);
    const full = await SafetensorsFile.open(await openFileSource(copy));
    const names = full.names();
    await full.close();
    const cut = 9_000_000;
    await truncate(copy, cut);
    const dataStart = 8 + 10088;
    const firstMissing = names.find((n) => {
      const info = full.info(n);
      return info.offset + info.byteLength > cut;
    })!;
    const error = await SafetensorsFile.open(await openFileSource(copy)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FluxError);
    const message = (error as FluxError).message;
    expect(message).toContain(`${copy}: file is truncated: tensor "${firstMissing}"`);
    expect(message).toContain(`only ${cut - dataStart} data bytes`);
    expect(message).toContain(`file is ${cut} bytes, the header needs 18453488`);
  });

  it('fails a read when the file shrinks after opening', async () => {
    const copy = join(dir, 'forward.safetensors');
    await writeFile(copy, await readFile(FORWARD));
    const file = await SafetensorsFile.open(await openFileSource(copy));
    await truncate(copy, 1000);
    await expect(file.readTensor('out')).rejects.toThrow(FluxError);
    await file.close();
  });
});

describe('openCheckpoint', () => {
  it('opens a component folder through its well-known file name', async () => {
    const reader = await openCheckpoint(`${FIXTURES}transformer`);
    expect(reader.name).toBe(`${FIXTURES}transformer/diffusion_pytorch_model.safetensors`);
    expect(reader.names()).toHaveLength(140);
    expect(reader.info('proj_out.weight').shape).toEqual([64, 256]);
    await reader.close();
  });

  it('opens a component folder over HTTP by trying the well-known names (missing ones answer 404)', async () => {
    const bytes = await readFile(DIFFUSERS_TRANSFORMER);
    const asked: string[] = [];
    const server = createServer((req, res) => {
      asked.push(`${req.method} ${req.url}`);
      if (req.url !== '/model/transformer/diffusion_pytorch_model.safetensors') return void res.writeHead(404).end();
      const [first, last] = (/^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '') ?? []).slice(1).map(Number);
      const end = Math.min(last!, bytes.length - 1);
      res.writeHead(206, { 'Content-Range': `bytes ${first}-${end}/${bytes.length}` }).end(bytes.subarray(first, end + 1));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/model`;
      // A folder URL without its trailing slash names the folder, not a sibling of it.
      expect(sibling(`${base}/transformer`, 'config.json')).toBe(`${base}/transformer/config.json`);
      const reader = await openCheckpoint(`${base}/transformer`);
      expect(reader.names()).toHaveLength(140);
      await reader.close();
      // In CHECKPOINT_FILE_NAMES order: a packed model first, then the shard index, then the single file.
      expect(asked.slice(0, 3)).toEqual([
        'GET /model/transformer/flux-w4a4-packed.safetensors',
        'GET /model/transformer/diffusion_pytorch_model.safetensors.index.json',
        'GET /model/transformer/diffusion_pytorch_model.safetensors',
      ]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('fails clearly for a folder without a checkpoint', async () => {
    await expect(openCheckpoint(FIXTURES)).rejects.toThrow(/no checkpoint found/);
    await expect(openCheckpoint(`${FIXTURES}missing.safetensors`)).rejects.toThrow(/missing\.safetensors: cannot open/);
  });
});
