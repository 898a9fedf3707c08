/**
 * Rectified-flow sampling for FLUX.1: the timestep schedule (shifted for dev), latent packing into 2×2
 * patch tokens and their position ids, and the Euler loop over the transformer with the modulation vectors
 * of all steps computed before the first one. Optional true classifier-free guidance runs a second
 * (negative-prompt) pass per step: v = v_neg + scale·(v_pos − v_neg).
 */
import { FluxError } from '../errors.ts';
import type { ModulationTable, TransformerRunner } from './transformer-runner.ts';

/** Latent pixels per token side (2×2 patches). */
export const PATCH = 2;
/** The schedule shift's linear mu(tokens) runs through (256, 0.5) and (4096, 1.15) (BFL get_lin_function). */
const SHIFT_BASE_TOKENS = 256;
const SHIFT_MAX_TOKENS = 4096;
const SHIFT_BASE = 0.5;
const SHIFT_MAX = 1.15;
const POSITION_AXES = 3;

/** mu = m·tokens + b through (256, 0.5) and (4096, 1.15); not clamped outside that range, as the reference. */
export function scheduleMu(imageTokens: number): number {
  const m = (SHIFT_MAX - SHIFT_BASE) / (SHIFT_MAX_TOKENS - SHIFT_BASE_TOKENS);
  return m * imageTokens + (SHIFT_BASE - m * SHIFT_BASE_TOKENS);
}

/**
 * steps + 1 times from 1 to 0: linspace(1, 0), and with `shift` (dev) t ← e^mu / (e^mu + 1/t − 1), mu from the
 * image token count. The last time is exactly 0.
 */
export function flowSchedule(steps: number, imageTokens: number, shift: boolean): number[] {
  if (!Number.isInteger(steps) || steps < 1) throw new FluxError('bad-argument', `steps must be a positive integer, got ${steps}`);
  const times = Array.from({ length: steps + 1 }, (_, k) => 1 - k / steps);
  times[steps] = 0;
  if (!shift) return times;
  const e = Math.exp(scheduleMu(imageTokens));
  return times.map((t) => (t === 0 ? 0 : e / (e + (1 / t - 1))));
}

/** z [c, h, w] → tokens [(h/2)·(w/2), c·4]: token r·(w/2) + q, feature c·4 + dy·2 + dx = z[c, 2r + dy, 2q + dx]. */
export function packLatent(z: Float32Array, c: number, h: number, w: number): Float32Array {
  checkLatent(z, c, h, w);
  const [rows, cols] = [h / PATCH, w / PATCH];
  const out = new Float32Array(z.length);
  for (let r = 0; r < rows; r++)
    for (let q = 0; q < cols; q++)
      for (let ch = 0; ch < c; ch++)
        for (let dy = 0; dy < PATCH; dy++)
          for (let dx = 0; dx < PATCH; dx++) out[(r * cols + q) * c * 4 + ch * 4 + dy * 2 + dx] = z[(ch * h + PATCH * r + dy) * w + PATCH * q + dx]!;
  return out;
}

/** The inverse of packLatent. */
export function unpackLatent(tokens: Float32Array, c: number, h: number, w: number): Float32Array {
  checkLatent(tokens, c, h, w);
  const [rows, cols] = [h / PATCH, w / PATCH];
  const out = new Float32Array(tokens.length);
  for (let r = 0; r < rows; r++)
    for (let q = 0; q < cols; q++)
      for (let ch = 0; ch < c; ch++)
        for (let dy = 0; dy < PATCH; dy++)
          for (let dx = 0; dx < PATCH; dx++) out[(ch * h + PATCH * r + dy) * w + PATCH * q + dx] = tokens[(r * cols + q) * c * 4 + ch * 4 + dy * 2 + dx]!;
  return out;
}

function checkLatent(z: Float32Array, c: number, h: number, w: number): void {
  if (h % PATCH !== 0 || w % PATCH !== 0 || z.length !== c * h * w) throw new FluxError('bad-shape', `latent of ${z.length} values is not [${c}, ${h}, ${w}] with even sides`);
}

/** Position ids of the image tokens: (0, row, column) per token, row-major. */
export function imagePositionIds(h: number, w: number): Float32Array {
  const [rows, cols] = [h / PATCH, w / PATCH];
  const ids = new Float32Array(rows * cols * POSITION_AXES);
  for (let r = 0; r < rows; r++) {
    for (let q = 0; q < cols; q++) {
      ids[(r * cols + q) * POSITION_AXES + 1] = r;
      ids[(r * cols + q) * POSITION_AXES + 2] = q;
    }
  }
  return ids;
}

/** Text tokens sit at position (0, 0, 0). */
export function textPositionIds(tokens: number): Float32Array {
  return new Float32Array(tokens * POSITION_AXES);
}

export interface TextCondition {
  /** [tokens, contextDim] T5 states. */
  readonly txt: Float32Array;
  /** [vecDim] CLIP pooled vector. */
  readonly pooled: Float32Array;
  /** [tokens, 3]; zeros when omitted. */
  readonly txtIds?: Float32Array;
}

export interface DenoiseArgs {
  /** Packed start latent [tokens, 64] (the noise at t = 1). */
  readonly img: Float32Array;
  readonly imgIds: Float32Array;
  readonly positive: TextCondition;
  /** With trueCfgScale > 1: the negative prompt's condition, run as a second pass per step. */
  readonly negative?: TextCondition;
  readonly trueCfgScale?: number;
  /** steps + 1 times, from flowSchedule. */
  readonly timesteps: readonly number[];
  /** The embedded guidance of dev models; ignored by schnell. */
  readonly guidance?: number;
  readonly signal?: AbortSignal;
  /** After each step, with its 1-based index, wall time and the packed latent so far (read it, do not keep it). */
  readonly onStep?: (step: number, steps: number, ms: number, img: Float32Array) => void;
  /** Once every step's modulation vectors are computed: the modulation weights are not needed after this. */
  readonly onConditioned?: () => void;
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new DOMException('generation was cancelled', 'AbortError');
}

/** Euler steps img ← img + (t_{k+1} − t_k)·v from timesteps[0] to the last; returns the packed latent. */
export async function denoise(runner: TransformerRunner, a: DenoiseArgs): Promise<Float32Array> {
  const { config } = runner.model;
  const steps = a.timesteps.length - 1;
  const guidance = config.guidanceEmbed ? a.guidance : undefined;
  if (config.guidanceEmbed && guidance === undefined) throw new FluxError('bad-argument', 'guidance is required: this model is guidance-distilled (dev)');
  const scale = a.trueCfgScale ?? 1;
  const conditions = scale > 1 && a.negative ? [a.positive, a.negative] : [a.positive];
  const stepConds = a.timesteps.slice(0, steps).map((timestep) => ({ timestep, guidance }));
  const modulations: ModulationTable[] = [];
  for (const c of conditions) modulations.push(await runner.precomputeModulations(stepConds, c.pooled));
  a.onConditioned?.();
  const img = new Float32Array(a.img);
  for (let k = 0; k < steps; k++) {
    throwIfAborted(a.signal);
    const start = performance.now();
    const velocities: Float32Array[] = [];
    for (const [j, c] of conditions.entries()) {
      const tokens = c.txt.length / config.contextDim;
      const { out } = await runner.forward(
        { img, imgIds: a.imgIds, txt: c.txt, txtIds: c.txtIds ?? textPositionIds(tokens), timestep: a.timesteps[k]!, y: c.pooled, guidance },
        { modulations: { table: modulations[j]!, step: k } },
      );
      velocities.push(out);
    }
    const dt = a.timesteps[k + 1]! - a.timesteps[k]!;
    const [pos, neg] = velocities;
    for (let i = 0; i < img.length; i++) {
      const v = neg ? neg[i]! + scale * (pos![i]! - neg[i]!) : pos![i]!;
      img[i] = img[i]! + dt * v;
    }
    a.onStep?.(k + 1, steps, performance.now() - start, img);
  }
  return img;
}
