/**
 * Component checkpoints through the weight cache (fake-indexeddb): the first open reads the source and stores
 * the header and every tensor read; a later open reads them back byte-identical without opening the source;
 * tensors never read before, and records found corrupt, come from the source again; out of quota, the error
 * says so and nothing of this cache is left.
 */
import 'fake-indexeddb/auto';
import { createStore, get, set } from 'idb-keyval';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FluxError } from '../../src/errors.ts';
import { WeightCache } from '../../src/weights/cache.ts';
import { CheckpointCache } from '../../src/weights/checkpoint-cache.ts';
import { openCheckpoint, SafetensorsFile, type TensorReader } from '../../src/weights/safetensors.ts';
import { rawSafetensors, recordingSource } from './helpers.ts';

let dbCount = 0;
function freshCache(): { cache: WeightCache; raw: ReturnType<typeof createStore> } {
  const dbName = `checkpoint-cache-test-${dbCount++}`;
  // Small chunks, so a tensor spans several and a damaged one is found by its checksum.
  return { cache: new WeightCache({ dbName, chunkBytes: 16 }), raw: createStore(dbName, 'entries') };
}

/** Two tensors: 'a' F32 [3, 5] (60 bytes) and 'b' BF16 [7] (14 bytes), with metadata. */
function checkpointBytes(): Uint8Array<ArrayBuffer> {
  const a = new Float32Array(15).map((_, i) => i * 0.5 - 3);
  const b = new Uint8Array(14).map((_, i) => i * 17 + 3);
  const data = new Uint8Array(74);
  data.set(new Uint8Array(a.buffer), 0);
  data.set(b, 60);
  return rawSafetensors(
    { __metadata__: { format: 'pt' }, a: { dtype: 'F32', shape: [3, 5], data_offsets: [0, 60] }, b: { dtype: 'BF16', shape: [7], data_offsets: [60, 74] } },
    data,
  );
}

/** An opener of the in-memory checkpoint that counts how often the source is opened. */
function opener(): { open: () => Promise<TensorReader>; opened: () => number } {
  let opened = 0;
  const bytes = checkpointBytes();
  return {
    open: async () => {
      opened++;
      return SafetensorsFile.open(recordingSource(bytes, 'vae.safetensors'));
    },
    opened: () => opened,
  };
}

async function readAll(reader: TensorReader): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const name of reader.names()) out[name] = Array.from((await reader.readTensor(name)).data);
  return out;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('CheckpointCache', () => {
  it('stores what a load reads and serves it to the next load without opening the source', async () => {
    const { cache } = freshCache();
    const source = opener();
    const expected = await readAll(await source.open());

    const first = new CheckpointCache(cache, 'https://example.test/model');
    const cold = await first.open('https://example.test/model/vae', source.open);
    expect(await readAll(cold)).toEqual(expected);
    await cold.close();
    expect(first.stats).toEqual({ cached: 0, fetched: 2, corrupt: 0 });
    expect(first.records).toHaveLength(3);

    const reads: number[] = [];
    const second = new CheckpointCache(cache, 'https://example.test/model');
    const before = source.opened();
    const warm = await second.open('https://example.test/model/vae', source.open, { onRead: (n) => reads.push(n) });
    expect(warm.metadata).toEqual({ format: 'pt' });
    expect(warm.info('a')).toMatchObject({ dtype: 'F32', shape: [3, 5], byteLength: 60 });
    expect(await readAll(warm)).toEqual(expected);
    expect(Array.from(await warm.readFloat32('a'))).toEqual(Array.from(new Float32Array(15).map((_, i) => i * 0.5 - 3)));
    expect(source.opened()).toBe(before);
    expect(second.stats).toEqual({ cached: 3, fetched: 0, corrupt: 0 });
    // Progress still moves, by the tensors' bytes.
    expect(reads).toEqual([60, 14, 60]);
    expect(() => warm.info('missing')).toThrow(/no tensor named "missing"/);
  });

  it('keys by identity and location, reads a tensor the first load skipped from the source, and repairs a corrupt one', async () => {
    const { cache, raw } = freshCache();
    const source = opener();
    const first = new CheckpointCache(cache, 'folder flux-demo 123');
    const partial = await first.open('vae', source.open);
    await partial.readTensor('b');
    await partial.close();

    // Another identity or location shares nothing.
    const other = new CheckpointCache(cache, 'folder other 123');
    await (await other.open('vae', source.open)).readTensor('b');
    expect(other.stats).toEqual({ cached: 0, fetched: 1, corrupt: 0 });

    const second = new CheckpointCache(cache, 'folder flux-demo 123');
    const reader = await second.open('vae', source.open);
    const opened = source.opened();
    const a = await reader.readTensor('a');
    expect(source.opened()).toBe(opened + 1);
    expect(second.stats).toEqual({ cached: 0, fetched: 1, corrupt: 0 });
    await reader.close();

    // Damage the second chunk of tensor a's record.
    const key = second.records.find((k) => k.endsWith('/tensor/a'))!;
    const chunk = (await get<Uint8Array>(`chunk/${key}/1`, raw))!;
    chunk[0]! ^= 0xff;
    await set(`chunk/${key}/1`, chunk, raw);
    const third = new CheckpointCache(cache, 'folder flux-demo 123');
    const repaired = await third.open('vae', source.open);
    expect(Array.from((await repaired.readTensor('a')).data)).toEqual(Array.from(a.data));
    expect(third.stats).toEqual({ cached: 0, fetched: 1, corrupt: 1 });
    const fourth = new CheckpointCache(cache, 'folder flux-demo 123');
    await (await fourth.open('vae', source.open)).readTensor('a');
    expect(fourth.stats).toEqual({ cached: 1, fetched: 0, corrupt: 0 });
  });

  it('out of quota: a clear error, and none of its records left', async () => {
    const { cache } = freshCache();
    const real = IDBObjectStore.prototype.put;
    vi.spyOn(IDBObjectStore.prototype, 'put').mockImplementation(function (this: IDBObjectStore, value: unknown, key?: IDBValidKey) {
      // The header goes in; tensor a's second chunk does not.
      if (typeof key === 'string' && key.startsWith('chunk/') && key.endsWith('/tensor/a/1')) throw new DOMException('quota', 'QuotaExceededError');
      return real.call(this, value, key);
    });
    const checkpoints = new CheckpointCache(cache, 'https://example.test/model');
    const reader = await checkpoints.open('https://example.test/model/vae', opener().open);
    const error = await reader.readTensor('a').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FluxError);
    expect((error as FluxError).code).toBe('quota-exceeded');
    expect((error as FluxError).message).toMatch(/^caching the model's VAE and text encoder tensors needs 60 more bytes of browser storage than are free/);
    vi.restoreAllMocks();
    expect(await cache.size()).toBe(0);
  });

  it('is what openCheckpoint uses when its options carry one', async () => {
    const { cache } = freshCache();
    const checkpoints = new CheckpointCache(cache, 'fixtures');
    const location = new URL('../fixtures/flux-tiny-a/transformer.safetensors', import.meta.url).pathname;
    const reader = await openCheckpoint(location, { cache: checkpoints });
    const plain = await openCheckpoint(location);
    const name = plain.names()[0]!;
    expect(Array.from(await reader.readFloat32(name))).toEqual(Array.from(await plain.readFloat32(name)));
    await Promise.all([reader.close(), plain.close()]);
    expect(checkpoints.stats).toEqual({ cached: 0, fetched: 1, corrupt: 0 });
    expect(checkpoints.records).toHaveLength(2);
  });
});
