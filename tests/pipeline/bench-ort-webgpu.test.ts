/**
 * The bench command's peers in Node: onnxruntime-web's WebGPU EP on Dawn, made usable by the platform module
 * (navigator.gpu, shared-memory writeBuffer). The same awkward-shape models as bench-ort.test.ts, whose
 * products are checked there on ORT's wasm backend, give the same products here on the GPU.
 */
import * as ortGpu from 'onnxruntime-web/webgpu';
import { describe, expect, it } from 'vitest';
import { platform } from '#platform';
import { matMulModel, matMulNBitsModel, ORT_BLOCK_SIZE, quantizeMatMulNBits } from '../../src/pipeline/bench-ort.ts';
import { randomFloats } from '../../src/pipeline/bench.ts';
import { maxRelError } from '../helpers/random.ts';

/** Awkward on purpose: M and N odd (not multiples of any tile), K three blocks. */
const SHAPE = { m: 7, k: 3 * ORT_BLOCK_SIZE, n: 9 };
/** The first session compiles ORT's shaders on SwiftShader. */
const SLOW = 120_000;

function matmulT(x: Float32Array, w: Float32Array): Float32Array {
  const { m, k, n } = SHAPE;
  const y = new Float32Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let t = 0; t < k; t++) y[i * n + j]! += x[i * k + t]! * w[j * k + t]!;
  return y;
}

async function runOnGpu(model: Uint8Array, x: Float32Array): Promise<Float32Array> {
  const session = await ortGpu.InferenceSession.create(model, { executionProviders: ['webgpu'] });
  try {
    const out = await session.run({ x: new ortGpu.Tensor('float32', x, [SHAPE.m, SHAPE.k]) });
    return out.y!.data as Float32Array;
  } finally {
    await session.release();
  }
}

describe('benchmark peers on onnxruntime-web WebGPU over Dawn', () => {
  it('MatMul f32 and MatMulNBits (accuracy 0) compute x·wᵀ and x·dequant(w)ᵀ on the GPU', async () => {
    expect(platform.getGpu()).toBeDefined();
    ortGpu.env.wasm.numThreads = 1;
    ortGpu.env.logLevel = 'error';
    const x = randomFloats(SHAPE.m * SHAPE.k, 3);
    const w = randomFloats(SHAPE.n * SHAPE.k, 4);
    expect(maxRelError(await runOnGpu(matMulModel(SHAPE, w).model, x), matmulT(x, w))).toBeLessThan(1e-5);
    const { b, scales } = quantizeMatMulNBits(w, SHAPE.n, SHAPE.k);
    const dequantized = new Float32Array(SHAPE.n * SHAPE.k).map((_, i) => (((b[i >> 1]! >> ((i & 1) * 4)) & 0xf) - 8) * scales[Math.floor(i / ORT_BLOCK_SIZE)]!);
    expect(maxRelError(await runOnGpu(matMulNBitsModel(SHAPE, w, 0).model, x), matmulT(x, dequantized))).toBeLessThan(1e-5);
  }, SLOW);
});
