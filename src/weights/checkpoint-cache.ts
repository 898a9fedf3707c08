/**
 * Checkpoints kept in the weight cache tensor by tensor, exactly as their files store them (dtype and bytes
 * unchanged): the VAE and the text encoders, which load at their own dtype (or quantize on the GPU as they
 * load), so a later visit reads them from IndexedDB instead of the network. The transformer has its own,
 * quantized, records (src/model/cached-weights.ts).
 *
 * Per checkpoint: a header record (tensor names, dtypes, shapes, metadata: the file's own header, so it is valid
 * whether or not any tensor was stored yet) and one record per tensor, each written only after the tensor was
 * read whole. A record that is missing, corrupt or of the wrong size is read from the source again, which is
 * opened only then; so an interrupted load or a damaged chunk costs a re-read, never a wrong tensor.
 */
import { FluxError } from '../errors.ts';
import { CACHE_FORMAT_VERSION, CorruptCacheEntry, type WeightCache } from './cache.ts';
import { HeaderReader, type ReaderOptions, type TensorData, type TensorInfo, type TensorReader } from './safetensors.ts';

interface HeaderRecord {
  readonly name: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly tensors: readonly TensorInfo[];
}

export interface CheckpointCacheStats {
  /** Tensors read from the cache. */
  cached: number;
  /** Tensors read from the source (and stored). */
  fetched: number;
  /** Records found corrupt (dropped and read again). */
  corrupt: number;
}

async function digest(text: string): Promise<string> {
  const bytes = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
  return Array.from(bytes.subarray(0, 16), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The checkpoints of one model source, under one identity (what names the source: its URL, or a folder's name and size). */
export class CheckpointCache {
  readonly stats: CheckpointCacheStats = { cached: 0, fetched: 0, corrupt: 0 };
  /** Every record key this cache read or wrote, for the model entry that should own them. */
  readonly records: string[] = [];
  private readonly written: string[] = [];

  constructor(
    private readonly cache: WeightCache,
    private readonly identity: string,
  ) {}

  /** The checkpoint at `location` through the cache; `openSource` opens the real one (only when needed). */
  async open(location: string, openSource: () => Promise<TensorReader>, options: ReaderOptions = {}): Promise<TensorReader> {
    const prefix = `raw/${await digest(`${this.identity}\n${location}\ncheckpoint cache v${CACHE_FORMAT_VERSION}`)}`;
    const headerKey = `${prefix}/header`;
    const stored = await this.read(headerKey);
    if (stored) {
      const header = JSON.parse(new TextDecoder().decode(stored)) as HeaderRecord;
      return new CachedCheckpointReader(this, prefix, header, openSource, undefined, options);
    }
    const source = await openSource();
    try {
      const header: HeaderRecord = { name: source.name, metadata: source.metadata, tensors: source.names().map((n) => source.info(n)) };
      await this.write(headerKey, new TextEncoder().encode(JSON.stringify(header)));
      return new CachedCheckpointReader(this, prefix, header, openSource, source, options);
    } catch (e) {
      await source.close();
      throw e;
    }
  }

  /** A record's bytes, or undefined if it is missing or corrupt (a corrupt one is counted and already dropped). */
  async read(key: string): Promise<Uint8Array<ArrayBuffer> | undefined> {
    try {
      const bytes = await this.cache.readRecord(key);
      if (bytes) this.records.push(key);
      return bytes;
    } catch (e) {
      if (!(e instanceof CorruptCacheEntry)) throw e;
      this.stats.corrupt++;
      return undefined;
    }
  }

  /** Removes every record this cache wrote (a load that ran out of quota keeps nothing). */
  async discard(): Promise<void> {
    for (const key of this.written.splice(0)) await this.cache.deleteRecord(key);
  }

  /** Stores a record; out of quota, this cache's records go again (nothing half-kept) and the error says why. */
  async write(key: string, bytes: Uint8Array): Promise<void> {
    try {
      await this.cache.writeRecord(key, bytes);
    } catch (e) {
      if (!(e instanceof FluxError && e.code === 'quota-exceeded')) throw e;
      await this.discard();
      throw new FluxError(
        'quota-exceeded',
        `caching the model's ${key.endsWith('/header') ? 'checkpoint headers' : 'VAE and text encoder tensors'} needs ${bytes.byteLength} more bytes of browser storage than are free; delete cached models, grant persistent storage, or load without the cache`,
        { cause: e },
      );
    }
    this.written.push(key);
    this.records.push(key);
  }
}

class CachedCheckpointReader extends HeaderReader {
  constructor(
    private readonly owner: CheckpointCache,
    private readonly prefix: string,
    header: HeaderRecord,
    private readonly openSource: () => Promise<TensorReader>,
    private source: TensorReader | undefined,
    private readonly options: ReaderOptions,
  ) {
    super(header.name, header.metadata, header.tensors);
  }

  async readTensor(name: string): Promise<TensorData> {
    const { dtype, shape, byteLength } = this.info(name);
    const key = `${this.prefix}/tensor/${name}`;
    const stored = await this.owner.read(key);
    if (stored && stored.byteLength === byteLength) {
      this.owner.stats.cached++;
      this.options.onRead?.(byteLength, name);
      return { dtype, shape, data: stored };
    }
    this.source ??= await this.openSource();
    const fresh = await this.source.readTensor(name);
    await this.owner.write(key, fresh.data);
    this.owner.stats.fetched++;
    return fresh;
  }

  async close(): Promise<void> {
    await this.source?.close();
    this.source = undefined;
  }
}
