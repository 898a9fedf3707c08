/**
 * The browser's weight cache: quantized layers kept in IndexedDB (through idb-keyval) so a model loads in
 * seconds on later visits. Layout and guarantees: docs/packed-format.md § "Browser cache".
 *
 * Two kinds of entries live in one object store:
 *   - records: one layer (or vector) at one precision, as bytes split into chunks of bounded size, each chunk's
 *     size and SHA-256 in the record's manifest, which is written after its chunks;
 *   - models: a manifest naming the records of a whole model at one precision map, written after all of them.
 * So a crash or an abort leaves at most complete-but-unreferenced records (reused by the next load, removed by
 * `clear`), never a model entry that looks valid but is not. Reads verify every chunk; a corrupt one is reported
 * as a CorruptCacheEntry and the caller rebuilds from the source.
 *
 * This module knows nothing about models: what a record's bytes mean is up to the caller (src/model/cached-weights.ts).
 */
import { clear as idbClear, createStore, del, delMany, get, promisifyRequest, set, type UseStore } from 'idb-keyval';
import { FluxError } from '../errors.ts';

/** Version of the cache's layout and of the records' encoding; entries of another version are ignored. */
export const CACHE_FORMAT_VERSION = 1;

/**
 * Chunk size: large enough that a FLUX layer (19 MB packed INT4 MLP, 75 MB bf16 float) is a handful of puts,
 * small enough that a put never needs one huge structured clone (Chromium spills big values to blob files).
 */
export const DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024;

const DEFAULT_DB_NAME = 'flux-w4a4-weights';
const STORE_NAME = 'entries';
const MODEL_PREFIX = 'model/';
const RECORD_PREFIX = 'record/';
const CHUNK_PREFIX = 'chunk/';

/** What the demo page lists. */
export interface CachedModelInfo {
  readonly key: string;
  /** Human-readable name of the source (its folder or URL). */
  readonly label: string;
  /** Bytes of every record the entry uses (shared records are counted in each entry). */
  readonly bytes: number;
  /** Milliseconds since the epoch. */
  readonly createdAt: number;
  /** The precision the entry was quantized at, e.g. `mixed` or `w4a4 +int8:*.proj_out`. */
  readonly precision: string;
}

/** A whole model's entry: the records it is made of and whatever the model layer needs to rebuild it. */
export interface ModelManifest extends CachedModelInfo {
  readonly formatVersion: number;
  /** Record keys, in load order. */
  readonly records: readonly string[];
  /** JSON-able data of the model layer (config, precision map, …). */
  readonly payload: unknown;
}

interface ChunkInfo {
  readonly bytes: number;
  /** Hex SHA-256 of the chunk. */
  readonly sha256: string;
}

interface RecordManifest {
  readonly formatVersion: number;
  readonly bytes: number;
  readonly chunks: readonly ChunkInfo[];
}

/** A record whose chunks are missing, of the wrong size or with a wrong checksum. */
export class CorruptCacheEntry extends FluxError {
  constructor(
    readonly recordKey: string,
    why: string,
  ) {
    super('bad-format', `weight cache: record ${recordKey} is corrupt (${why})`);
  }
}

export interface StorageEstimateInfo {
  readonly usage: number;
  readonly quota: number;
}

export interface WeightCacheOptions {
  /** IndexedDB database name; default 'flux-w4a4-weights'. */
  readonly dbName?: string;
  /** Bytes per chunk; default DEFAULT_CHUNK_BYTES. */
  readonly chunkBytes?: number;
}

function isQuotaError(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { name?: unknown }).name === 'QuotaExceededError';
}

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

function chunkKey(recordKey: string, index: number): string {
  return `${CHUNK_PREFIX}${recordKey}/${index}`;
}

function storageManager(): StorageManager | undefined {
  return typeof navigator === 'undefined' ? undefined : navigator.storage;
}

export class WeightCache {
  private readonly store: UseStore;
  readonly chunkBytes: number;

  constructor(options: WeightCacheOptions = {}) {
    if (typeof indexedDB === 'undefined') throw new FluxError('bad-argument', 'weight cache: IndexedDB is not available here');
    this.chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    if (!Number.isSafeInteger(this.chunkBytes) || this.chunkBytes <= 0) throw new FluxError('bad-argument', `weight cache: chunk size must be a positive integer, got ${this.chunkBytes}`);
    this.store = createStore(options.dbName ?? DEFAULT_DB_NAME, STORE_NAME);
  }

  /** Every complete model entry of this format version, newest first. */
  async list(): Promise<CachedModelInfo[]> {
    const out: CachedModelInfo[] = [];
    for (const key of await this.keysWith(MODEL_PREFIX)) {
      const m = await get<ModelManifest>(key, this.store);
      if (m?.formatVersion === CACHE_FORMAT_VERSION) out.push({ key: m.key, label: m.label, bytes: m.bytes, createdAt: m.createdAt, precision: m.precision });
    }
    return out.sort((a, b) => b.createdAt - a.createdAt);
  }

  /** Bytes of all model entries (records shared by several entries counted once). */
  async size(): Promise<number> {
    let bytes = 0;
    for (const key of await this.keysWith(RECORD_PREFIX)) bytes += (await get<RecordManifest>(key, this.store))?.bytes ?? 0;
    return bytes;
  }

  /** Removes a model entry and the records no other entry uses. */
  async delete(key: string): Promise<void> {
    const manifest = await this.readModel(key);
    await del(MODEL_PREFIX + key, this.store);
    if (!manifest) return;
    const used = new Set<string>();
    for (const other of await this.keysWith(MODEL_PREFIX)) for (const r of (await get<ModelManifest>(other, this.store))?.records ?? []) used.add(r);
    for (const record of manifest.records) if (!used.has(record)) await this.deleteRecord(record);
  }

  /** Removes everything, unreferenced records of interrupted loads included. */
  async clear(): Promise<void> {
    await idbClear(this.store);
  }

  /** The origin's storage use and quota (navigator.storage.estimate), or undefined where unavailable. */
  async estimate(): Promise<StorageEstimateInfo | undefined> {
    const e = await storageManager()?.estimate?.();
    return e && { usage: e.usage ?? 0, quota: e.quota ?? 0 };
  }

  /** Asks the browser not to evict the cache under storage pressure; true when granted. */
  async persist(): Promise<boolean> {
    return (await storageManager()?.persist?.()) ?? false;
  }

  async readModel(key: string): Promise<ModelManifest | undefined> {
    const m = await get<ModelManifest>(MODEL_PREFIX + key, this.store);
    return m?.formatVersion === CACHE_FORMAT_VERSION ? m : undefined;
  }

  /** Writes a model's manifest; call it only once every record it names is written. */
  async writeModel(manifest: Omit<ModelManifest, 'formatVersion'>): Promise<void> {
    await this.guardQuota(`model entry ${manifest.key}`, 0, () => set(MODEL_PREFIX + manifest.key, { ...manifest, formatVersion: CACHE_FORMAT_VERSION }, this.store));
  }

  /** Drops a model's manifest (its records stay for reuse). */
  async dropModel(key: string): Promise<void> {
    await del(MODEL_PREFIX + key, this.store);
  }

  async hasRecord(key: string): Promise<boolean> {
    return (await get<RecordManifest>(RECORD_PREFIX + key, this.store))?.formatVersion === CACHE_FORMAT_VERSION;
  }

  /** Bytes of a stored record, or undefined if there is none. */
  async recordBytes(key: string): Promise<number | undefined> {
    const m = await get<RecordManifest>(RECORD_PREFIX + key, this.store);
    return m?.formatVersion === CACHE_FORMAT_VERSION ? m.bytes : undefined;
  }

  /**
   * A record's bytes, every chunk checked against its size and checksum; undefined if there is no record.
   * Throws CorruptCacheEntry (after deleting the record) if a chunk is missing or damaged.
   */
  async readRecord(key: string): Promise<Uint8Array<ArrayBuffer> | undefined> {
    const manifest = await get<RecordManifest>(RECORD_PREFIX + key, this.store);
    if (manifest?.formatVersion !== CACHE_FORMAT_VERSION) return undefined;
    const out = new Uint8Array(manifest.bytes);
    let at = 0;
    for (const [i, info] of manifest.chunks.entries()) {
      const chunk = await get<unknown>(chunkKey(key, i), this.store);
      const why =
        !(chunk instanceof Uint8Array) ? `chunk ${i} is missing`
        : chunk.byteLength !== info.bytes ? `chunk ${i} has ${chunk.byteLength} bytes, the manifest says ${info.bytes}`
        : at + info.bytes > manifest.bytes ? `chunk ${i} runs past the record's ${manifest.bytes} bytes`
        : (await sha256Hex(chunk as Uint8Array<ArrayBuffer>)) !== info.sha256 ? `chunk ${i} fails its checksum`
        : undefined;
      if (why) {
        await this.deleteRecord(key);
        throw new CorruptCacheEntry(key, why);
      }
      out.set(chunk as Uint8Array, at);
      at += info.bytes;
    }
    if (at !== manifest.bytes) {
      await this.deleteRecord(key);
      throw new CorruptCacheEntry(key, `its chunks hold ${at} of ${manifest.bytes} bytes`);
    }
    return out;
  }

  /**
   * Stores a record: any old version is unlinked first, then the chunks are written, then the manifest, so an
   * interrupted write leaves no readable record. Out of quota: the chunks written are removed and a FluxError
   * 'quota-exceeded' is thrown.
   */
  async writeRecord(key: string, bytes: Uint8Array): Promise<void> {
    await this.deleteRecord(key);
    const chunks: ChunkInfo[] = [];
    try {
      for (let at = 0, i = 0; at < bytes.byteLength || i === 0; at += this.chunkBytes, i++) {
        // A copy, so the stored value is exactly the chunk and not the whole buffer behind a view.
        const chunk = bytes.slice(at, Math.min(at + this.chunkBytes, bytes.byteLength));
        chunks.push({ bytes: chunk.byteLength, sha256: await sha256Hex(chunk) });
        await this.guardQuota(`record ${key}`, bytes.byteLength, () => set(chunkKey(key, i), chunk, this.store));
      }
      const manifest: RecordManifest = { formatVersion: CACHE_FORMAT_VERSION, bytes: bytes.byteLength, chunks };
      await this.guardQuota(`record ${key}`, bytes.byteLength, () => set(RECORD_PREFIX + key, manifest, this.store));
    } catch (e) {
      await delMany(chunks.map((_, i) => chunkKey(key, i)), this.store).catch(() => {});
      throw e;
    }
  }

  async deleteRecord(key: string): Promise<void> {
    const manifest = await get<RecordManifest>(RECORD_PREFIX + key, this.store);
    await del(RECORD_PREFIX + key, this.store);
    // Chunks of an unfinished write have no manifest: remove every chunk key of the record.
    const chunkKeys = (await this.keysWith(`${CHUNK_PREFIX}${key}/`)).filter((k) => /^\d+$/.test(k.slice(CHUNK_PREFIX.length + key.length + 1)));
    if (manifest || chunkKeys.length > 0) await delMany(chunkKeys, this.store);
  }

  /** Keys starting with `prefix`, from the key index (no values are read). */
  private async keysWith(prefix: string): Promise<string[]> {
    const range = IDBKeyRange.bound(prefix, `${prefix}\uffff`);
    const found = await this.store('readonly', (s) => promisifyRequest(s.getAllKeys(range)));
    return found.filter((k): k is string => typeof k === 'string');
  }

  private async guardQuota(what: string, bytes: number, write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (e) {
      if (!isQuotaError(e)) throw e;
      const estimate = await this.estimate().catch(() => undefined);
      const room = estimate ? `; ${estimate.usage} of ${estimate.quota} bytes of the origin's quota are in use` : '';
      throw new FluxError('quota-exceeded', `weight cache: out of storage quota writing ${what} (${bytes} bytes)${room}`, { cause: e });
    }
  }
}
