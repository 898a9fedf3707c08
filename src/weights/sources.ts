/**
 * ByteSources that work in the browser and in Node: Blobs/Files and HTTP resources read with Range
 * requests. Local paths go through the platform's `openFileSource`.
 */
import { openFileSource } from '#platform';
import { FluxError } from '../errors.ts';
import type { ByteSource } from '../platform/types.ts';

/** Guards every read so all sources fail the same way on bad ranges and use after close. */
function checkRead(name: string, size: number, closed: boolean, offset: number, length: number): void {
  if (closed) throw new FluxError('io', `${name}: read after close`);
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new FluxError('io', `${name}: read of ${length} bytes at ${offset} is past the end (${size} bytes)`);
  }
}

/** A Blob or File (drag-and-drop, <input type=file>, or Node's Blob); only the requested slice is loaded. */
export function blobSource(blob: Blob, name?: string): ByteSource {
  const sourceName = name ?? (blob instanceof File ? blob.name : 'blob');
  let closed = false;
  return {
    name: sourceName,
    size: blob.size,
    async read(offset: number, length: number): Promise<Uint8Array> {
      checkRead(sourceName, blob.size, closed, offset, length);
      const bytes = new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
      if (bytes.byteLength !== length) {
        throw new FluxError('io', `${sourceName}: short read at ${offset}: got ${bytes.byteLength} of ${length} bytes`);
      }
      return bytes;
    },
    async close() {
      closed = true;
    },
  };
}

export interface HttpSourceOptions {
  /** The fetch to use (to add auth headers, or for tests); defaults to the global fetch. */
  fetch?: typeof fetch;
}

// `bytes <first>-<last>/<total>`, or `bytes *` + `/<total>` on errors; total may be `*` (unknown).
const CONTENT_RANGE = /^bytes (?:(\d+)-(\d+)|\*)\/(\d+|\*)$/;

function parseContentRange(header: string | null): { first?: number; total?: number } | undefined {
  const match = header === null ? null : CONTENT_RANGE.exec(header.trim());
  if (!match) return undefined;
  const number = (s: string | undefined) => (s === undefined || s === '*' ? undefined : Number(s));
  return { first: number(match[1]), total: number(match[3]) };
}

/**
 * A remote file read with HTTP Range requests, so multi-GB checkpoints stream tensor by tensor.
 * The size comes from a one-byte range probe (Content-Range), or HEAD's Content-Length when the
 * Content-Range header is not exposed (cross-origin without Access-Control-Expose-Headers).
 */
export async function httpSource(url: string | URL, options: HttpSourceOptions = {}): Promise<ByteSource> {
  const name = String(url);
  // Wrapped so the global fetch is always called on the global object (browsers require it).
  const fetchFn = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => globalThis.fetch(input, init));

  async function request(init: RequestInit, what: string): Promise<Response> {
    try {
      return await fetchFn(name, init);
    } catch (e) {
      throw new FluxError('io', `${name}: ${what} failed (${e instanceof Error ? e.message : String(e)})`, { cause: e });
    }
  }

  function ignoredRange(response: Response): FluxError {
    void response.body?.cancel();
    return new FluxError(
      'io',
      `${name}: the server ignored the HTTP Range request (status 200 instead of 206); lazy reads need a server with Range support`,
    );
  }

  const probe = await request({ headers: { Range: 'bytes=0-0' } }, 'size probe');
  if (probe.status === 200) throw ignoredRange(probe);
  if (probe.status !== 206) {
    void probe.body?.cancel();
    throw new FluxError('io', `${name}: HTTP ${probe.status} ${probe.statusText}`.trimEnd());
  }
  void probe.body?.cancel();
  let size = parseContentRange(probe.headers.get('Content-Range'))?.total;
  if (size === undefined) {
    const head = await request({ method: 'HEAD' }, 'HEAD');
    const length = head.headers.get('Content-Length');
    if (!head.ok || length === null) {
      throw new FluxError('io', `${name}: cannot learn the size (no Content-Range total, HEAD gave no Content-Length)`);
    }
    size = Number(length);
  }
  const totalSize = size;
  let closed = false;

  return {
    name,
    size: totalSize,
    async read(offset: number, length: number): Promise<Uint8Array> {
      checkRead(name, totalSize, closed, offset, length);
      if (length === 0) return new Uint8Array(0);
      const last = offset + length - 1;
      const response = await request({ headers: { Range: `bytes=${offset}-${last}` } }, `read of bytes ${offset}-${last}`);
      if (response.status === 200) throw ignoredRange(response);
      if (response.status !== 206) {
        void response.body?.cancel();
        throw new FluxError('io', `${name}: HTTP ${response.status} reading bytes ${offset}-${last}`);
      }
      const range = parseContentRange(response.headers.get('Content-Range'));
      if (range?.first !== undefined && range.first !== offset) {
        void response.body?.cancel();
        throw new FluxError('io', `${name}: asked for bytes from ${offset} but the server sent bytes from ${range.first}`);
      }
      const bytes = new Uint8Array(await response.arrayBuffer());
      if (bytes.byteLength !== length) {
        throw new FluxError('io', `${name}: short read at ${offset}: got ${bytes.byteLength} of ${length} bytes`);
      }
      return bytes;
    },
    async close() {
      closed = true;
    },
  };
}

const HTTP_URL = /^https?:\/\//i;

export function isHttpUrl(location: string): boolean {
  return HTTP_URL.test(location);
}

/** A path as mountFiles keys it: '/'-separated, no './' or empty segments. */
function mountKey(path: string): string {
  return path
    .split(/[/\\]+/)
    .filter((part) => part !== '' && part !== '.')
    .join('/');
}

const mountedFiles = new Map<string, Blob>();

/**
 * Makes blobs readable by path: the files of a folder picked in the browser (`<input webkitdirectory>`, keyed by
 * `webkitRelativePath`), where paths are otherwise unreadable, so a picked diffusers folder loads like a path.
 * Returns the unmount.
 */
export function mountFiles(files: Iterable<readonly [path: string, file: Blob]>): () => void {
  const keys: string[] = [];
  for (const [path, file] of files) {
    const key = mountKey(path);
    mountedFiles.set(key, file);
    keys.push(key);
  }
  return () => {
    for (const key of keys) mountedFiles.delete(key);
  };
}

/** Called with the byte count of every read from a source openSource opened. */
export type ReadListener = (sourceName: string, bytes: number) => void;
const readListeners = new Set<ReadListener>();

/** Watches every read from sources openSource opens (a page's loading meter: bytes and rate). Returns the unsubscribe. */
export function observeReads(listener: ReadListener): () => void {
  readListeners.add(listener);
  return () => readListeners.delete(listener);
}

function metered(source: ByteSource): ByteSource {
  return {
    name: source.name,
    size: source.size,
    async read(offset: number, length: number): Promise<Uint8Array> {
      const bytes = await source.read(offset, length);
      for (const listener of readListeners) listener(source.name, bytes.byteLength);
      return bytes;
    },
    close: () => source.close(),
  };
}

/** The right ByteSource for a location: an http(s) URL, a Blob/File, a mounted file, or a local path (Node only). */
export async function openSource(location: string | URL | Blob): Promise<ByteSource> {
  return metered(await openUnmetered(location));
}

async function openUnmetered(location: string | URL | Blob): Promise<ByteSource> {
  if (location instanceof Blob) return blobSource(location);
  const text = String(location);
  if (isHttpUrl(text)) return httpSource(text);
  if (location instanceof URL) {
    if (location.protocol !== 'file:') throw new FluxError('bad-argument', `${text}: unsupported URL scheme (use http, https or file)`);
    return openFileSource(decodeURIComponent(location.pathname));
  }
  const mounted = mountedFiles.get(mountKey(text));
  if (mounted) return blobSource(mounted, text);
  return openFileSource(text);
}

/** Config and tokenizer files are at most a few MB (T5's tokenizer.json: 2.4 MB); a larger one is not one. */
const MAX_TEXT_BYTES = 64 * 1024 * 1024;

/** Reads a small UTF-8 text file (a config, a tokenizer's vocabulary) from any location openSource accepts. */
export async function readText(location: string | URL | Blob): Promise<string> {
  const source = await openSource(location);
  try {
    if (source.size > MAX_TEXT_BYTES) throw new FluxError('bad-format', `${source.name}: ${source.size} bytes is too large for a config or vocabulary file`);
    return new TextDecoder('utf-8', { fatal: true }).decode(await source.read(0, source.size));
  } catch (e) {
    if (e instanceof FluxError) throw e;
    throw new FluxError('bad-format', `${source.name}: not valid UTF-8 text`, { cause: e });
  } finally {
    await source.close();
  }
}

/** Reads and parses a small JSON file (a model's config.json) from any location openSource accepts. */
export async function readJson(location: string | URL | Blob): Promise<unknown> {
  const text = await readText(location);
  try {
    return JSON.parse(text);
  } catch (e) {
    const name = location instanceof Blob ? 'blob' : String(location);
    throw new FluxError('bad-format', `${name}: not valid JSON (${e instanceof Error ? e.message.replace(/\s+/g, ' ') : String(e)})`, { cause: e });
  }
}
