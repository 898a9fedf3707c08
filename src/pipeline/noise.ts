/**
 * Seeded Gaussian noise, the same in every JavaScript engine that rounds Math.log and Math.sqrt alike
 * (V8 in Chromium and Node do): xoshiro128** seeded through SplitMix32, normals by Marsaglia's polar method
 * (no trigonometry). Values are drawn in f64 and rounded to f32, in the order of the latent's flat index
 * [16, H/8, W/8] (channel-major), so a seed means one image at a given size whatever the platform.
 * This does not reproduce PyTorch's generator: a seed gives a different image than diffusers or BFL.
 */
import { FluxError } from '../errors.ts';

const TWO_POW_32 = 2 ** 32;

/** SplitMix32 step: spreads a seed into well-mixed 32-bit state words. */
function splitMix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) >>> 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/** xoshiro128** (Blackman & Vigna): 32-bit outputs, period 2^128 − 1. */
export class Xoshiro128 {
  private readonly s = new Uint32Array(4);

  /** Any safe integer seed ≥ 0: its low and high 32-bit halves both feed the state. */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new FluxError('bad-argument', `seed must be a non-negative integer, got ${seed}`);
    const mix = { s: (seed % TWO_POW_32) >>> 0 };
    const high = Math.floor(seed / TWO_POW_32) >>> 0;
    for (let i = 0; i < 4; i++) this.s[i] = splitMix32(mix) ^ (i === 1 ? high : 0);
    if (this.s.every((v) => v === 0)) this.s[0] = 1;
  }

  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in (−1, 1) with 32 random bits. */
  nextSigned(): number {
    return ((this.nextUint32() + 0.5) / TWO_POW_32) * 2 - 1;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** `count` standard normal values from `seed` (polar method: two normals per accepted pair). */
export function gaussianNoise(seed: number, count: number): Float32Array {
  const rng = new Xoshiro128(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; ) {
    const u = rng.nextSigned();
    const v = rng.nextSigned();
    const s = u * u + v * v;
    if (s >= 1 || s === 0) continue;
    const f = Math.sqrt((-2 * Math.log(s)) / s);
    out[i++] = u * f;
    if (i < count) out[i++] = v * f;
  }
  return out;
}
