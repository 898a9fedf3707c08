/**
 * The benchmark peers' ONNX models (written as protobuf bytes by onnx-model.ts) compute what they claim: run on
 * onnxruntime-web's CPU (wasm) backend in Node, MatMul gives x·wᵀ and MatMulNBits x·dequant(w)ᵀ with the 4-bit
 * layout quantizeMatMulNBits writes. The WebGPU runs of the same models are the bench page's (e2e/bench.test.ts).
 */
import * as ort from 'onnxruntime-web';
import { describe, expect, it } from 'vitest';
import { matMulModel, matMulNBitsModel, ORT_ACCURACY_LEVELS, ORT_BLOCK_SIZE, quantizeMatMulNBits } from '../../src/pipeline/bench-ort.ts';
import { randomFloats } from '../../src/pipeline/bench.ts';
import { maxRelError } from '../helpers/random.ts';

/** Awkward on purpose: M and N odd, K two blocks. */
const SHAPE = { m: 3, k: 2 * ORT_BLOCK_SIZE, n: 5 };

function matmulT(x: Float32Array, w: Float32Array, { m, k, n }: typeof SHAPE): Float32Array {
  const y = new Float32Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let t = 0; t < k; t++) y[i * n + j]! += x[i * k + t]! * w[j * k + t]!;
  return y;
}

/** The documented MatMulNBits layout: per row and block of 32, low nibble first, value (q − 8)·scale. */
function dequantize(b: Uint8Array, scales: Float32Array, { n, k }: typeof SHAPE): Float32Array {
  const w = new Float32Array(n * k);
  for (let i = 0; i < n * k; i++) {
    const q = (b[i >> 1]! >> ((i & 1) * 4)) & 0xf;
    w[i] = (q - 8) * scales[Math.floor(i / ORT_BLOCK_SIZE)]!;
  }
  return w;
}

async function run(model: Uint8Array, x: Float32Array): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(model, { executionProviders: ['wasm'] });
  try {
    const out = await session.run({ x: new ort.Tensor('float32', x, [SHAPE.m, SHAPE.k]) });
    expect(out.y!.dims).toEqual([SHAPE.m, SHAPE.n]);
    return out.y!.data as Float32Array;
  } finally {
    await session.release();
  }
}

describe('benchmark peer models on onnxruntime (wasm)', () => {
  ort.env.wasm.numThreads = 1;
  const x = randomFloats(SHAPE.m * SHAPE.k, 1);
  const w = randomFloats(SHAPE.n * SHAPE.k, 2);

  it('MatMul f32 is x·wᵀ', async () => {
    expect(maxRelError(await run(matMulModel(SHAPE, w).model, x), matmulT(x, w, SHAPE))).toBeLessThan(1e-5);
  });

  it('MatMulNBits is x·dequant(w)ᵀ at each accuracy level, and the 4-bit weights stay close to w', async () => {
    const { b, scales } = quantizeMatMulNBits(w, SHAPE.n, SHAPE.k);
    const dequantized = dequantize(b, scales, SHAPE);
    // Symmetric 4-bit per block of 32: at most half a step (max/14) from each weight.
    expect(maxRelError(dequantized, w)).toBeLessThan(1 / 14 + 1e-6);
    const expected = matmulT(x, dequantized, SHAPE);
    // Level 4 quantizes x to int8 on the way (per block): about 1 % relative.
    const tolerance = { 0: 1e-5, 4: 0.03 } as const;
    for (const level of ORT_ACCURACY_LEVELS) {
      expect(maxRelError(await run(matMulNBitsModel(SHAPE, w, level).model, x), expected), `accuracy ${level}`).toBeLessThan(tolerance[level]);
    }
  });

  it('rejects a K that is not a whole number of blocks', () => {
    expect(() => quantizeMatMulNBits(new Float32Array(5 * 40), 5, 40)).toThrow(/multiple of the block size/);
  });
});
