/** A live look at the latent during denoising: its first three channels as RGB, each stretched to its own range. */

const PREVIEW_CHANNELS = 3;

/** RGBA pixels [height, width] of latent [channels, height, width]. */
export function latentToRgba(latent: Float32Array, height: number, width: number): Uint8ClampedArray<ArrayBuffer> {
  const pixels = height * width;
  const rgba = new Uint8ClampedArray(pixels * 4).fill(255);
  for (let c = 0; c < PREVIEW_CHANNELS; c++) {
    const channel = latent.subarray(c * pixels, (c + 1) * pixels);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of channel) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    const scale = hi > lo ? 255 / (hi - lo) : 0;
    for (let p = 0; p < pixels; p++) rgba[p * 4 + c] = (channel[p]! - lo) * scale;
  }
  return rgba;
}

export function drawLatent(canvas: HTMLCanvasElement, latent: Float32Array, height: number, width: number): void {
  canvas.width = width;
  canvas.height = height;
  canvas.getContext('2d')!.putImageData(new ImageData(latentToRgba(latent, height, width), width, height), 0, 0);
}
