/**
 * The benchmark the CLI (`flux-w4a4 bench`) and the page (bench.html) both run: our kernels at FLUX shapes
 * (f32 GEMM, W8A8 and W4A4 ConvRot layers, rotation + quantization alone, attention), peers on the same device
 * and shapes (onnxruntime-web, see bench-ort.ts), block and step timings of a loaded model, and memory. Both
 * front ends only print what `runBench` returns (the rows of `benchTable`), so they show the same rows.
 *
 * What a timing includes (docs/benchmark.md): every input and weight is already on the GPU and every output
 * stays there. "wall ms" runs from the call to the GPU being idle again (recording, submit, execution; for our
 * batches also the 16-byte timestamp readback); "GPU ms" is the timestamp-query span of our batches alone.
 */
import { FluxError } from '../errors.ts';
import { CommandBatch } from '../gpu/batch.ts';
import { createBuffer, uploadBuffer } from '../gpu/buffers.ts';
import type { AdapterSummary, GpuCaps, GpuContext } from '../gpu/device.ts';
import type { GpuTensor } from '../gpu/tensor.ts';
import { attention } from '../kernels/attention.ts';
import { prefersDot4 } from '../kernels/convrot.ts';
import { floatGemm } from '../kernels/gemm.ts';
import { ConvLinear } from '../nn/conv-linear.ts';
import type { FluxPipeline } from './flux-pipeline.ts';
import { imagePositionIds, textPositionIds, throwIfAborted } from './sampler.ts';
import { TransformerRunner } from './transformer-runner.ts';

/** Image tokens of a 256², 512² and 1024² image (16 × 16 pixels per token). */
export const TOKEN_COUNTS = [256, 1024, 4096] as const;
/** [K, N] of FLUX linears: attention projections, the MLP up and down projections. */
export const LINEAR_SHAPES = [
  [3072, 3072],
  [3072, 12288],
  [12288, 3072],
] as const;
/** FLUX.1 attention: 24 heads of 128. */
const FLUX_HEADS = 24;
const FLUX_HEAD_DIM = 128;
/** Seed of the benchmark data (values do not change the timing; fixed so runs are comparable). */
const DATA_SEED = 0x5eed;
export const DEFAULT_REPEATS = 3;
/** Model prompt for the step timings: its content does not change the timing. */
const MODEL_PROMPT = 'a red circle on a blue background';
/** The ConvRot targets of the kernel issue, printed next to the results. */
export const TARGET_W4A4_SPEEDUP = 3;
export const TARGET_QUANT_SHARE = 0.15;

/** The FLUX grids, or one shape `MxKxN` (attention at M tokens): a user's own, or a small one for tests. */
export type BenchGrid = 'quick' | 'full' | `${number}x${number}x${number}`;

export interface LinearShape {
  readonly m: number;
  readonly k: number;
  readonly n: number;
}

/** The shapes of a grid: quick is the smallest FLUX linear, so a CPU-emulated GPU finishes in about a minute. */
export function gridShapes(grid: BenchGrid): { linears: LinearShape[]; attentionRows: number[] } {
  if (grid === 'quick') return { linears: [{ m: TOKEN_COUNTS[0], k: LINEAR_SHAPES[0][0], n: LINEAR_SHAPES[0][1] }], attentionRows: [TOKEN_COUNTS[0]] };
  if (grid === 'full') return { linears: TOKEN_COUNTS.flatMap((m) => LINEAR_SHAPES.map(([k, n]) => ({ m, k, n }))), attentionRows: [...TOKEN_COUNTS] };
  const dims = grid.split('x').map(Number);
  const [m, k, n] = dims;
  if (dims.length !== 3 || !dims.every((d) => Number.isInteger(d) && d > 0)) throw new FluxError('bad-argument', `bench shape must be MxKxN with positive integers, got "${grid}"`);
  return { linears: [{ m: m!, k: k!, n: n! }], attentionRows: [m!] };
}

/** A linear layer y = x·Wᵀ of another library, prepared on our device for one shape. */
export interface PeerLinear {
  /** One call, resolved once the GPU is idle again; the output stays on the GPU. */
  run(): Promise<void>;
  /** Bytes of the weights as the peer holds them (its model's initializers). */
  readonly weightBytes: number;
  /** The adapter the peer runs on, as it reports it. */
  readonly adapter: string;
  release(): Promise<void>;
}

export interface LinearPeer {
  /** Row label, e.g. "ORT MatMulNBits 4-bit acc 4". */
  readonly name: string;
  /** x: [m, k], w: [n, k], the values our layers get; the peer puts them on its GPU device before timing. */
  prepare(shape: LinearShape, x: Float32Array, w: Float32Array): Promise<PeerLinear>;
}

export type BenchSection = 'linear' | 'quantize' | 'attention' | 'peer' | 'block' | 'model' | 'memory';

/** One row of the results: a timing (ms, with GOPS where the work is known) or a size (bytes). */
export interface BenchRow {
  readonly section: BenchSection;
  readonly name: string;
  readonly shape: string;
  /** Median wall time of one call, milliseconds (what is inside: see the file comment). */
  readonly wallMs?: number;
  /** Median GPU time from timestamp queries, milliseconds (our batches, when the device has timestamps). */
  readonly gpuMs?: number;
  /** Operations (2·M·K·N for a linear) per wall second, 1e9. */
  readonly gops?: number;
  readonly bytes?: number;
}

/** Per linear shape: the ratios the issue asks for, as speed-ups (time of the other / time of W4A4, wall). */
export interface BenchComparison {
  readonly shape: string;
  readonly w4a4VsF32: number;
  readonly w4a4VsW8a8: number;
  /** Against ORT's 4-bit MatMulNBits at each accuracy level, and its f32 MatMul (absent without peers). */
  readonly w4a4VsPeers: Readonly<Record<string, number>>;
  /** Rotation + quantization share of the W4A4 layer (GPU time where measured). */
  readonly quantizeShare: number;
}

export interface BenchReport {
  readonly adapter: AdapterSummary;
  readonly caps: GpuCaps;
  readonly platform: string;
  /** Whether the integer GEMMs used the dot4 built-ins (else plain integer math). */
  readonly dot4: boolean;
  readonly grid: BenchGrid;
  readonly repeats: number;
  readonly timing: 'timestamp' | 'wall';
  readonly rows: readonly BenchRow[];
  readonly comparisons: readonly BenchComparison[];
  /** Peers that failed to start (their rows are missing), with the reason. */
  readonly peerErrors: readonly string[];
  /** The adapter each peer ran on, as it reports it (to check it is ours). */
  readonly peerAdapters: Readonly<Record<string, string>>;
  readonly model?: string;
  readonly date: string;
}

export interface BenchProgress {
  readonly label: string;
  readonly done: number;
  readonly total: number;
}

export interface BenchOptions {
  readonly grid: BenchGrid;
  readonly repeats?: number;
  readonly peers?: readonly LinearPeer[];
  /** A loaded pipeline whose blocks, steps and memory are measured, and its name in the report. */
  readonly model?: FluxPipeline;
  readonly modelName?: string;
  /** Platform name for the report ("Node (Dawn)", the browser's user agent). */
  readonly platform: string;
  readonly onProgress?: (p: BenchProgress) => void;
  readonly signal?: AbortSignal;
}

/** Uniform values in [-1, 1) from a 32-bit LCG: fast enough for hundreds of MB of weights. */
export function randomFloats(count: number, seed: number): Float32Array {
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

/** Something to time: one call, resolved when the GPU is idle; returns its GPU time when it has one. */
interface Timed {
  readonly label: string;
  readonly run: () => Promise<number | undefined>;
}

interface Measured {
  readonly wallMs: number;
  readonly gpuMs?: number;
}

/** A batch recorded by `record`, submitted with timestamps: the Timed of our kernels. */
function timedBatch(ctx: GpuContext, label: string, record: (batch: CommandBatch) => Promise<void>): Timed {
  return {
    label,
    run: async () => {
      const batch = new CommandBatch(ctx, label);
      await record(batch);
      const t = await batch.submitTimed();
      return t.source === 'timestamp' ? t.ms : undefined;
    },
  };
}

const median = (t: number[]) => [...t].sort((a, b) => a - b)[Math.floor(t.length / 2)]!;

class Runner {
  private done = 0;
  constructor(
    private readonly options: BenchOptions,
    readonly repeats: number,
    readonly total: number,
  ) {}

  advance(items: number): void {
    this.done += items;
  }

  get signal(): AbortSignal | undefined {
    return this.options.signal;
  }

  progress(label: string): void {
    throwIfAborted(this.options.signal);
    this.options.onProgress?.({ label, done: this.done, total: this.total });
  }

  /**
   * Median times of each item over `repeats` runs, after one untimed warm-up run each (pipeline compilation,
   * first touch of memory). The items take turns, so load from other processes spreads over all of them.
   */
  async medians(items: readonly Timed[]): Promise<Measured[]> {
    const wall = items.map((): number[] => []);
    const gpu = items.map((): number[] => []);
    for (let run = 0; run <= this.repeats; run++) {
      for (const [i, item] of items.entries()) {
        this.progress(`${item.label}: ${run === 0 ? 'warm-up' : `run ${run}/${this.repeats}`}`);
        const start = performance.now();
        const gpuMs = await item.run();
        const wallMs = performance.now() - start;
        if (run === 0) continue;
        wall[i]!.push(wallMs);
        if (gpuMs !== undefined) gpu[i]!.push(gpuMs);
      }
    }
    this.advance(items.length);
    return items.map((_, i) => ({ wallMs: median(wall[i]!), gpuMs: gpu[i]!.length > 0 ? median(gpu[i]!) : undefined }));
  }
}

const shapeName = ({ m, k, n }: LinearShape) => `M=${m} ${k}x${n}`;
const gops = (ops: number, ms: number) => ops / (ms * 1e6);

async function benchLinear(
  ctx: GpuContext,
  runner: Runner,
  shape: LinearShape,
  peers: readonly LinearPeer[],
  peerErrors: string[],
  peerAdapters: Record<string, string>,
): Promise<{ rows: BenchRow[]; comparison: BenchComparison }> {
  const { m, k, n } = shape;
  const name = shapeName(shape);
  const owned: GPUBuffer[] = [];
  const layers: ConvLinear[] = [];
  const prepared: { peer: LinearPeer; linear: PeerLinear }[] = [];
  try {
    runner.progress(`${name}: preparing weights`);
    const weights = randomFloats(n * k, DATA_SEED + 1);
    const input = randomFloats(m * k, DATA_SEED);
    const xb = await uploadBuffer(ctx, input, 'bench x');
    owned.push(xb);
    const wb = await uploadBuffer(ctx, weights, 'bench w');
    owned.push(wb);
    const bb = await uploadBuffer(ctx, randomFloats(n, DATA_SEED + 2), 'bench bias');
    owned.push(bb);
    const yb = await createBuffer(ctx, m * n * 4, 'bench y');
    owned.push(yb);
    const x = { tensor: f32Tensor(xb, [m, k]) };
    const y = { tensor: f32Tensor(yb, [m, n]) };
    const w = f32Tensor(wb, [n, k]);
    const bias = f32Tensor(bb, [n]);
    const items: Timed[] = [timedBatch(ctx, `${name} f32 GEMM`, (batch) => floatGemm(batch, { x, w, bias, y }))];
    for (const precision of ['int8', 'int4'] as const) {
      const layer = await ConvLinear.fromFloat(ctx, w, bias, { precision, label: `bench ${precision}` });
      layers.push(layer);
      const label = `${name} ${precision === 'int4' ? 'W4A4' : 'W8A8'}`;
      items.push(timedBatch(ctx, `${label} layer`, (batch) => layer.forward(batch, x, y)));
      items.push(timedBatch(ctx, `${label} rotate + quantize`, async (batch) => (await layer.quantizeInput(batch, x)).release()));
    }
    for (const peer of peers) {
      runner.progress(`${name}: preparing ${peer.name}`);
      try {
        const linear = await peer.prepare(shape, input, weights);
        prepared.push({ peer, linear });
        peerAdapters[peer.name] = linear.adapter;
      } catch (e) {
        peerErrors.push(`${peer.name} at ${name}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    for (const { peer, linear } of prepared) items.push({ label: `${name} ${peer.name}`, run: async () => (await linear.run(), undefined) });

    const measured = await runner.medians(items);
    const [f32, w8, w8Quantize, w4, w4Quantize] = measured as [Measured, Measured, Measured, Measured, Measured];
    const peerTimes = measured.slice(5);
    const ops = 2 * m * k * n;
    const row = (section: BenchSection, rowName: string, t: Measured, bytes?: number, work = ops): BenchRow => ({
      section,
      name: rowName,
      shape: name,
      wallMs: t.wallMs,
      gpuMs: t.gpuMs,
      gops: work === 0 ? undefined : gops(work, t.wallMs),
      bytes,
    });
    const rows: BenchRow[] = [
      row('linear', 'f32 GEMM', f32, n * k * 4 + n * 4),
      row('linear', 'W8A8 layer', w8, layers[0]!.weightBytes),
      row('linear', 'W4A4 layer', w4, layers[1]!.weightBytes),
      row('quantize', 'W8A8 rotate + quantize', w8Quantize, undefined, 0),
      row('quantize', 'W4A4 rotate + quantize', w4Quantize, undefined, 0),
      ...prepared.map(({ peer, linear }, i) => row('peer', peer.name, peerTimes[i]!, linear.weightBytes)),
    ];
    const comparison: BenchComparison = {
      shape: name,
      w4a4VsF32: f32.wallMs / w4.wallMs,
      w4a4VsW8a8: w8.wallMs / w4.wallMs,
      w4a4VsPeers: Object.fromEntries(prepared.map(({ peer }, i) => [peer.name, peerTimes[i]!.wallMs / w4.wallMs])),
      quantizeShare: (w4Quantize.gpuMs ?? w4Quantize.wallMs) / (w4.gpuMs ?? w4.wallMs),
    };
    return { rows, comparison };
  } finally {
    for (const { linear } of prepared) await linear.release();
    for (const layer of layers) layer.destroy();
    for (const buffer of owned) buffer.destroy();
  }
}

async function benchAttention(ctx: GpuContext, runner: Runner, rows: number): Promise<BenchRow> {
  const hidden = FLUX_HEADS * FLUX_HEAD_DIM;
  const qkv = await uploadBuffer(ctx, randomFloats(rows * 3 * hidden, DATA_SEED + 3), 'bench qkv');
  try {
    const out = await createBuffer(ctx, rows * hidden * 4, 'bench attention out');
    try {
      const args = { qkv: f32Tensor(qkv, [rows, 3 * hidden]), heads: FLUX_HEADS, headDim: FLUX_HEAD_DIM, out: { tensor: f32Tensor(out, [rows, hidden]) } };
      const shape = `${rows} tokens, ${FLUX_HEADS}x${FLUX_HEAD_DIM}`;
      const [t] = await runner.medians([timedBatch(ctx, `attention ${shape}`, (batch) => attention(batch, args))]);
      // q·kᵀ and p·v: 2·rows²·headDim multiply-adds each per head.
      return { section: 'attention', name: 'attention', shape, wallMs: t!.wallMs, gpuMs: t!.gpuMs, gops: gops(4 * rows * rows * hidden, t!.wallMs) };
    } finally {
      out.destroy();
    }
  } finally {
    qkv.destroy();
  }
}

/**
 * The loaded model: each block's GPU time in one transformer call at the model's default size, the wall time
 * of a denoising step (median over one generation at the defaults: latent upload, the transformer passes,
 * velocity readback, the Euler update), text encoding and VAE decode, and the weights and activations.
 */
async function benchModel(pipe: FluxPipeline, modelName: string, runner: Runner): Promise<BenchRow[]> {
  const { config } = pipe.transformer;
  const { width, height, steps } = pipe.defaults;
  const shape = `${width}x${height}, ${steps} steps`;
  const latentTokens = (width / 16) * (height / 16);
  const textTokens = pipe.textTokens;
  if (textTokens === undefined) throw new FluxError('bad-argument', 'the model benchmark needs the text encoders loaded (not releaseEncoders)');
  const inputs = {
    img: randomFloats(latentTokens * config.inChannels, DATA_SEED + 4),
    imgIds: imagePositionIds(height / 8, width / 8),
    txt: randomFloats(textTokens * config.contextDim, DATA_SEED + 5),
    txtIds: textPositionIds(textTokens),
    timestep: 1,
    y: randomFloats(config.vecDim, DATA_SEED + 6),
    guidance: config.guidanceEmbed ? 3.5 : undefined,
  };
  const transformer = new TransformerRunner(pipe.transformer);
  const rows: BenchRow[] = [];
  try {
    const perBlock = new Map<string, number[]>();
    for (let run = 0; run <= runner.repeats; run++) {
      runner.progress(`model blocks: ${run === 0 ? 'warm-up' : `run ${run}/${runner.repeats}`}`);
      const blockTimes: { name: string; ms: number }[] = [];
      await transformer.forward(inputs, { blockTimes });
      if (run === 0) continue;
      for (const b of blockTimes) perBlock.set(b.name, [...(perBlock.get(b.name) ?? []), b.ms]);
    }
    const blockShape = `${textTokens} + ${latentTokens} tokens`;
    // The runner's block times are GPU timestamps where the device has them, else the wall clock.
    const timed = pipe.ctx.caps.timestampQuery;
    for (const [name, t] of perBlock) rows.push({ section: 'block', name, shape: blockShape, ...(timed ? { gpuMs: median(t) } : { wallMs: median(t) }) });
    rows.push({ section: 'memory', name: 'model activations', shape: blockShape, bytes: transformer.activationBytes });
  } finally {
    transformer.dispose();
  }
  runner.progress(`model: generating ${shape}`);
  const g = await pipe.generate({ prompt: MODEL_PROMPT, seed: DATA_SEED, signal: runner.signal });
  rows.push(
    { section: 'model', name: 'denoising step', shape, wallMs: median([...g.timings.stepMs]) },
    { section: 'model', name: 'text encoding', shape, wallMs: g.timings.encodeMs },
    { section: 'model', name: 'VAE decode', shape, wallMs: g.timings.decodeMs },
    { section: 'model', name: 'generation', shape, wallMs: g.timings.totalMs },
    { section: 'memory', name: 'transformer weights', shape: modelName, bytes: pipe.transformer.weightBytes },
    { section: 'memory', name: 'text encoder weights', shape: modelName, bytes: pipe.textEncoderBytes },
    { section: 'memory', name: 'VAE decoder weights', shape: modelName, bytes: pipe.vaeWeightBytes },
  );
  runner.advance(1);
  return rows;
}

/** Runs the grid; rows come in a fixed order (linears per shape, attention, model). */
export async function runBench(ctx: GpuContext, options: BenchOptions): Promise<BenchReport> {
  const repeats = options.repeats ?? DEFAULT_REPEATS;
  if (!Number.isInteger(repeats) || repeats < 1) throw new FluxError('bad-argument', `repeats must be a positive integer, got ${repeats}`);
  const { linears, attentionRows } = gridShapes(options.grid);
  const peers = options.peers ?? [];
  // Items timed: per shape our five and the peers, attention per size, and the model as one.
  const total = linears.length * (5 + peers.length) + attentionRows.length + (options.model ? 1 : 0);
  const runner = new Runner(options, repeats, total);
  const rows: BenchRow[] = [];
  const comparisons: BenchComparison[] = [];
  const peerErrors: string[] = [];
  const peerAdapters: Record<string, string> = {};
  for (const shape of linears) {
    const r = await benchLinear(ctx, runner, shape, peers, peerErrors, peerAdapters);
    rows.push(...r.rows);
    comparisons.push(r.comparison);
  }
  for (const tokens of attentionRows) rows.push(await benchAttention(ctx, runner, tokens));
  if (options.model) rows.push(...(await benchModel(options.model, options.modelName ?? options.model.name, runner)));
  return {
    adapter: ctx.adapter,
    caps: ctx.caps,
    platform: options.platform,
    dot4: prefersDot4(ctx),
    grid: options.grid,
    repeats,
    timing: ctx.caps.timestampQuery ? 'timestamp' : 'wall',
    rows,
    comparisons,
    peerErrors,
    peerAdapters,
    model: options.model && (options.modelName ?? options.model.name),
    date: new Date().toISOString(),
  };
}

const MIB = 2 ** 20;

/** Three significant digits, whole numbers from 100 up: small timings of a fast GPU stay readable. */
export function formatNumber(v: number): string {
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3);
}

/** The results as text cells, the same for the CLI's table and the page's: header first. */
export function benchTable(report: BenchReport): string[][] {
  const cell = (v: number | undefined) => (v === undefined ? '' : formatNumber(v));
  return [
    ['section', 'kernel', 'shape', 'wall ms', 'GPU ms', 'GOPS', 'MiB'],
    ...report.rows.map((r) => [r.section, r.name, r.shape, cell(r.wallMs), cell(r.gpuMs), cell(r.gops), cell(r.bytes === undefined ? undefined : r.bytes / MIB)]),
  ];
}

/** Speed-ups of W4A4 per shape, as text cells: header first. */
export function comparisonTable(report: BenchReport): string[][] {
  const peers = [...new Set(report.comparisons.flatMap((c) => Object.keys(c.w4a4VsPeers)))];
  return [
    ['shape', 'f32 / W4A4', 'W8A8 / W4A4', ...peers.map((p) => `${p} / W4A4`), 'quant % of W4A4'],
    ...report.comparisons.map((c) => [
      c.shape,
      formatNumber(c.w4a4VsF32),
      formatNumber(c.w4a4VsW8a8),
      ...peers.map((p) => (c.w4a4VsPeers[p] === undefined ? '' : formatNumber(c.w4a4VsPeers[p]))),
      formatNumber(100 * c.quantizeShare),
    ]),
  ];
}

/** The adapter as one line. */
export function adapterName(a: AdapterSummary): string {
  return `${[a.vendor, a.architecture, a.description || a.device].filter(Boolean).join(' / ') || 'unnamed adapter'}${a.isFallbackAdapter ? ' (CPU fallback)' : ''}`;
}
