/** Browser platform: `navigator.gpu`, shaders bundled by Vite as raw strings. */
import { FluxError } from '../errors.ts';
import type { ByteSource, Platform } from './types.ts';

// import.meta.glob needs a literal pattern; its keys are the matched paths, so look names up the same way.
const shaders = import.meta.glob('../../shaders/**/*.wgsl', { query: '?raw', import: 'default', eager: true }) as Record<
  string,
  string
>;

function shaderSource(name: string): string {
  const text = shaders[`../../shaders/${name}.wgsl`];
  if (text === undefined) throw new FluxError('bad-argument', `no shader named ${name}`);
  return text;
}

function getGpu(): GPU | undefined {
  return typeof navigator !== 'undefined' && 'gpu' in navigator ? navigator.gpu : undefined;
}

export const platform: Platform = { name: 'browser', getGpu, shaderSource };

/** Local files do not exist as paths in the browser; use a File/Blob or URL source instead. */
export async function openFileSource(path: string): Promise<ByteSource> {
  throw new FluxError('io', `${path}: file paths are not readable in the browser; pass a File or a URL`);
}
