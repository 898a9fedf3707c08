/** Node platform: Dawn through the `webgpu` npm package, shaders and files read from disk. */
import { existsSync, readFileSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { create, globals } from 'webgpu';
import { FluxError } from '../errors.ts';
import type { ByteSource, Platform } from './types.ts';

/** Debian's chromium ships SwiftShader, a CPU Vulkan driver; used when no other adapter is configured. */
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const SHADER_DIR = new URL('../../shaders/', import.meta.url);

let gpu: GPU | undefined;

function getGpu(): GPU | undefined {
  if (gpu) return gpu;
  // Dawn's Vulkan loader reads VK_ICD_FILENAMES when the instance is created.
  if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER_ICD) && process.env.FLUX_W4A4_ADAPTER !== 'system') {
    process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  }
  // SwiftShader probes for a display server and prints an error line without this (headless machines, CI).
  process.env.XDG_RUNTIME_DIR ??= tmpdir();
  Object.assign(globalThis, globals);
  gpu = create([]);
  exposeForWasmLibraries(gpu);
  return gpu;
}

/**
 * What WebGPU libraries built for the browser need to run on Dawn too (onnxruntime-web's WebGPU EP, the bench's
 * peers): the entry point at `navigator.gpu` (Node has no navigator.gpu), and queue.writeBuffer taking data in a
 * SharedArrayBuffer (a threaded wasm build's memory), which Dawn's binding rejects with "Invalid argument".
 */
function exposeForWasmLibraries(entry: GPU): void {
  const nav = ((globalThis as { navigator?: object }).navigator ??= {});
  if (!('gpu' in nav)) Object.defineProperty(nav, 'gpu', { value: entry, configurable: true });
  const write = GPUQueue.prototype.writeBuffer;
  GPUQueue.prototype.writeBuffer = function (buffer, offset, data, dataOffset, size) {
    if (!ArrayBuffer.isView(data) || !(data.buffer instanceof SharedArrayBuffer)) return write.call(this, buffer, offset, data, dataOffset, size);
    // dataOffset and size count elements of a typed array, bytes of a DataView.
    const element = 'BYTES_PER_ELEMENT' in data ? (data.BYTES_PER_ELEMENT as number) : 1;
    const start = (dataOffset ?? 0) * element;
    const length = size === undefined ? data.byteLength - start : size * element;
    write.call(this, buffer, offset, new Uint8Array(data.buffer, data.byteOffset + start, length).slice());
  };
}

const shaderCache = new Map<string, string>();
function shaderSource(name: string): string {
  let text = shaderCache.get(name);
  if (text === undefined) {
    text = readFileSync(new URL(`${name}.wgsl`, SHADER_DIR), 'utf8');
    shaderCache.set(name, text);
  }
  return text;
}

export const platform: Platform = { name: 'node', getGpu, shaderSource };

/** A file on disk as a ByteSource; reads go straight to the OS, nothing is preloaded. */
export async function openFileSource(path: string): Promise<ByteSource> {
  let size: number;
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new FluxError('io', `${path}: not a regular file`);
    size = s.size;
  } catch (e) {
    if (e instanceof FluxError) throw e;
    throw new FluxError('io', `${path}: cannot open (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { cause: e });
  }
  const handle = await open(path, 'r');
  let closed = false;
  return {
    name: path,
    size,
    async read(offset: number, length: number): Promise<Uint8Array> {
      if (closed) throw new FluxError('io', `${path}: read after close`);
      if (offset < 0 || length < 0 || offset + length > size) {
        throw new FluxError('io', `${path}: read of ${length} bytes at ${offset} is past the end (${size} bytes)`);
      }
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(out, done, length - done, offset + done);
        if (bytesRead === 0) throw new FluxError('io', `${path}: file ended early at byte ${offset + done}`);
        done += bytesRead;
      }
      return out;
    },
    async close() {
      if (!closed) {
        closed = true;
        await handle.close();
      }
    },
  };
}
