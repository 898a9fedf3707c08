/** Seeded random transformer inputs, for calibrating and measuring models that come without prompts (tiny ones). */
import type { FluxConfig } from '../config.ts';
import type { FluxInputs } from '../inputs.ts';

/** mulberry32: a small, fast, seedable generator; the same seed gives the same inputs everywhere. */
function uniform(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normals(n: number, next: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  return out;
}

export interface RandomInputShape {
  /** Image tokens form a side × side grid of latent patches. */
  readonly imageSide: number;
  readonly textTokens: number;
}

/** A small call: 8×8 image tokens and 16 text tokens, the golden tiny model's shape. */
export const DEFAULT_RANDOM_SHAPE: RandomInputShape = { imageSide: 8, textTokens: 16 };
/** The guidance scale FLUX.1-dev is usually sampled with. */
const TYPICAL_GUIDANCE = 3.5;

/**
 * Standard-normal latents, text states and pooled vector (what noise, T5 and CLIP roughly give after their
 * final norms), row/column position ids, zero text ids, a uniform timestep in (0, 1).
 */
export function randomFluxInputs(config: FluxConfig, seed: number, shape: RandomInputShape = DEFAULT_RANDOM_SHAPE): FluxInputs {
  const next = uniform(seed);
  const axes = config.axesDim.length;
  const imgTokens = shape.imageSide * shape.imageSide;
  const imgIds = new Float32Array(imgTokens * axes);
  for (let t = 0; t < imgTokens; t++) {
    imgIds[t * axes + 1] = Math.floor(t / shape.imageSide);
    imgIds[t * axes + 2] = t % shape.imageSide;
  }
  return {
    img: normals(imgTokens * config.inChannels, next),
    imgIds,
    txt: normals(shape.textTokens * config.contextDim, next),
    txtIds: new Float32Array(shape.textTokens * axes),
    timestep: next(),
    y: normals(config.vecDim, next),
    guidance: config.guidanceEmbed ? TYPICAL_GUIDANCE : undefined,
  };
}
