/**
 * T5's bucketed bidirectional relative positions (docs/text-encoders.md): half the buckets for keys after the
 * query, half for keys before; within each half, offsets below half of it get a bucket each, larger ones
 * share log-spaced buckets up to `maxDistance`, beyond which all fall into the last bucket.
 *
 * The log-spaced part is computed in f32 step by step, as the reference implementations do in float32
 * tensors, so that offsets on a boundary (16, 32, 64 with 32 buckets / 128) land in the same bucket.
 */
const f32 = Math.fround;

/** The bucket of key-query offset j − i. */
export function relativePositionBucket(offset: number, numBuckets: number, maxDistance: number): number {
  const half = Math.floor(numBuckets / 2);
  const base = offset > 0 ? half : 0;
  const n = Math.abs(offset);
  const maxExact = Math.floor(half / 2);
  if (n < maxExact) return base + n;
  const logRatio = f32(Math.log(f32(n / maxExact)));
  const scaled = f32(f32(logRatio / f32(Math.log(maxDistance / maxExact))) * (half - maxExact));
  return base + Math.min(maxExact + Math.trunc(scaled), half - 1);
}

/** Buckets of every offset −(rows − 1) … rows − 1, the layout attention's offset bias uses. */
export function relativePositionBuckets(rows: number, numBuckets: number, maxDistance: number): Uint32Array {
  const out = new Uint32Array(Math.max(0, 2 * rows - 1));
  for (let o = 0; o < out.length; o++) out[o] = relativePositionBucket(o - (rows - 1), numBuckets, maxDistance);
  return out;
}
