import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFileSource } from '#platform';
import { FluxError } from '../../src/errors.ts';
import { openCheckpoint, SafetensorsFile, ShardedSafetensors, type TensorReader } from '../../src/weights/safetensors.ts';
import { encodeSafetensors, type TensorToWrite } from '../../src/weights/safetensors-writer.ts';
import { sameBytes, TRANSFORMER } from './helpers.ts';

const SHARDS = ['diffusion_pytorch_model-00001-of-00002.safetensors', 'diffusion_pytorch_model-00002-of-00002.safetensors'];
const INDEX = 'diffusion_pytorch_model.safetensors.index.json';
/** Tensors before this index go to the first shard. */
const SPLIT = 37;

describe('sharded checkpoints', () => {
  let dir: string;
  let original: SafetensorsFile;
  let indexJson: string;
  let totalSize: number;

  // Splits the fixture in two shards plus a diffusers-style index, as real multi-GB checkpoints come.
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flux-w4a4-sharded-'));
    original = await SafetensorsFile.open(await openFileSource(TRANSFORMER));
    const names = original.names();
    const halves = [names.slice(0, SPLIT), names.slice(SPLIT)];
    const weightMap: Record<string, string> = {};
    totalSize = 0;
    for (const [i, half] of halves.entries()) {
      const tensors: TensorToWrite[] = [];
      for (const name of half) {
        tensors.push({ name, ...(await original.readTensor(name)) });
        weightMap[name] = SHARDS[i]!;
        totalSize += original.info(name).byteLength;
      }
      await writeFile(join(dir, SHARDS[i]!), encodeSafetensors(tensors));
    }
    indexJson = JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap });
    await writeFile(join(dir, INDEX), indexJson);
  });
  afterAll(async () => {
    await original.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function expectSameAsOriginal(reader: TensorReader): Promise<void> {
    const names = original.names();
    expect(reader.names()).toEqual(names);
    for (const [i, name] of names.entries()) {
      const { offset, file, ...info } = reader.info(name);
      const { offset: originalOffset, file: originalFile, ...expected } = original.info(name);
      expect(info).toEqual(expected);
      expect(file).toBe(join(dir, i < SPLIT ? SHARDS[0]! : SHARDS[1]!));
      expect(sameBytes((await reader.readTensor(name)).data, (await original.readTensor(name)).data), name).toBe(true);
    }
    expect(await reader.readFloat32('final_layer.linear.bias')).toEqual(await original.readFloat32('final_layer.linear.bias'));
  }

  it('reads back every tensor identically through ShardedSafetensors.open', async () => {
    const reader = await ShardedSafetensors.open(indexJson, (shard) => openFileSource(join(dir, shard)), INDEX);
    try {
      expect(reader.metadata).toEqual({ total_size: String(totalSize) });
      await expectSameAsOriginal(reader);
      await expect(reader.readTensor('img_in.weights')).rejects.toThrow(`${INDEX}: no tensor named "img_in.weights"`);
    } finally {
      await reader.close();
    }
  });

  it('opens through openCheckpoint from the index or its folder', async () => {
    for (const location of [join(dir, INDEX), dir]) {
      const reader = await openCheckpoint(location);
      try {
        expect(reader.name).toBe(join(dir, INDEX));
        await expectSameAsOriginal(reader);
      } finally {
        await reader.close();
      }
    }
  });

  it('opens an index over HTTP, fetching shards next to it', async () => {
    // A static server with Range support, serving the shard folder.
    const server = createServer(async (req, res) => {
      const body = await readFile(join(dir, decodeURIComponent(req.url!.slice('/model/'.length)))).catch(() => undefined);
      const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      if (!body || !range) {
        res.writeHead(body ? 200 : 404);
        res.end(body);
        return;
      }
      const [first, last] = [Number(range[1]), Math.min(Number(range[2]), body.length - 1)];
      res.writeHead(206, { 'Content-Range': `bytes ${first}-${last}/${body.length}` });
      res.end(body.subarray(first, last + 1));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/model/`;
      const reader = await openCheckpoint(`${base}${INDEX}`);
      try {
        expect(reader.info('img_in.weight').file).toBe(`${base}${SHARDS[0]}`);
        expect(reader.info('final_layer.linear.bias').file).toBe(`${base}${SHARDS[1]}`);
        expect(await reader.readFloat32('final_layer.linear.bias')).toEqual(await original.readFloat32('final_layer.linear.bias'));
      } finally {
        await reader.close();
      }
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('rejects an index that places a tensor in the wrong shard', async () => {
    const index = JSON.parse(indexJson);
    index.weight_map['img_in.weight'] = SHARDS[1];
    await expect(ShardedSafetensors.open(JSON.stringify(index), (shard) => openFileSource(join(dir, shard)), INDEX)).rejects.toThrow(
      `${INDEX}: weight_map puts tensor "img_in.weight" in ${join(dir, SHARDS[1]!)}, which does not contain it`,
    );
  });

  it('rejects malformed indexes and shard paths outside the folder', async () => {
    const resolve = (shard: string) => openFileSource(join(dir, shard));
    await expect(ShardedSafetensors.open('{"weight_map": ', resolve, INDEX)).rejects.toThrow(/index is not valid JSON/);
    await expect(ShardedSafetensors.open('{"metadata": {}}', resolve, INDEX)).rejects.toThrow(/no "weight_map" object/);
    await expect(ShardedSafetensors.open('{"weight_map": {"a": "../secret.safetensors"}}', resolve, INDEX)).rejects.toThrow(
      /not a plain file name/,
    );
    const missingShard = ShardedSafetensors.open('{"weight_map": {"a": "gone.safetensors"}}', resolve, INDEX);
    await expect(missingShard).rejects.toBeInstanceOf(FluxError);
    await expect(missingShard).rejects.toThrow(/gone\.safetensors: cannot open/);
  });
});
