/** Rotary position embedding tables, computed on the host in f64 (doc §3.2) and uploaded as f32. */

/** cos/sin of the rotation angle of every (token, pair), each [tokens, headDim/2]. */
export interface RopeTable {
  readonly cos: Float32Array;
  readonly sin: Float32Array;
}

/**
 * RoPE angles for position ids [tokens, axes] (FLUX: 3 axes). Pairs are assigned to axes in order, axis a
 * owning axesDim[a]/2 pairs; pair j of an axis of size d turns by pos·theta^(−2j/d). Computed in f64
 * (doc §3.2), stored as f32.
 */
export function ropeTable(ids: Float32Array, tokens: number, axesDim: readonly number[], theta: number): RopeTable {
  const pairs = axesDim.reduce((a, b) => a + b, 0) / 2;
  const cos = new Float32Array(tokens * pairs);
  const sin = new Float32Array(tokens * pairs);
  for (let t = 0; t < tokens; t++) {
    let p = 0;
    for (let a = 0; a < axesDim.length; a++) {
      const d = axesDim[a];
      const pos = ids[t * axesDim.length + a];
      for (let j = 0; j < d / 2; j++, p++) {
        const angle = pos * theta ** ((-2 * j) / d);
        cos[t * pairs + p] = Math.cos(angle);
        sin[t * pairs + p] = Math.sin(angle);
      }
    }
  }
  return { cos, sin };
}
