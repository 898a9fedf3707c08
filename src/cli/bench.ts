/**
 * `bench`: throughput of the f32 GEMM and of the W8A8 and W4A4 ConvRot layers (rotate + quantize the input,
 * integer GEMM, dequantize) on FLUX linear shapes, timed on the GPU (timestamp queries where available).
 * The issue's targets: the W4A4 layer at 3x the f32 GEMM or more, rotation + quantization at most 15 % of it.
 */
import { writeFile } from 'node:fs/promises';
import { CommandBatch } from '../gpu/batch.ts';
import { createBuffer, uploadBuffer } from '../gpu/buffers.ts';
import type { GpuContext } from '../gpu/device.ts';
import type { GpuTensor } from '../gpu/tensor.ts';
import { prefersDot4 } from '../kernels/convrot.ts';
import { floatGemm } from '../kernels/gemm.ts';
import { ConvLinear } from '../nn/conv-linear.ts';
import { UsageError, type Command } from './args.ts';
import { progressLine, withGpu } from './gpu.ts';

/** Token counts: the image tokens of a 256² and a 512² image (16 x 16 pixels per token). */
const TOKEN_COUNTS = [256, 1024] as const;
/** [K, N] of FLUX linears: attention projections, the MLP up and down projections. */
const LINEAR_SHAPES = [
  [3072, 3072],
  [3072, 12288],
  [12288, 3072],
] as const;
const QUICK_SHAPE = { m: 256, k: 3072, n: 3072 } as const;
const DEFAULT_REPEATS = 3;
/** The issue's targets on SwiftShader. */
const TARGET_W4A4_SPEEDUP = 3;
const TARGET_QUANT_SHARE = 0.15;
/** Seed of the benchmark data (values do not change the timing; fixed so runs are comparable). */
const DATA_SEED = 0x5eed;

export interface KernelTiming {
  /** Median GPU time of one call, milliseconds. */
  readonly ms: number;
  /** 2·M·K·N / time. */
  readonly gops: number;
}

export interface QuantizedTiming extends KernelTiming {
  /** Throughput relative to the f32 GEMM. */
  readonly speedup: number;
  /** Median time of the activation rotation + quantization alone, and its share of the layer time. */
  readonly quantizeMs: number;
  readonly quantizeShare: number;
}

export interface BenchRow {
  readonly m: number;
  readonly k: number;
  readonly n: number;
  readonly f32: KernelTiming;
  readonly w8a8: QuantizedTiming;
  readonly w4a4: QuantizedTiming;
}

export interface BenchReport {
  readonly adapter: GpuContext['adapter'];
  readonly caps: GpuContext['caps'];
  /** Whether the integer GEMMs used the dot4 built-ins (else plain integer math). */
  readonly dot4: boolean;
  readonly timing: 'timestamp' | 'wall';
  readonly repeats: number;
  readonly rows: readonly BenchRow[];
  readonly targets: { readonly w4a4Speedup: number; readonly quantizeShare: number };
}

/** Uniform values in [-1, 1) from a 32-bit LCG: fast enough for hundreds of MB of weights. */
function randomFloats(count: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  let state = seed >>> 0;
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = state / 2 ** 31 - 1;
  }
  return out;
}

function f32Tensor(buffer: GPUBuffer, shape: number[]): GpuTensor {
  return { buffer, offset: 0, shape, dtype: 'f32' };
}

/** Something to time: records its dispatches into a fresh batch. */
interface Timed {
  readonly label: string;
  readonly record: (batch: CommandBatch) => Promise<void>;
}

/**
 * Median GPU time of each item over `repeats` runs, after one untimed warm-up run each (pipeline compilation,
 * first touch of memory). The items take turns, so load from other processes on the machine spreads over all of
 * them instead of skewing one.
 */
async function medianTimes(ctx: GpuContext, items: readonly Timed[], repeats: number): Promise<{ ms: number[]; source: 'timestamp' | 'wall' }> {
  const times = items.map((): number[] => []);
  let source: 'timestamp' | 'wall' = 'wall';
  for (let run = 0; run <= repeats; run++) {
    for (const [i, item] of items.entries()) {
      progressLine(`${item.label}: ${run === 0 ? 'warm-up' : `run ${run}/${repeats}`}`);
      const batch = new CommandBatch(ctx, item.label);
      await item.record(batch);
      const t = await batch.submitTimed();
      source = t.source;
      if (run > 0) times[i]!.push(t.ms);
    }
  }
  const median = (t: number[]) => t.sort((a, b) => a - b)[Math.floor(t.length / 2)]!;
  return { ms: times.map(median), source };
}

const gops = (m: number, k: number, n: number, ms: number) => (2 * m * k * n) / (ms * 1e6);

async function benchShape(ctx: GpuContext, m: number, k: number, n: number, repeats: number): Promise<{ row: BenchRow; source: 'timestamp' | 'wall' }> {
  const name = `M=${m} ${k}x${n}`;
  const owned: GPUBuffer[] = [];
  const layers: ConvLinear[] = [];
  try {
    const xb = await uploadBuffer(ctx, randomFloats(m * k, DATA_SEED), 'bench x');
    owned.push(xb);
    const wb = await uploadBuffer(ctx, randomFloats(n * k, DATA_SEED + 1), 'bench w');
    owned.push(wb);
    const bb = await uploadBuffer(ctx, randomFloats(n, DATA_SEED + 2), 'bench bias');
    owned.push(bb);
    const yb = await createBuffer(ctx, m * n * 4, 'bench y');
    owned.push(yb);
    const x = { tensor: f32Tensor(xb, [m, k]) };
    const y = { tensor: f32Tensor(yb, [m, n]) };
    const w = f32Tensor(wb, [n, k]);
    const bias = f32Tensor(bb, [n]);
    const items: Timed[] = [{ label: `${name} f32`, record: (batch) => floatGemm(batch, { x, w, bias, y }) }];
    for (const precision of ['int8', 'int4'] as const) {
      const layer = await ConvLinear.fromFloat(ctx, w, bias, { precision, label: `bench ${precision}` });
      layers.push(layer);
      const label = `${name} ${precision === 'int4' ? 'W4A4' : 'W8A8'}`;
      items.push({ label, record: (batch) => layer.forward(batch, x, y) });
      items.push({ label: `${label} quantize`, record: async (batch) => (await layer.quantizeInput(batch, x)).release() });
    }
    const { ms, source } = await medianTimes(ctx, items, repeats);
    const [f32Ms, w8Ms, w8QuantizeMs, w4Ms, w4QuantizeMs] = ms as [number, number, number, number, number];
    const quantized = (layerMs: number, quantizeMs: number): QuantizedTiming => ({
      ms: layerMs,
      gops: gops(m, k, n, layerMs),
      speedup: f32Ms / layerMs,
      quantizeMs,
      quantizeShare: quantizeMs / layerMs,
    });
    const row = { m, k, n, f32: { ms: f32Ms, gops: gops(m, k, n, f32Ms) }, w8a8: quantized(w8Ms, w8QuantizeMs), w4a4: quantized(w4Ms, w4QuantizeMs) };
    return { row, source };
  } finally {
    for (const layer of layers) layer.destroy();
    for (const buffer of owned) buffer.destroy();
  }
}

function formatTable(rows: readonly BenchRow[]): string {
  const header = ['M', 'K x N', 'f32 ms', 'GOPS', 'W8A8 ms', 'GOPS', 'x f32', 'W4A4 ms', 'GOPS', 'x f32', 'quant %'];
  const body = rows.map((r) => [
    String(r.m),
    `${r.k}x${r.n}`,
    r.f32.ms.toFixed(1),
    r.f32.gops.toFixed(2),
    r.w8a8.ms.toFixed(1),
    r.w8a8.gops.toFixed(2),
    r.w8a8.speedup.toFixed(2),
    r.w4a4.ms.toFixed(1),
    r.w4a4.gops.toFixed(2),
    r.w4a4.speedup.toFixed(2),
    (100 * r.w4a4.quantizeShare).toFixed(1),
  ]);
  const table = [header, ...body];
  const widths = header.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
  return table.map((row) => row.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')).join('\n');
}

export async function runBench(ctx: GpuContext, opts: { quick: boolean; repeats: number }): Promise<BenchReport> {
  const shapes = opts.quick ? [QUICK_SHAPE] : TOKEN_COUNTS.flatMap((m) => LINEAR_SHAPES.map(([k, n]) => ({ m, k, n })));
  const rows: BenchRow[] = [];
  let timing: 'timestamp' | 'wall' = 'wall';
  for (const { m, k, n } of shapes) {
    const { row, source } = await benchShape(ctx, m, k, n, opts.repeats);
    rows.push(row);
    timing = source;
  }
  progressLine('', true);
  return {
    adapter: ctx.adapter,
    caps: ctx.caps,
    dot4: prefersDot4(ctx),
    timing,
    repeats: opts.repeats,
    rows,
    targets: { w4a4Speedup: TARGET_W4A4_SPEEDUP, quantizeShare: TARGET_QUANT_SHARE },
  };
}

export const benchCommand: Command = {
  name: 'bench',
  summary: 'GPU throughput of the f32 GEMM and the W8A8 / W4A4 ConvRot layers on FLUX linear shapes',
  usage: 'bench [--quick] [--repeats N] [--json out.json]',
  details: [
    `Shapes: M = ${TOKEN_COUNTS.join(', ')} tokens x (K x N) = ${LINEAR_SHAPES.map(([k, n]) => `${k}x${n}`).join(', ')};`,
    `--quick runs only M = ${QUICK_SHAPE.m}, ${QUICK_SHAPE.k}x${QUICK_SHAPE.n}. Each kernel runs once to warm up, then the median`,
    `of --repeats runs (default ${DEFAULT_REPEATS}, the kernels taking turns) is reported. GOPS = 2·M·K·N / time; "x f32" is the speed-up over the f32 GEMM;`,
    `"quant %" is the share of the activation rotation + quantization in the W4A4 layer time.`,
    `Targets: W4A4 >= ${TARGET_W4A4_SPEEDUP}x f32, quant <= ${100 * TARGET_QUANT_SHARE} %.`,
  ].join('\n'),
  options: {
    quick: { type: 'boolean' },
    repeats: { type: 'string' },
    json: { type: 'string' },
  },
  positionals: { min: 0, max: 0 },
  async run({ values }) {
    const repeats = values.repeats === undefined ? DEFAULT_REPEATS : Number(values.repeats);
    if (!Number.isInteger(repeats) || repeats < 1) throw new UsageError(`--repeats must be a positive integer (got "${String(values.repeats)}")`);
    const report = await withGpu((ctx) => runBench(ctx, { quick: values.quick === true, repeats }));
    const a = report.adapter;
    process.stdout.write(
      [
        `device: ${a.description || a.device || a.vendor} (${a.architecture})${a.isFallbackAdapter ? ', CPU fallback' : ''}; ` +
          `integer GEMM: ${report.dot4 ? 'dot4 built-ins' : 'plain integer math'}; timing: ${report.timing}, median of ${repeats}`,
        formatTable(report.rows),
        `targets: W4A4 >= ${TARGET_W4A4_SPEEDUP}x f32, rotation + quantization <= ${100 * TARGET_QUANT_SHARE} % of the W4A4 layer`,
      ].join('\n') + '\n',
    );
    if (typeof values.json === 'string') await writeFile(values.json, JSON.stringify(report, null, 2) + '\n');
  },
};
