import { describe, expect, it } from 'vitest';
import { relativePositionBucket, relativePositionBuckets } from '../../src/model/t5-buckets.ts';

describe('T5 relative position buckets (32 buckets, max distance 128)', () => {
  // Worked from the definition: 16 buckets per direction, offsets 0..7 exact, 8..127 log-spaced over
  // buckets 8..15 (bucket 8 + floor(8·log(n/8)/log(16))), 128 and beyond in bucket 15; keys after the query +16.
  const cases: [number, number][] = [
    [0, 0], [1, 17], [-1, 1], [7, 23], [-7, 7], [8, 24], [-8, 8], [11, 24], [-12, 9], [15, 25], [16, 26], [-16, 10],
    [31, 27], [32, 28], [-32, 12], [63, 29], [64, 30], [-64, 14], [127, 31], [128, 31], [-128, 15], [-1000, 15],
  ];
  for (const [offset, bucket] of cases) {
    it(`offset ${offset} -> bucket ${bucket}`, () => expect(relativePositionBucket(offset, 32, 128)).toBe(bucket));
  }

  it('lays out offsets -(rows-1) .. rows-1', () => {
    expect(Array.from(relativePositionBuckets(3, 32, 128))).toEqual([2, 1, 0, 17, 18]);
    expect(relativePositionBuckets(1, 32, 128)).toEqual(new Uint32Array([0]));
  });
});
