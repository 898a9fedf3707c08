/** The decoded image [3, H, W] in [−1, 1] (nominally) to 8-bit RGBA, and PNG encoding with settings as text. */
import { encode } from 'fast-png';

const OPAQUE = 255;

/**
 * clamp(x, −1, 1) → round(127.5·(x + 1)), channel-major in, interleaved RGBA out. Rounding (as diffusers)
 * rather than BFL's truncation: at most 1 LSB apart.
 */
export function imageToRgba(image: Float32Array, width: number, height: number): Uint8ClampedArray<ArrayBuffer> {
  const pixels = width * height;
  const rgba = new Uint8ClampedArray(pixels * 4);
  for (let p = 0; p < pixels; p++) {
    for (let c = 0; c < 3; c++) rgba[p * 4 + c] = Math.round(127.5 * (Math.min(1, Math.max(-1, image[c * pixels + p]!)) + 1));
    rgba[p * 4 + 3] = OPAQUE;
  }
  return rgba;
}

/** An RGBA PNG with `settings` as tEXt chunks (keyword → value). */
export function encodePng(rgba: Uint8ClampedArray, width: number, height: number, settings: Readonly<Record<string, string | number>>): Uint8Array {
  const text = Object.fromEntries(Object.entries(settings).map(([k, v]) => [k, String(v)]));
  return encode({ width, height, data: new Uint8Array(rgba.buffer, rgba.byteOffset, rgba.byteLength), channels: 4, depth: 8, text });
}

/**
 * Tiles equally sized interleaved images (`channels` per pixel) into rows of `columns`, each pixel repeated
 * `scale`×`scale`; empty cells are white. For sample grids.
 */
export function tileImages(images: readonly ArrayLike<number>[], width: number, height: number, channels: number, columns: number, scale = 1): { data: Uint8Array; width: number; height: number } {
  const rows = Math.ceil(images.length / columns);
  const [cellW, cellH] = [width * scale, height * scale];
  const outW = columns * cellW, outH = rows * cellH;
  const data = new Uint8Array(outW * outH * channels).fill(255);
  images.forEach((image, n) => {
    const ox = (n % columns) * cellW, oy = Math.floor(n / columns) * cellH;
    for (let y = 0; y < cellH; y++) {
      for (let x = 0; x < cellW; x++) {
        const src = (Math.floor(y / scale) * width + Math.floor(x / scale)) * channels;
        const dst = ((oy + y) * outW + ox + x) * channels;
        for (let c = 0; c < channels; c++) data[dst + c] = image[src + c]!;
      }
    }
  });
  return { data, width: outW, height: outH };
}
