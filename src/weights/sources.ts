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
  /** Attempts after a network error (no response, or the connection dropped mid-body) before giving up; default 5. */
  retries?: number;
  /** Wait before the first retry, doubled for each further one (capped at MAX_RETRY_DELAY_MS); default 500 ms. */
  retryDelayMs?: number;
  /** Cancels requests in flight and pending retries. */
  signal?: AbortSignal;
}

const DEFAULT_RETRIES = 5;
const DEFAULT_RETRY_DELAY_MS = 500;
/** Backoff stops growing here: a dropped connection on a long download should not wait minutes. */
const MAX_RETRY_DELAY_MS = 8000;

/** What a fetch that rejects without a response means, in the browser or in Node. */
const NO_RESPONSE_HINT =
  'no response arrived: the server is unreachable or the connection failed, or, in a browser, a cross-origin server does not allow ' +
  'this page (CORS): it must send Access-Control-Allow-Origin, allow the Range header (Access-Control-Allow-Headers: Range) and ' +
  'expose Content-Range (Access-Control-Expose-Headers: Content-Range, Content-Length)';

// `bytes <first>-<last>/<total>`, or `bytes *` + `/<total>` on errors; total may be `*` (unknown).
const CONTENT_RANGE = /^bytes (?:(\d+)-(\d+)|\*)\/(\d+|\*)$/;

function parseContentRange(header: string | null): { first?: number; last?: number; total?: number } | undefined {
  const match = header === null ? null : CONTENT_RANGE.exec(header.trim());
  if (!match) return undefined;
  const number = (s: string | undefined) => (s === undefined || s === '*' ? undefined : Number(s));
  return { first: number(match[1]), last: number(match[2]), total: number(match[3]) };
}

function errorText(e: unknown): string {
  const cause = e instanceof Error && e.cause instanceof Error ? `: ${e.cause.message}` : '';
  return e instanceof Error ? `${e.message}${cause}` : String(e);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

/**
 * A remote file read with HTTP Range requests, so multi-GB checkpoints stream tensor by tensor.
 * The size comes from a one-byte range probe (Content-Range), or HEAD's Content-Length when the
 * Content-Range header is not exposed (cross-origin without Access-Control-Expose-Headers).
 * A network error (no response, or a connection dropped mid-body) is retried with exponential backoff, and a
 * read resumes from the last byte received; HTTP errors (404, a server ignoring Range) are not retried.
 */
export async function httpSource(url: string | URL, options: HttpSourceOptions = {}): Promise<ByteSource> {
  const name = String(url);
  // Wrapped so the global fetch is always called on the global object (browsers require it).
  const fetchFn = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => globalThis.fetch(input, init));
  const retries = options.retries ?? DEFAULT_RETRIES;
  const retryDelayMs = options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
  const signal = options.signal;

  /**
   * Runs `attempt` until it succeeds; FluxErrors (HTTP-level answers) and aborts end it at once, other errors are
   * network errors and are retried. `progressed` tells whether the failed attempt moved forward, which resets the
   * backoff (a long download may drop many times, each after progress).
   */
  async function withRetries<T>(what: string, attempt: () => Promise<T>, progressed: () => boolean = () => false): Promise<T> {
    for (let failures = 0; ; ) {
      try {
        return await attempt();
      } catch (e) {
        if (e instanceof FluxError || signal?.aborted) throw e;
        failures = progressed() ? 1 : failures + 1;
        if (failures > retries) {
          throw new FluxError('io', `${name}: ${what} failed after ${retries} retries (${errorText(e)}); ${NO_RESPONSE_HINT}`, { cause: e });
        }
        await sleep(Math.min(retryDelayMs * 2 ** (failures - 1), MAX_RETRY_DELAY_MS), signal);
      }
    }
  }

  function ignoredRange(response: Response): FluxError {
    void response.body?.cancel();
    return new FluxError(
      'io',
      `${name}: the server ignored the HTTP Range request (status 200 instead of 206); lazy reads need a server with Range support`,
    );
  }

  const probe = await withRetries('size probe', () => fetchFn(name, { headers: { Range: 'bytes=0-0' }, signal }));
  if (probe.status === 200) throw ignoredRange(probe);
  if (probe.status !== 206) {
    void probe.body?.cancel();
    throw new FluxError('io', `${name}: HTTP ${probe.status} ${probe.statusText}`.trimEnd());
  }
  void probe.body?.cancel();
  let size = parseContentRange(probe.headers.get('Content-Range'))?.total;
  if (size === undefined) {
    const head = await withRetries('HEAD', () => fetchFn(name, { method: 'HEAD', signal }));
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
      const out = new Uint8Array(length);
      let received = 0;
      let receivedBefore = 0;
      const last = offset + length - 1;
      const attempt = async (): Promise<void> => {
        receivedBefore = received;
        const first = offset + received;
        const response = await fetchFn(name, { headers: { Range: `bytes=${first}-${last}` }, signal });
        if (response.status === 200) throw ignoredRange(response);
        if (response.status !== 206) {
          void response.body?.cancel();
          throw new FluxError('io', `${name}: HTTP ${response.status} reading bytes ${first}-${last}`);
        }
        const range = parseContentRange(response.headers.get('Content-Range'));
        if (range?.first !== undefined && range.first !== first) {
          void response.body?.cancel();
          throw new FluxError('io', `${name}: asked for bytes from ${first} but the server sent bytes from ${range.first}`);
        }
        if (range?.last !== undefined && range.last < last) {
          void response.body?.cancel();
          throw new FluxError('io', `${name}: short read at ${offset}: got ${received + range.last - first + 1} of ${length} bytes`);
        }
        if (!response.body) throw new FluxError('io', `${name}: the response to bytes ${first}-${last} has no body`);
        const reader = response.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (received + value.byteLength > length) {
            void reader.cancel();
            throw new FluxError('io', `${name}: the server sent more than the ${length} bytes asked for at ${offset}`);
          }
          out.set(value, received);
          received += value.byteLength;
        }
        // A body that ends early although the response announced the whole range: the connection was cut.
        if (received < length) throw new Error(`connection closed after ${received} of ${length} bytes`);
      };
      if (length > 0) await withRetries(`read of bytes ${offset}-${last}`, attempt, () => received > receivedBefore);
      return out;
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
