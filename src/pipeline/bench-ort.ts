/**
 * Benchmark peers from onnxruntime-web's WebGPU execution provider (the native one of `onnxruntime-web/webgpu`):
 * the f32 `MatMul`, and the contrib `MatMulNBits` with 4-bit block-quantized weights at accuracy level 0 (f32 math
 * on dequantized weights) and 4 (activations quantized to int8). That EP creates its own device, from the same
 * adapter request as ours (the default high-performance adapter; its name is reported with the rows), so the
 * input is uploaded once to a buffer on ORT's device. Input and output are GPU buffers bound with
 * `Tensor.fromGpuBuffer`: no upload or readback in a timed call.
 * The ORT module is passed in (a dev dependency; the page and the CLI each load their build of it).
 */
import type * as Ort from 'onnxruntime-web';
import { FluxError } from '../errors.ts';
import { STORAGE_USAGE } from '../gpu/buffers.ts';
import type { LinearPeer, LinearShape, PeerLinear } from './bench.ts';
import { onnxModel, OnnxType, type OnnxInitializer, type OnnxNode } from './onnx-model.ts';

export type OrtModule = typeof Ort;

/** MatMulNBits weight block: 32 values per scale, the default of onnxruntime's 4-bit quantizer. */
export const ORT_BLOCK_SIZE = 32;
const BITS = 4;
/** Largest magnitude of a signed 4-bit code; stored unsigned with the default zero point 8 (no zero_points input). */
const INT4_MAX = 7;
const INT4_ZERO_POINT = 8;
/** Accuracy levels measured: 0 = unset (f32 math), 4 = int8 activations. */
export const ORT_ACCURACY_LEVELS = [0, 4] as const;

/** B [N, K/block, block/2] uint8 (low nibble first) and scales [N·K/block] of w [N, K]: symmetric per block. */
export function quantizeMatMulNBits(w: Float32Array, n: number, k: number): { b: Uint8Array; scales: Float32Array } {
  if (k % ORT_BLOCK_SIZE !== 0) throw new FluxError('bad-shape', `MatMulNBits: K = ${k} is not a multiple of the block size ${ORT_BLOCK_SIZE}`);
  const blocks = k / ORT_BLOCK_SIZE;
  const b = new Uint8Array((n * k) / 2);
  const scales = new Float32Array(n * blocks);
  for (let row = 0; row < n; row++) {
    for (let blk = 0; blk < blocks; blk++) {
      const base = row * k + blk * ORT_BLOCK_SIZE;
      let max = 0;
      for (let i = 0; i < ORT_BLOCK_SIZE; i++) max = Math.max(max, Math.abs(w[base + i]!));
      const scale = max / INT4_MAX || 1;
      scales[row * blocks + blk] = scale;
      for (let i = 0; i < ORT_BLOCK_SIZE; i++) {
        const q = Math.min(2 * INT4_MAX + 1, Math.max(0, Math.round(w[base + i]! / scale) + INT4_ZERO_POINT));
        b[(base + i) >> 1] |= (i & 1) === 0 ? q : q << 4;
      }
    }
  }
  return { b, scales };
}

/** wᵀ [K, N] for MatMul's B. */
function transpose(w: Float32Array, n: number, k: number): Float32Array {
  const out = new Float32Array(n * k);
  for (let row = 0; row < n; row++) for (let col = 0; col < k; col++) out[col * n + row] = w[row * k + col]!;
  return out;
}

/** An ONNX model of one peer at one shape, and the bytes of its weights. */
export interface PeerModel {
  readonly model: Uint8Array;
  readonly weightBytes: number;
}

function oneNodeModel(shape: LinearShape, node: OnnxNode, initializers: OnnxInitializer[]): PeerModel {
  const { m, k, n } = shape;
  return {
    model: onnxModel({ node, initializers, input: { name: 'x', dims: [m, k] }, output: { name: 'y', dims: [m, n] } }),
    weightBytes: initializers.reduce((sum, t) => sum + t.data.byteLength, 0),
  };
}

/** y = x·B with B = wᵀ [K, N] f32. */
export function matMulModel(shape: LinearShape, w: Float32Array): PeerModel {
  return oneNodeModel(shape, { opType: 'MatMul', domain: '', inputs: ['x', 'w'], output: 'y' }, [
    { name: 'w', type: OnnxType.FLOAT, dims: [shape.k, shape.n], data: transpose(w, shape.n, shape.k) },
  ]);
}

/** y = x·dequant(B)ᵀ with w quantized by quantizeMatMulNBits. */
export function matMulNBitsModel(shape: LinearShape, w: Float32Array, accuracyLevel: number): PeerModel {
  const { n, k } = shape;
  const { b, scales } = quantizeMatMulNBits(w, n, k);
  const node: OnnxNode = {
    opType: 'MatMulNBits',
    domain: 'com.microsoft',
    inputs: ['x', 'b', 'scales'],
    output: 'y',
    intAttributes: { K: k, N: n, bits: BITS, block_size: ORT_BLOCK_SIZE, accuracy_level: accuracyLevel },
  };
  return oneNodeModel(shape, node, [
    { name: 'b', type: OnnxType.UINT8, dims: [n, k / ORT_BLOCK_SIZE, (ORT_BLOCK_SIZE * BITS) / 8], data: b },
    { name: 'scales', type: OnnxType.FLOAT, dims: [n * (k / ORT_BLOCK_SIZE)], data: scales },
  ]);
}

function ortPeer(ort: OrtModule, name: string, build: (shape: LinearShape, w: Float32Array) => PeerModel): LinearPeer {
  return {
    name,
    async prepare(shape: LinearShape, x: Float32Array, w: Float32Array): Promise<PeerLinear> {
      const { m, k, n } = shape;
      const { model, weightBytes } = build(shape, w);
      const session = await ort.InferenceSession.create(model, { executionProviders: ['webgpu'], graphOptimizationLevel: 'all' });
      // Exists once the first WebGPU session does.
      const device = (await ort.env.webgpu.device) as GPUDevice;
      const xBuffer = device.createBuffer({ size: x.byteLength, usage: STORAGE_USAGE, label: `${name} x` });
      device.queue.writeBuffer(xBuffer, 0, x as Float32Array<ArrayBuffer>);
      const yBuffer = device.createBuffer({ size: m * n * 4, usage: STORAGE_USAGE, label: `${name} y` });
      const feeds = { x: ort.Tensor.fromGpuBuffer(xBuffer, { dataType: 'float32', dims: [m, k] }) };
      const fetches = { y: ort.Tensor.fromGpuBuffer(yBuffer, { dataType: 'float32', dims: [m, n] }) };
      const info = device.adapterInfo;
      return {
        weightBytes,
        adapter: info ? [info.vendor, info.architecture, info.description || info.device].filter(Boolean).join(' / ') : 'not reported',
        async run() {
          await session.run(feeds, fetches);
          await device.queue.onSubmittedWorkDone();
        },
        async release() {
          await session.release();
          xBuffer.destroy();
          yBuffer.destroy();
        },
      };
    },
  };
}

/** The three peers, with ORT's wasm side set up (call before ORT's first session). */
export function ortPeers(ort: OrtModule): LinearPeer[] {
  // Threads would need a cross-origin isolated page; the WebGPU EP does its work on the GPU either way.
  ort.env.wasm.numThreads = 1;
  ort.env.logLevel = 'error';
  return [
    ortPeer(ort, 'ORT MatMul f32', matMulModel),
    ...ORT_ACCURACY_LEVELS.map((level) => ortPeer(ort, `ORT MatMulNBits 4-bit acc ${level}`, (shape, w) => matMulNBitsModel(shape, w, level))),
  ];
}
