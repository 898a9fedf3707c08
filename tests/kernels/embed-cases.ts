/**
 * The GPU timestep embedding against the f64 CPU reference, at the timesteps and guidance values FLUX uses
 * (angles up to 3500 rad and beyond). Shared by the Node tests and the browser page.
 */
import type { GpuContext } from '../../src/gpu/device.ts';
import { timestepEmbedding } from '../../src/kernels/embed.ts';
import * as ref from '../../src/model/reference/ops.ts';
import { maxRelError } from '../helpers/random.ts';
import { f32Tensor, runBatch } from './elementwise-cases.ts';

/**
 * The kernel reduces the angle exactly in turns and evaluates sin/cos by polynomial, ~1e-6 absolute at most
 * (a plain f32 angle would be off by up to 1.2e-4 at 3500 rad). Outputs are bounded by 1, so relative to
 * max |ref| = 1 this is an absolute bound.
 */
export const EMBED_TOLERANCE = 1e-5;

export interface EmbedCase {
  readonly t: number;
  readonly dim: number;
}

export const EMBED_CASES: readonly EmbedCase[] = [
  { t: 1, dim: 256 }, // the first step: angles up to 1000 rad
  { t: 3.5, dim: 256 }, // dev's default guidance: 3500 rad
  { t: 0, dim: 256 },
  { t: 0.7123456789, dim: 256 }, // not an f32: exercises the low half of t
  { t: 10, dim: 256 }, // a high guidance scale: 10000 rad
  { t: 0.25, dim: 6 },
];

export interface EmbedCaseResult {
  readonly name: string;
  readonly maxRelError: number;
}

export function embedCaseName(c: EmbedCase): string {
  return `timestep_embedding t = ${c.t}, dim ${c.dim}`;
}

export async function runEmbedCase(ctx: GpuContext, c: EmbedCase): Promise<EmbedCaseResult> {
  const [got] = await runBatch(ctx, [new Float32Array(c.dim).fill(Number.NaN)], async (batch, [out]) => {
    await timestepEmbedding(batch, { t: c.t, out: f32Tensor(out!, [c.dim]) });
  });
  return { name: embedCaseName(c), maxRelError: maxRelError(got!, ref.timestepEmbedding(c.t, c.dim)) };
}

export async function runAllEmbedCases(ctx: GpuContext): Promise<EmbedCaseResult[]> {
  const results: EmbedCaseResult[] = [];
  for (const c of EMBED_CASES) results.push(await runEmbedCase(ctx, c));
  return results;
}
