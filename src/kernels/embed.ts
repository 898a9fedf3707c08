/** Sinusoidal timestep / guidance embedding on the GPU (shaders/embed.wgsl). */
import { FluxError } from '../errors.ts';
import type { CommandBatch } from '../gpu/batch.ts';
import { numel, type GpuTensor } from '../gpu/tensor.ts';
import { shaderConstant } from '../gpu/shaders.ts';
import { ceilDiv, packUniforms, pipelineFor } from './kernel.ts';

/** Sinusoidal embeddings run on t·1000 (t = 1 → 1000, guidance 3.5 → 3500). */
export const TIMESTEP_SCALE = 1000;
/** Longest period of the sinusoidal timestep embedding. */
export const TIMESTEP_MAX_PERIOD = 10_000;

/** Keeps an f32's sign, exponent and top 11 stored mantissa bits: 12 significant bits (TOP_12_BITS). */
const TOP_12_BITS = 0xfffff000;

/** Shader defines per embedding size: the frequency table in turns, split into a 12-bit head and a tail. */
const tableCache = new Map<number, Readonly<Record<string, string | number>>>();

function frequencyTable(half: number): Readonly<Record<string, string | number>> {
  let defines = tableCache.get(half);
  if (!defines) {
    const bits = new Uint32Array(1);
    const asF32 = new Float32Array(bits.buffer);
    const hi: number[] = [];
    const lo: number[] = [];
    for (let i = 0; i < half; i++) {
      // Turns per unit of t: 1000·10000^(−i/half) / 2π, in f64.
      const turns = (TIMESTEP_SCALE * Math.exp((-Math.log(TIMESTEP_MAX_PERIOD) * i) / half)) / (2 * Math.PI);
      asF32[0] = turns;
      bits[0] = bits[0]! & TOP_12_BITS;
      hi.push(bits[0]!);
      asF32[0] = turns - asF32[0]!;
      lo.push(bits[0]!);
    }
    const literal = (words: number[]): string => words.map((w) => `0x${w.toString(16)}u`).join(', ');
    defines = { HALF: half, TURNS_HI: literal(hi), TURNS_LO: literal(lo) };
    tableCache.set(half, defines);
  }
  return defines;
}

export interface TimestepEmbeddingArgs {
  /** The timestep in [0, 1] or the guidance scale; embedded as 1000·t like the reference. */
  readonly t: number;
  /** [dim] f32 (dim even; FLUX: 256): [cos(a_0..a_{dim/2−1}) | sin(a_0..)], a_i = 1000·t·10000^(−2i/dim). */
  readonly out: GpuTensor;
}

/** Writes the sinusoidal embedding of t; matches the f64 reference to about 1e-6 for |t| up to ~10. */
export async function timestepEmbedding(batch: CommandBatch, a: TimestepEmbeddingArgs): Promise<void> {
  const dim = numel(a.out.shape);
  if (a.out.dtype !== 'f32' || dim < 2 || dim % 2 !== 0) {
    throw new FluxError('bad-shape', `timestep_embedding: out [${a.out.shape}] ${a.out.dtype} is not an even-sized f32 vector`);
  }
  if (!Number.isFinite(a.t)) throw new FluxError('bad-argument', `timestep_embedding: t = ${a.t}`);
  const half = dim / 2;
  const pipeline = await pipelineFor(batch.ctx, { name: 'embed', defines: frequencyTable(half) });
  const tHi = Math.fround(a.t);
  batch.dispatch(pipeline, [a.out], packUniforms([{ f32: tHi }, { f32: a.t - tHi }]), ceilDiv(half, shaderConstant('embed', 'WG')));
}
