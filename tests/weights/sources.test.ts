import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FluxError } from '../../src/errors.ts';
import { SafetensorsFile } from '../../src/weights/safetensors.ts';
import { blobSource, httpSource, mountFiles, observeReads, openSource } from '../../src/weights/sources.ts';
import { FORWARD, sameBytes, TRANSFORMER } from './helpers.ts';

let forwardBytes: Uint8Array<ArrayBuffer>;
beforeAll(async () => {
  forwardBytes = new Uint8Array(await readFile(FORWARD));
});

describe('blobSource', () => {
  it('reads exact slices of a Node Blob and fails past the end or after close', async () => {
    const source = blobSource(new Blob([new Uint8Array([10, 11, 12, 13, 14])]), 'five.bin');
    expect(source.size).toBe(5);
    expect(Array.from(await source.read(1, 3))).toEqual([11, 12, 13]);
    expect((await source.read(5, 0)).byteLength).toBe(0);
    await expect(source.read(3, 3)).rejects.toThrow('five.bin: read of 3 bytes at 3 is past the end (5 bytes)');
    await source.close();
    await expect(source.read(0, 1)).rejects.toThrow('five.bin: read after close');
  });

  it('takes the name of a File', () => {
    expect(blobSource(new File([new Uint8Array(1)], 'weights.safetensors')).name).toBe('weights.safetensors');
  });

  it('serves a safetensors file', async () => {
    const file = await SafetensorsFile.open(blobSource(new Blob([forwardBytes])));
    expect(file.names()).toHaveLength(20);
    expect(Array.from(await file.readFloat32('guidance'))).toEqual([3.5]);
  });
});

type Handler = (req: IncomingMessage, res: ServerResponse, body: Uint8Array) => void;

/** Serves `body` honouring single `bytes=a-b` ranges, as static file servers and CDNs do. */
const rangeServer: Handler = (req, res, body) => {
  const match = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  if (!match) {
    res.writeHead(200, { 'Content-Length': body.length, 'Accept-Ranges': 'bytes' });
    res.end(req.method === 'HEAD' ? undefined : body);
    return;
  }
  const first = Number(match[1]);
  const last = Math.min(Number(match[2]), body.length - 1);
  res.writeHead(206, { 'Content-Range': `bytes ${first}-${last}/${body.length}`, 'Content-Length': last - first + 1 });
  res.end(body.subarray(first, last + 1));
};

let server: Server | undefined;
const requests: string[] = [];

async function serve(body: Uint8Array, handler: Handler): Promise<string> {
  requests.length = 0;
  server = createServer((req, res) => {
    requests.push(`${req.method} ${req.headers.range ?? ''}`.trim());
    handler(req, res, body);
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/forward.safetensors`;
}

afterEach(async () => {
  if (server) await new Promise((resolve) => server!.close(resolve));
  server = undefined;
});

describe('httpSource', () => {
  it('learns the size from a one-byte range and reads each tensor with one Range request', async () => {
    const url = await serve(forwardBytes, rangeServer);
    const source = await httpSource(url);
    expect(source.size).toBe(forwardBytes.length);
    const file = await SafetensorsFile.open(source);
    const info = file.info('out');
    const out = await file.readTensor('out');
    expect(sameBytes(out.data, forwardBytes.subarray(info.offset, info.offset + info.byteLength))).toBe(true);
    expect(requests).toEqual(['GET bytes=0-0', 'GET bytes=0-7', `GET bytes=8-${8 + 1600 - 1}`, `GET bytes=${info.offset}-${info.offset + info.byteLength - 1}`]);
    await file.close();
  });

  it('falls back to HEAD when the total size is not in Content-Range', async () => {
    const url = await serve(forwardBytes, (req, res, body) => {
      if (req.headers.range === 'bytes=0-0') {
        res.writeHead(206, { 'Content-Range': 'bytes 0-0/*' });
        res.end(body.subarray(0, 1));
      } else rangeServer(req, res, body);
    });
    expect((await httpSource(url)).size).toBe(forwardBytes.length);
    expect(requests).toEqual(['GET bytes=0-0', 'HEAD']);
  });

  it('fails clearly when the server ignores Range', async () => {
    const big = new Uint8Array(await readFile(TRANSFORMER));
    const url = await serve(big, (_req, res, body) => {
      res.writeHead(200, { 'Content-Length': body.length });
      res.end(body);
    });
    const error = await httpSource(url).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FluxError);
    expect((error as FluxError).message).toBe(
      `${url}: the server ignored the HTTP Range request (status 200 instead of 206); lazy reads need a server with Range support`,
    );
  });

  it('fails clearly when the server sends fewer bytes than asked', async () => {
    const url = await serve(forwardBytes, (req, res, body) => {
      if (req.headers.range === 'bytes=0-0') return rangeServer(req, res, body);
      const first = Number(/^bytes=(\d+)-/.exec(req.headers.range!)![1]);
      res.writeHead(206, { 'Content-Range': `bytes ${first}-${first + 3}/${body.length}` });
      res.end(body.subarray(first, first + 4));
    });
    const source = await httpSource(url);
    await expect(source.read(100, 50)).rejects.toThrow(`${url}: short read at 100: got 4 of 50 bytes`);
  });

  it('reports HTTP errors with the status', async () => {
    const url = await serve(forwardBytes, (_req, res) => {
      res.writeHead(404);
      res.end();
    });
    await expect(httpSource(url)).rejects.toThrow(`${url}: HTTP 404 Not Found`);
  });

  it('uses the fetch it is given', async () => {
    const seen: string[] = [];
    const fakeFetch: typeof fetch = async (input, init) => {
      seen.push(`${String(input)} ${new Headers(init?.headers).get('Range')}`);
      return new Response(new Uint8Array([7]), { status: 206, headers: { 'Content-Range': 'bytes 0-0/42' } });
    };
    const source = await httpSource('https://example.invalid/model.safetensors', { fetch: fakeFetch });
    expect(source.size).toBe(42);
    expect(seen).toEqual(['https://example.invalid/model.safetensors bytes=0-0']);
  });
});

describe('openSource', () => {
  it('picks the source for a path, a Blob and an http URL', async () => {
    const fromPath = await openSource(FORWARD);
    expect([fromPath.name, fromPath.size]).toEqual([FORWARD, forwardBytes.length]);
    await fromPath.close();
    expect((await openSource(new Blob([forwardBytes]))).size).toBe(forwardBytes.length);
    const url = await serve(forwardBytes, rangeServer);
    const fromUrl = await openSource(new URL(url));
    expect([fromUrl.name, fromUrl.size]).toEqual([url, forwardBytes.length]);
    await expect(openSource(new URL('ftp://example.invalid/x'))).rejects.toThrow(/unsupported URL scheme/);
  });
});

describe('mounted files and the read meter', () => {
  it('reads a mounted blob by its path (any separators) until unmounted', async () => {
    const unmount = mountFiles([['picked/transformer/forward.safetensors', new Blob([forwardBytes])]]);
    const source = await openSource('picked//transformer\\forward.safetensors');
    expect([source.name, source.size]).toEqual(['picked//transformer\\forward.safetensors', forwardBytes.length]);
    expect(Array.from(await source.read(8, 4))).toEqual(Array.from(forwardBytes.subarray(8, 12)));
    await source.close();
    unmount();
    await expect(openSource('picked/transformer/forward.safetensors')).rejects.toThrow(FluxError);
  });

  it('reports the bytes of every read to its observers until they unsubscribe', async () => {
    const seen: [string, number][] = [];
    const stop = observeReads((name, bytes) => seen.push([name, bytes]));
    const source = await openSource(FORWARD);
    await source.read(0, 8);
    await source.read(100, 32);
    stop();
    await source.read(0, 4);
    await source.close();
    expect(seen).toEqual([
      [FORWARD, 8],
      [FORWARD, 32],
    ]);
  });
});
