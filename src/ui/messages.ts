/** Errors in plain words for the page: what happened and what to try, with the engine's one-line message. */
import { isFluxError } from '../errors.ts';

export function isAbort(e: unknown): boolean {
  return e instanceof DOMException && e.name === 'AbortError';
}

export function describeError(e: unknown): string {
  if (!isFluxError(e)) return `Something went wrong: ${e instanceof Error ? e.message : String(e)}`;
  switch (e.code) {
    case 'webgpu-unavailable':
      return `WebGPU is not available, so nothing can run here. ${e.message}`;
    case 'gpu-out-of-memory':
    case 'limit-exceeded':
      return `The GPU ran out of memory (${e.message}). Try a smaller image, the INT4 preset, or closing other tabs that use the GPU.`;
    case 'device-lost':
      return `The GPU stopped responding (${e.message}). This happens after a driver reset or when memory runs out: press Load to start the GPU again and reload the model (or reload the page).`;
    case 'io':
    case 'bad-format':
    case 'unsupported-dtype':
    case 'bad-shape':
      return `The model files could not be used: ${e.message}. Pick a diffusers FLUX.1 folder (model_index.json, transformer/, vae/, text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/).`;
    case 'bad-argument':
      return `That setting cannot be used: ${e.message}.`;
    default:
      return `The GPU reported an error: ${e.message}`;
  }
}
