/**
 * Every canonical parameter of a checkpoint as float32 in host memory: what the CPU reference forward, the
 * calibration and the offline weight transforms (smoothing, low-rank) work on. Meant for models that fit in
 * host memory as f32 (the tiny golden models; FLUX.1 needs ~48 GB this way).
 *
 * A transformed parameter set is written back as a diffusers-layout F32 file, which every loader of the
 * engine reads like any other checkpoint (the transforms cost nothing at run time).
 */
import { FluxError } from '../errors.ts';
import { encodeSafetensors, type TensorToWrite } from '../weights/safetensors-writer.ts';
import type { FluxCheckpoint } from './checkpoint.ts';
import { FINAL_MODULATION_CHUNKS, TOP_LEVEL } from './layout.ts';
import type { ParamGetter } from './reference/flux-ref.ts';

/** Canonical name (e.g. `transformer_blocks.0.attn.to_q.weight`) → row-major float32 values. */
export type CanonicalParams = ReadonlyMap<string, Float32Array>;

/** Reads and widens every parameter of the checkpoint's plan, in plan order. */
export async function readCanonicalParams(checkpoint: FluxCheckpoint): Promise<Map<string, Float32Array>> {
  const params = new Map<string, Float32Array>();
  for (const name of checkpoint.plan.params.keys()) params.set(name, await checkpoint.readFloat32(name));
  return params;
}

/** The reference forward's parameter access; an unknown name is a FluxError. */
export function paramGetter(params: CanonicalParams): ParamGetter {
  return (name) => {
    const values = params.get(name);
    if (!values) throw new FluxError('bad-argument', `no parameter "${name}" in this model`);
    return values;
  };
}

/** Shapes of the canonical parameters, from the checkpoint's plan (the values carry no shape). */
export function paramShapes(checkpoint: FluxCheckpoint): Map<string, readonly number[]> {
  return new Map([...checkpoint.plan.params.values()].map((p) => [p.name, p.shape]));
}

/**
 * The parameters as a diffusers-layout F32 safetensors file: canonical names are diffusers names, except that
 * diffusers stores the final modulation as scale then shift (layout.ts), so its halves are swapped back.
 */
export function encodeDiffusersCheckpoint(
  params: CanonicalParams,
  shapes: ReadonlyMap<string, readonly number[]>,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array<ArrayBuffer> {
  const tensors: TensorToWrite[] = [];
  for (const [name, shape] of shapes) {
    let values = params.get(name);
    if (!values) throw new FluxError('bad-argument', `parameter "${name}" is missing from the set to write`);
    if (name.startsWith(`${TOP_LEVEL.finalModulation}.`)) values = swapHalves(values, FINAL_MODULATION_CHUNKS);
    tensors.push({ name, dtype: 'F32', shape, data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) });
  }
  return encodeSafetensors(tensors, metadata);
}

/** [a | b] → [b | a] along rows (the two chunks of a 2-chunk modulation). */
function swapHalves(values: Float32Array, chunks: number): Float32Array {
  if (chunks !== 2) throw new Error('swapHalves expects two chunks');
  const half = values.length / 2;
  const out = new Float32Array(values.length);
  out.set(values.subarray(half), 0);
  out.set(values.subarray(0, half), half);
  return out;
}
