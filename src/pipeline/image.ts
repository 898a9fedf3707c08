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
