/**
 * Lazy safetensors readers: one file, or a sharded checkpoint behind a `*.safetensors.index.json`.
 * Opening reads and validates only the header; tensor bytes are read one tensor at a time on demand.
 */
import { FluxError } from '../errors.ts';
import type { ByteSource } from '../platform/types.ts';
import type { CheckpointCache } from './checkpoint-cache.ts';
import { DTYPE_BYTES, isDtype, toFloat32, type Dtype } from './dtypes.ts';
import { isHttpUrl, openSource } from './sources.ts';

/** The u64 little-endian header length that starts every file. */
const HEADER_LENGTH_BYTES = 8;
/** Real headers are well under 1 MiB (FLUX dev, 1160 tensors: ~150 KB); more means a corrupt or hostile file. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** Index files list tensor names only; same reasoning and limit as the header. */
const MAX_INDEX_BYTES = MAX_HEADER_BYTES;
const METADATA_KEY = '__metadata__';

export interface TensorInfo {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  readonly byteLength: number;
  /** Absolute byte offset of the tensor's data in its file. */
  readonly offset: number;
  /** The file holding the tensor (its ByteSource name). */
  readonly file: string;
}

export interface TensorData {
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  /** Little-endian, row-major bytes; a fresh buffer owned by the caller (ArrayBuffer-backed, so WebGPU accepts it). */
  readonly data: Uint8Array<ArrayBuffer>;
}

/** What every checkpoint reader offers, whether it spans one file or many. */
export interface TensorReader {
  /** The file or index name, for messages. */
  readonly name: string;
  readonly metadata: Readonly<Record<string, string>>;
  /** Tensor names in file order (by shard, then by offset). */
  names(): string[];
  has(name: string): boolean;
  /** Throws FluxError for an unknown name. */
  info(name: string): TensorInfo;
  readTensor(name: string): Promise<TensorData>;
  /** The tensor decoded to float32 (F32, F16 and BF16 only). */
  readFloat32(name: string): Promise<Float32Array<ArrayBuffer>>;
  close(): Promise<void>;
}

/** JSON error messages can quote multi-line input; user messages are one line. */
function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function badFormat(file: string, problem: string): FluxError {
  return new FluxError('bad-format', `${file}: ${oneLine(problem)}`);
}

function decodeUtf8(file: string, bytes: Uint8Array, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw badFormat(file, `${what} is not valid UTF-8`);
  }
}

function parseJson(file: string, text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw badFormat(file, `${what} is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function parseMetadata(file: string, value: unknown, where: string): Record<string, string> {
  if (!isPlainObject(value)) throw badFormat(file, `${where} must be an object of strings`);
  for (const [key, entry] of Object.entries(value)) {
    if (typeof entry !== 'string') throw badFormat(file, `${where} entry "${key}" is not a string`);
  }
  return value as Record<string, string>;
}

interface HeaderEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  begin: number;
  end: number;
}

function parseEntry(file: string, name: string, value: unknown): HeaderEntry {
  const where = `tensor "${name}"`;
  if (!isPlainObject(value)) throw badFormat(file, `${where}: header entry is not an object`);
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== 'string') throw badFormat(file, `${where}: missing dtype`);
  if (!isDtype(dtype)) {
    throw new FluxError('unsupported-dtype', `${file}: ${where}: unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(DTYPE_BYTES).join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw badFormat(file, `${where}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    throw badFormat(file, `${where}: data_offsets ${JSON.stringify(offsets)} is not [begin, end] of non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw badFormat(file, `${where}: data_offsets [${begin}, ${end}] has begin after end`);
  const expected = shape.reduce((n: number, d: number) => n * d, DTYPE_BYTES[dtype]);
  if (!Number.isSafeInteger(expected) || end - begin !== expected) {
    throw new FluxError(
      'bad-shape',
      `${file}: ${where}: ${dtype} [${shape.join(', ')}] needs ${expected} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
    );
  }
  return { name, dtype, shape, begin, end };
}

/** Checks that tensors (sorted by offset) neither overlap nor extend past the data section. */
function checkLayout(file: string, entries: readonly HeaderEntry[], fileSize: number, dataStart: number): void {
  const dataSize = fileSize - dataStart;
  const dataEnd = entries.reduce((end, e) => Math.max(end, e.end), 0);
  let previous: HeaderEntry | undefined;
  for (const entry of entries) {
    if (entry.end > dataSize) {
      throw badFormat(
        file,
        `file is truncated: tensor "${entry.name}" needs data bytes [${entry.begin}, ${entry.end}) but the file has only ${dataSize} data bytes ` +
          `(file is ${fileSize} bytes, the header needs ${dataStart + dataEnd})`,
      );
    }
    if (entry.begin === entry.end) continue;
    if (previous && entry.begin < previous.end) {
      throw badFormat(
        file,
        `tensors "${previous.name}" [${previous.begin}, ${previous.end}) and "${entry.name}" [${entry.begin}, ${entry.end}) overlap`,
      );
    }
    previous = entry;
  }
}

function unknownTensor(file: string, name: string): FluxError {
  return new FluxError('bad-argument', `${file}: no tensor named "${name}"`);
}

export interface ReaderOptions {
  /** Called after each tensor's bytes are read (progress: src/weights/progress.ts). */
  readonly onRead?: (byteLength: number, name: string) => void;
  /** Keep the checkpoint's tensors in the browser's weight cache and read them from there when present. */
  readonly cache?: CheckpointCache;
}

/** What a reader of one parsed header offers before any data is read: names, lookup, float32 decoding. */
export abstract class HeaderReader implements TensorReader {
  private readonly tensors: ReadonlyMap<string, TensorInfo>;

  protected constructor(
    readonly name: string,
    readonly metadata: Readonly<Record<string, string>>,
    tensors: readonly TensorInfo[],
  ) {
    this.tensors = new Map(tensors.map((t) => [t.name, t]));
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw unknownTensor(this.name, name);
    return info;
  }

  abstract readTensor(name: string): Promise<TensorData>;

  async readFloat32(name: string): Promise<Float32Array<ArrayBuffer>> {
    const { dtype, data } = await this.readTensor(name);
    return toFloat32(data, dtype);
  }

  abstract close(): Promise<void>;
}

/** One .safetensors file. */
export class SafetensorsFile extends HeaderReader {
  private onRead: ReaderOptions['onRead'];

  private constructor(
    private readonly source: ByteSource,
    metadata: Record<string, string>,
    tensors: TensorInfo[],
  ) {
    super(source.name, metadata, tensors);
  }

  /** Reads and validates the header; the source is closed if validation fails. */
  static async open(source: ByteSource, options: ReaderOptions = {}): Promise<SafetensorsFile> {
    try {
      const file = await SafetensorsFile.parse(source);
      file.onRead = options.onRead;
      return file;
    } catch (e) {
      await source.close();
      throw e;
    }
  }

  private static async parse(source: ByteSource): Promise<SafetensorsFile> {
    const file = source.name;
    if (source.size < HEADER_LENGTH_BYTES) {
      throw badFormat(file, `${source.size} bytes is too small for a safetensors file (no header length)`);
    }
    const lengthBytes = await source.read(0, HEADER_LENGTH_BYTES);
    const headerLength = new DataView(lengthBytes.buffer, lengthBytes.byteOffset, HEADER_LENGTH_BYTES).getBigUint64(0, true);
    if (headerLength > BigInt(MAX_HEADER_BYTES)) {
      throw badFormat(file, `header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file, or corrupt)`);
    }
    const headerBytes = Number(headerLength);
    const dataStart = HEADER_LENGTH_BYTES + headerBytes;
    if (dataStart > source.size) {
      throw badFormat(
        file,
        `header length ${headerBytes} does not fit in the file (${source.size} bytes, ${source.size - HEADER_LENGTH_BYTES} after the length field): truncated or not safetensors`,
      );
    }
    const header = parseJson(file, decodeUtf8(file, await source.read(HEADER_LENGTH_BYTES, headerBytes), 'header'), 'header');
    if (!isPlainObject(header)) throw badFormat(file, 'header is not a JSON object');

    let metadata: Record<string, string> = {};
    const entries: HeaderEntry[] = [];
    for (const [name, value] of Object.entries(header)) {
      if (name === METADATA_KEY) metadata = parseMetadata(file, value, METADATA_KEY);
      else entries.push(parseEntry(file, name, value));
    }
    entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
    checkLayout(file, entries, source.size, dataStart);

    const tensors = entries.map(
      (e): TensorInfo => ({ name: e.name, dtype: e.dtype, shape: e.shape, byteLength: e.end - e.begin, offset: dataStart + e.begin, file }),
    );
    return new SafetensorsFile(source, metadata, tensors);
  }

  async readTensor(name: string): Promise<TensorData> {
    const { dtype, shape, offset, byteLength } = this.info(name);
    const bytes = await this.source.read(offset, byteLength);
    // Sources return plain ArrayBuffers; the copy only guards against one backed by a SharedArrayBuffer.
    const data = bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : bytes.slice();
    this.onRead?.(byteLength, name);
    return { dtype, shape, data };
  }

  async close(): Promise<void> {
    await this.source.close();
  }
}

/** A checkpoint split over several files, located through its `*.safetensors.index.json`. */
export class ShardedSafetensors implements TensorReader {
  readonly name: string;
  readonly metadata: Readonly<Record<string, string>>;
  private readonly shards: readonly SafetensorsFile[];
  private readonly shardOf: ReadonlyMap<string, SafetensorsFile>;

  private constructor(name: string, metadata: Record<string, string>, shards: SafetensorsFile[], shardOf: Map<string, SafetensorsFile>) {
    this.name = name;
    this.metadata = metadata;
    this.shards = shards;
    this.shardOf = shardOf;
  }

  /**
   * Opens every shard named in the index's weight_map (through `resolveShard`) and checks that each
   * listed tensor is in its shard. `indexName` names the index in error messages.
   */
  static async open(
    indexJson: string,
    resolveShard: (fileName: string) => Promise<ByteSource>,
    indexName = 'index.json',
    options: ReaderOptions = {},
  ): Promise<ShardedSafetensors> {
    const index = parseJson(indexName, indexJson, 'index');
    if (!isPlainObject(index) || !isPlainObject(index.weight_map)) throw badFormat(indexName, 'index has no "weight_map" object');
    const metadata = parseIndexMetadata(indexName, index.metadata);

    const tensorsByShard = new Map<string, string[]>();
    for (const [tensor, shard] of Object.entries(index.weight_map)) {
      if (typeof shard !== 'string' || !isPlainFileName(shard)) {
        throw badFormat(indexName, `weight_map entry "${tensor}" is not a plain file name: ${JSON.stringify(shard)}`);
      }
      const list = tensorsByShard.get(shard) ?? [];
      list.push(tensor);
      tensorsByShard.set(shard, list);
    }
    // Shard names carry their order (model-00001-of-00003...), so sorted names give file order.
    const shardNames = [...tensorsByShard.keys()].sort();

    const shards: SafetensorsFile[] = [];
    try {
      const shardOf = new Map<string, SafetensorsFile>();
      for (const shardName of shardNames) {
        const shard = await SafetensorsFile.open(await resolveShard(shardName), options);
        shards.push(shard);
        const listed = new Set(tensorsByShard.get(shardName));
        const missing = [...listed].find((t) => !shard.has(t));
        if (missing !== undefined) {
          throw badFormat(indexName, `weight_map puts tensor "${missing}" in ${shard.name}, which does not contain it`);
        }
        for (const tensor of shard.names()) if (listed.has(tensor)) shardOf.set(tensor, shard);
      }
      return new ShardedSafetensors(indexName, metadata, shards, shardOf);
    } catch (e) {
      await Promise.all(shards.map((s) => s.close()));
      throw e;
    }
  }

  names(): string[] {
    return [...this.shardOf.keys()];
  }

  has(name: string): boolean {
    return this.shardOf.has(name);
  }

  info(name: string): TensorInfo {
    return this.shard(name).info(name);
  }

  async readTensor(name: string): Promise<TensorData> {
    return this.shard(name).readTensor(name);
  }

  async readFloat32(name: string): Promise<Float32Array<ArrayBuffer>> {
    return this.shard(name).readFloat32(name);
  }

  async close(): Promise<void> {
    await Promise.all(this.shards.map((s) => s.close()));
  }

  private shard(name: string): SafetensorsFile {
    const shard = this.shardOf.get(name);
    if (!shard) throw unknownTensor(this.name, name);
    return shard;
  }
}

/** The index's metadata (e.g. total_size) as strings, so both reader kinds expose the same shape. */
function parseIndexMetadata(indexName: string, value: unknown): Record<string, string> {
  if (value === undefined) return {};
  if (!isPlainObject(value)) throw badFormat(indexName, '"metadata" is not an object');
  const metadata: Record<string, string> = {};
  for (const [key, entry] of Object.entries(value)) {
    if (typeof entry !== 'string' && typeof entry !== 'number') throw badFormat(indexName, `metadata entry "${key}" is not a string or number`);
    metadata[key] = String(entry);
  }
  return metadata;
}

/** Shards must sit next to their index; a path in weight_map could point anywhere. */
function isPlainFileName(name: string): boolean {
  return name.length > 0 && name !== '.' && name !== '..' && !/[/\\]/.test(name);
}

const INDEX_SUFFIX = '.index.json';
const SAFETENSORS_SUFFIX = '.safetensors';
/** The file name `flux-w4a4 quantize` gives a packed transformer inside its component folder. */
export const PACKED_CHECKPOINT_FILE = 'flux-w4a4-packed.safetensors';
/** What a diffusers/transformers component folder holds, in the order we look for it. */
const CHECKPOINT_FILE_NAMES = [
  PACKED_CHECKPOINT_FILE,
  'diffusion_pytorch_model.safetensors.index.json',
  'diffusion_pytorch_model.safetensors',
  'model.safetensors.index.json',
  'model.safetensors',
];

/**
 * `fileName` inside the folder `location` (a path, joined with '/', or an http(s) URL; a folder URL without its
 * trailing slash still names the folder, not its parent's entry).
 */
export function sibling(location: string, fileName: string): string {
  if (isHttpUrl(location)) return new URL(fileName, location.endsWith('/') ? location : `${location}/`).href;
  return `${location.replace(/[/\\]+$/, '')}/${fileName}`;
}

function parentOf(location: string): string {
  if (isHttpUrl(location)) return new URL('.', location).href;
  const cut = Math.max(location.lastIndexOf('/'), location.lastIndexOf('\\'));
  return cut < 0 ? '.' : location.slice(0, cut + 1);
}

/** Reads the index from `source` (closing it) and opens its shards from the index's folder. */
async function openIndex(source: ByteSource, options: ReaderOptions): Promise<ShardedSafetensors> {
  let text: string;
  try {
    if (source.size > MAX_INDEX_BYTES) throw badFormat(source.name, `index is ${source.size} bytes, over the ${MAX_INDEX_BYTES}-byte limit`);
    text = decodeUtf8(source.name, await source.read(0, source.size), 'index');
  } finally {
    await source.close();
  }
  const folder = parentOf(source.name);
  return ShardedSafetensors.open(text, (shard) => openSource(sibling(folder, shard)), source.name, options);
}

async function openFile(source: ByteSource, options: ReaderOptions): Promise<TensorReader> {
  return source.name.endsWith(INDEX_SUFFIX) ? openIndex(source, options) : SafetensorsFile.open(source, options);
}

/**
 * Opens a checkpoint from a path or http(s) URL: a `.safetensors` file, a `.safetensors.index.json`,
 * or a component folder holding one of CHECKPOINT_FILE_NAMES, e.g. `transformer/` (over HTTP each name is
 * tried in turn; a missing one must answer 404, as static hosts do).
 * Local paths need Node (the platform's openFileSource) or, in the browser, files mounted from a picked folder.
 */
export async function openCheckpoint(location: string, options: ReaderOptions = {}): Promise<TensorReader> {
  const { cache, ...uncached } = options;
  if (cache) return cache.open(location, () => openCheckpoint(location, uncached), uncached);
  if (location.endsWith(INDEX_SUFFIX) || location.endsWith(SAFETENSORS_SUFFIX)) return openFile(await openSource(location), options);
  for (const fileName of CHECKPOINT_FILE_NAMES) {
    let source: ByteSource;
    try {
      source = await openSource(sibling(location, fileName));
    } catch (e) {
      if (e instanceof FluxError && e.code === 'io') continue;
      throw e;
    }
    return openFile(source, options);
  }
  throw new FluxError(
    'io',
    `${location}: no checkpoint found (expected a ${SAFETENSORS_SUFFIX} file, a ${INDEX_SUFFIX} file, or a folder holding ${CHECKPOINT_FILE_NAMES.join(', ')})`,
  );
}
