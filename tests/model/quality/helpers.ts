/** The flux-tiny-a canonical parameters in host memory, from either checkpoint layout. */
import { FluxCheckpoint } from '../../../src/model/checkpoint.ts';
import type { FluxConfig } from '../../../src/model/config.ts';
import { readCanonicalParams } from '../../../src/model/params.ts';
import { maxRelError } from '../../helpers/random.ts';
import { openSafetensors } from '../helpers.ts';

export async function loadParams(path: string, config: FluxConfig): Promise<Map<string, Float32Array>> {
  const checkpoint = FluxCheckpoint.open(await openSafetensors(path), config);
  try {
    return await readCanonicalParams(checkpoint);
  } finally {
    await checkpoint.close();
  }
}

/** δy = max|y_a − y_b| / max|y_a| of `out` and of every block stream, by name. */
export function streamDeltas(a: { out: Float32Array; streams: ReadonlyMap<string, Float32Array> }, b: { out: Float32Array; streams: ReadonlyMap<string, Float32Array> }): Record<string, number> {
  const deltas: Record<string, number> = { out: maxRelError(b.out, a.out) };
  for (const [name, values] of a.streams) deltas[name] = maxRelError(b.streams.get(name)!, values);
  return deltas;
}
