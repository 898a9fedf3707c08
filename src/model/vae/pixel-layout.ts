/**
 * The VAE decoder keeps activations pixel-major ([rows, width, channels], channels fastest) so a band of
 * image rows is one contiguous range and a 1×1 convolution's output is directly attention's token layout.
 * Latents come in and images go out channel-major, as the reference stores them.
 */

/** [c, h, w] (channel-major) → [h, w, c] (pixel-major), and back. */
export function chwToHwc(x: Float32Array, c: number, pixels: number): Float32Array {
  const out = new Float32Array(c * pixels);
  for (let i = 0; i < c; i++) for (let p = 0; p < pixels; p++) out[p * c + i] = x[i * pixels + p]!;
  return out;
}

/** [pixels, stride] pixel-major with the first c of `stride` channels kept → [c, pixels]. */
export function hwcToChw(x: Float32Array, c: number, pixels: number, stride = c): Float32Array {
  const out = new Float32Array(c * pixels);
  for (let i = 0; i < c; i++) for (let p = 0; p < pixels; p++) out[i * pixels + p] = x[p * stride + i]!;
  return out;
}
