/**
 * Flash attention against the CPU reference (f64 softmax over the full score matrix): single rows, sizes off
 * the tile grid, FLUX's text-then-image joint length, many tiles, and an output written into a column range
 * of a wider buffer. Shared by the Node tests and the browser page.
 */
import type { GpuContext } from '../../src/gpu/device.ts';
import { attention } from '../../src/kernels/attention.ts';
import { positionBias } from '../../src/kernels/position-bias.ts';
import { relativePositionBuckets } from '../../src/model/t5-buckets.ts';
import * as ref from '../../src/model/reference/ops.ts';
import { randn } from '../helpers/random.ts';
import { compareBlock, countChanged, f32Tensor, readBlock, runBatch, type BlockComparison, type Placement } from './elementwise-cases.ts';

/**
 * Scores are f32 dot products over headDim <= 128 (relative error ~1e-7 of |q|·|k|), exp2 is good to a few
 * ulps, and each output is a convex combination of v accumulated in f32 over <= 1024 keys: ~1e-6 of max |o|
 * in the worst case here, so 1e-5 leaves a 10× margin yet catches any indexing or softmax mistake (those
 * give errors of order 1).
 */
export const ATTENTION_TOLERANCE = 1e-5;

export interface AttentionCase {
  readonly rows: number;
  readonly heads: number;
  readonly headDim: number;
  /** qkv columns past v (the single block's mlp part). */
  readonly extraCols: number;
  /** Write into columns [col0, col0 + hidden) of a [rows, hidden + outExtra] buffer; 0, 0 for a plain [rows, hidden]. */
  readonly outCol0: number;
  readonly outExtra: number;
  /** CLIP: keys after the query are masked. */
  readonly causal?: boolean;
  /** T5: unscaled scores plus a relative position bias per head and offset, made by position_bias. */
  readonly t5Bias?: boolean;
}

const plain = { extraCols: 0, outCol0: 0, outExtra: 0 };
const strided = { extraCols: 36, outCol0: 8, outExtra: 20 };

export const ATTENTION_CASES: readonly AttentionCase[] = [
  { rows: 1, heads: 4, headDim: 64, ...plain },
  { rows: 17, heads: 4, headDim: 64, ...strided },
  { rows: 80, heads: 4, headDim: 64, ...plain },
  { rows: 333, heads: 4, headDim: 64, ...strided },
  { rows: 1, heads: 2, headDim: 128, ...strided },
  { rows: 17, heads: 2, headDim: 128, ...plain },
  { rows: 80, heads: 2, headDim: 128, ...strided },
  { rows: 333, heads: 2, headDim: 128, ...plain },
  // The single block's layout: output in the first hidden columns of concat(attention, mlp).
  { rows: 1024, heads: 2, headDim: 128, extraCols: 512, outCol0: 0, outExtra: 512 },
  // CLIP: causal; one row, a partial tile, 77 rows (several workgroups), head dims 64 and 16.
  { rows: 1, heads: 4, headDim: 64, ...plain, causal: true },
  { rows: 77, heads: 12, headDim: 64, ...strided, causal: true },
  { rows: 150, heads: 4, headDim: 16, ...plain, causal: true },
  // T5: scale 1 and the bucketed bias, at lengths below and beyond the 128 max distance.
  { rows: 1, heads: 4, headDim: 16, ...plain, t5Bias: true },
  { rows: 37, heads: 4, headDim: 64, ...strided, t5Bias: true },
  { rows: 300, heads: 3, headDim: 16, ...plain, t5Bias: true },
  { rows: 45, heads: 2, headDim: 16, ...plain, t5Bias: true, causal: true },
];

/** T5's bucketing (FLUX's T5-XXL: 32 buckets, max distance 128). */
const T5_BUCKETS = 32;
const T5_MAX_DISTANCE = 128;
/** T5-XXL's bias table values are of order 10: large enough to dominate the scores of some pairs. */
const T5_BIAS_SCALE = 4;

/** Spreads the scores (std ≈ 2) so the softmax is peaked and the running max changes across tiles. */
const Q_SCALE = 2;

export interface AttentionCaseResult extends BlockComparison {
  readonly name: string;
}

export function attentionCaseName(c: AttentionCase): string {
  const out = c.outExtra > 0 ? `, out at column ${c.outCol0} of ${c.heads * c.headDim + c.outExtra}` : '';
  const options = `${c.causal ? ', causal' : ''}${c.t5Bias ? ', T5 position bias, scale 1' : ''}`;
  return `attention ${c.rows} rows, ${c.heads} heads x ${c.headDim}, qkv stride ${3 * c.heads * c.headDim + c.extraCols}${out}${options}`;
}

export async function runAttentionCase(ctx: GpuContext, c: AttentionCase, seed: number): Promise<AttentionCaseResult> {
  const { rows, heads, headDim } = c;
  const hidden = heads * headDim;
  const stride = 3 * hidden + c.extraCols;
  const qkv = randn(rows * stride, seed);
  for (let r = 0; r < rows; r++) for (let i = 0; i < hidden; i++) qkv[r * stride + i]! *= Q_SCALE;
  const at: Placement = { stride: hidden + c.outExtra, row0: 0, col0: c.outCol0, rows, cols: hidden };
  const out = randn(rows * at.stride, seed + 1);

  const table = randn(T5_BUCKETS * heads, seed + 2, T5_BIAS_SCALE);
  const buckets = relativePositionBuckets(rows, T5_BUCKETS, T5_MAX_DISTANCE);
  const bias = new Float32Array(heads * (2 * rows - 1));
  const [gotQkv, gotOut, , , gotBias] = await runBatch(ctx, [qkv, out, table, new Float32Array(buckets.buffer), bias], async (batch, [bqkv, bout, btable, bbuckets, bbias]) => {
    const offsetBias = f32Tensor(bbias!, [heads, 2 * rows - 1]);
    if (c.t5Bias) {
      const bucketTensor = { buffer: bbuckets!, offset: 0, shape: [buckets.length], dtype: 'u32' as const };
      await positionBias(batch, { buckets: bucketTensor, table: f32Tensor(btable!, [T5_BUCKETS, heads]), heads, out: offsetBias });
    }
    await attention(batch, {
      qkv: f32Tensor(bqkv!, [rows, stride]),
      heads,
      headDim,
      out: { tensor: f32Tensor(bout!, [rows, at.stride]), col0: at.col0, cols: hidden },
      causal: c.causal,
      ...(c.t5Bias ? { scale: 1, offsetBias } : {}),
    });
  });
  // The bias must be exactly the table entries of each offset's bucket.
  let biasMismatches = 0;
  if (c.t5Bias) {
    for (let h = 0; h < heads; h++) buckets.forEach((b, o) => (biasMismatches += Object.is(gotBias![h * buckets.length + o], table[b * heads + h]) ? 0 : 1));
  }

  const part = (col0: number): Float32Array => readBlock(qkv, { stride, row0: 0, col0, rows, cols: hidden });
  const options = c.t5Bias ? { scale: 1, offsetBias: gotBias!, causal: c.causal } : { causal: c.causal };
  const expected = ref.attention(part(0), part(hidden), part(2 * hidden), rows, heads, headDim, options);
  const result = compareBlock(gotOut!, out, at, expected);
  return { name: attentionCaseName(c), ...result, untouchedChanged: result.untouchedChanged + countChanged(gotQkv!, qkv) + biasMismatches };
}

export async function runAllAttentionCases(ctx: GpuContext): Promise<AttentionCaseResult[]> {
  const results: AttentionCaseResult[] = [];
  for (const [i, c] of ATTENTION_CASES.entries()) results.push(await runAttentionCase(ctx, c, 700 + 10 * i));
  return results;
}
