/** The IndexedDB weight cache on fake-indexeddb: chunking, manifests last, verification, quota, list/delete/clear. */
import 'fake-indexeddb/auto';
import { createStore, del, get, set } from 'idb-keyval';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FluxError } from '../../src/errors.ts';
import { CorruptCacheEntry, WeightCache } from '../../src/weights/cache.ts';

let dbCount = 0;
/** A fresh database per test, and a handle on its raw store to damage entries. */
function freshCache(chunkBytes = 10): { cache: WeightCache; raw: ReturnType<typeof createStore> } {
  const dbName = `cache-test-${dbCount++}`;
  return { cache: new WeightCache({ dbName, chunkBytes }), raw: createStore(dbName, 'entries') };
}

const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

function manifest(key: string, records: string[], bytes = 1) {
  return { key, label: `model ${key}`, bytes, createdAt: 1000 + records.length, precision: 'mixed', records, payload: { note: key } };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('WeightCache records', () => {
  it('round-trips a record over several chunks, and an empty one', async () => {
    const { cache, raw } = freshCache(10);
    const data = bytes(35);
    await cache.writeRecord('m/layer', data);
    expect(await cache.readRecord('m/layer')).toEqual(data);
    expect(await cache.recordBytes('m/layer')).toBe(35);
    // 35 bytes at 10 per chunk: 4 chunks, the last of 5 bytes.
    expect((await get<Uint8Array>('chunk/m/layer/3', raw))?.byteLength).toBe(5);
    expect(await get('chunk/m/layer/4', raw)).toBeUndefined();
    await cache.writeRecord('m/empty', new Uint8Array(0));
    expect(await cache.readRecord('m/empty')).toEqual(new Uint8Array(0));
    expect(await cache.readRecord('m/none')).toBeUndefined();
  });

  it('detects a damaged, resized or missing chunk and deletes the record', async () => {
    for (const damage of ['flip', 'truncate', 'remove'] as const) {
      const { cache, raw } = freshCache(10);
      await cache.writeRecord('r', bytes(30));
      const chunk = (await get<Uint8Array>('chunk/r/1', raw))!;
      if (damage === 'flip') {
        chunk[3]! ^= 1;
        await set('chunk/r/1', chunk, raw);
      } else if (damage === 'truncate') await set('chunk/r/1', chunk.subarray(0, 9).slice(), raw);
      else await del('chunk/r/1', raw);
      const error = await cache.readRecord('r').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CorruptCacheEntry);
      expect((error as Error).message).toMatch(damage === 'flip' ? /chunk 1 fails its checksum/ : damage === 'truncate' ? /chunk 1 has 9 bytes/ : /chunk 1 is missing/);
      // Dropped: gone entirely, chunks included.
      expect(await cache.readRecord('r')).toBeUndefined();
      expect(await get('chunk/r/0', raw)).toBeUndefined();
    }
  });

  it('a write interrupted before its manifest leaves no readable record', async () => {
    const { cache, raw } = freshCache(10);
    await cache.writeRecord('r', bytes(30, 1));
    // Rewriting unlinks the old manifest first, so a crash after some chunks leaves chunks but no record.
    await cache.deleteRecord('r');
    await set('chunk/r/0', bytes(10, 9), raw);
    await set('chunk/r/1', bytes(10, 9), raw);
    expect(await cache.readRecord('r')).toBeUndefined();
    expect(await cache.hasRecord('r')).toBe(false);
    // A later write replaces the stale chunks.
    await cache.writeRecord('r', bytes(12, 4));
    expect(await cache.readRecord('r')).toEqual(bytes(12, 4));
    expect(await get('chunk/r/2', raw)).toBeUndefined();
  });

  it('turns QuotaExceededError into a FluxError and removes the chunks it wrote', async () => {
    const { cache, raw } = freshCache(10);
    const real = IDBObjectStore.prototype.put;
    let puts = 0;
    vi.spyOn(IDBObjectStore.prototype, 'put').mockImplementation(function (this: IDBObjectStore, value: unknown, key?: IDBValidKey) {
      if (++puts === 3) throw new DOMException('quota', 'QuotaExceededError');
      return real.call(this, value, key);
    });
    const error = await cache.writeRecord('big', bytes(50)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FluxError);
    expect((error as FluxError).code).toBe('quota-exceeded');
    expect((error as FluxError).message).toMatch(/out of storage quota writing record big \(50 bytes\)/);
    vi.restoreAllMocks();
    expect(await get('chunk/big/0', raw)).toBeUndefined();
    expect(await get('chunk/big/1', raw)).toBeUndefined();
    expect(await cache.readRecord('big')).toBeUndefined();
  });
});

describe('WeightCache models', () => {
  it('lists, sizes, deletes (keeping shared records) and clears', async () => {
    const { cache } = freshCache(8);
    await cache.writeRecord('a', bytes(20));
    await cache.writeRecord('b', bytes(5));
    await cache.writeRecord('c', bytes(7));
    await cache.writeModel(manifest('one', ['a', 'b'], 25));
    await cache.writeModel(manifest('two', ['b', 'c', 'x'], 12));
    const list = await cache.list();
    expect(list.map((m) => m.key)).toEqual(['two', 'one']);
    expect(list[1]).toEqual({ key: 'one', label: 'model one', bytes: 25, createdAt: 1002, precision: 'mixed' });
    expect((await cache.readModel('one'))?.payload).toEqual({ note: 'one' });
    expect(await cache.size()).toBe(32);

    await cache.delete('one');
    expect((await cache.list()).map((m) => m.key)).toEqual(['two']);
    expect(await cache.hasRecord('a')).toBe(false);
    expect(await cache.readRecord('b')).toEqual(bytes(5));
    expect(await cache.size()).toBe(12);

    await cache.clear();
    expect(await cache.list()).toEqual([]);
    expect(await cache.size()).toBe(0);
  });

  it('estimate and persist go to navigator.storage, and degrade without it', async () => {
    const { cache } = freshCache();
    vi.stubGlobal('navigator', { storage: { estimate: async () => ({ usage: 5, quota: 100 }), persist: async () => true } });
    expect(await cache.estimate()).toEqual({ usage: 5, quota: 100 });
    expect(await cache.persist()).toBe(true);
    vi.stubGlobal('navigator', {});
    expect(await cache.estimate()).toBeUndefined();
    expect(await cache.persist()).toBe(false);
    vi.unstubAllGlobals();
  });
});
