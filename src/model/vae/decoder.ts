/**
 * The FLUX VAE decoder on the GPU: latent [16, h, w] → image [3, 8h, 8w], as kernel compositions over
 * pixel-major activations stored in row bands.
 *
 * Banding: every activation is a list of bands of image rows (the same band count at every resolution; a
 * band's rows double at each upsample), so no single binding exceeds the adapter's storage-binding limit.
 * A 3×3 convolution of a band reads one row above and below from the neighbouring bands through a small
 * halo buffer, and every GroupNorm gathers its statistics over all bands before any band is normalized, so
 * the banded result equals the unbanded one (up to f32 summation order).
 *
 * Memory: inside a resnet, each band of the output is written as soon as the bands it reads exist, and the
 * input bands it no longer needs are released right away, so a resnet holds about its input, its hidden
 * tensor and a band or two of output at once. `planVaeDecode` replays the same recording without a GPU
 * workload to state the peak for any size.
 */
import { FluxError } from '../../errors.ts';
import { CommandBatch } from '../../gpu/batch.ts';
import { readFloat32, uploadBuffer, writeBuffer } from '../../gpu/buffers.ts';
import type { GpuContext } from '../../gpu/device.ts';
import type { GpuTensor } from '../../gpu/tensor.ts';
import { attention } from '../../kernels/attention.ts';
import { conv2d, convColumnsSize, convNeedsColumns, convWeightLayout, type ConvKernelSize, type ConvWeights } from '../../kernels/conv.ts';
import { add } from '../../kernels/elementwise.ts';
import { groupNormAffine, groupNormPartialsSize } from '../../kernels/groupnorm.ts';
import type { TensorReader } from '../../weights/safetensors.ts';
import { vaeUpscale, type VaeConfig } from './config.ts';
import { decoderNames, detectVaeLayout, type DecoderNames, type ResnetNames, type VaeLayout } from './layout.ts';
import { chwToHwc, hwcToChw } from './pixel-layout.ts';

const F32_BYTES = 4;
/** Largest band binding we aim for when the caller does not choose: far below every adapter's limit. */
const DEFAULT_BAND_BYTES = 128 * 2 ** 20;

interface NormWeights {
  readonly channels: number;
  readonly gamma: GpuTensor;
  readonly beta: GpuTensor;
}

interface ResnetWeights {
  readonly norm1: NormWeights;
  readonly conv1: ConvWeights;
  readonly norm2: NormWeights;
  readonly conv2: ConvWeights;
  readonly shortcut?: ConvWeights;
}

interface DecoderWeights {
  readonly convIn: ConvWeights;
  readonly mid: readonly [ResnetWeights, ResnetWeights];
  readonly attention: { readonly norm: NormWeights; readonly qkv: ConvWeights; readonly out: ConvWeights };
  /** Level 0 (full resolution) first; executed from the last level down. */
  readonly levels: readonly { readonly resnets: readonly ResnetWeights[]; readonly upsample?: ConvWeights }[];
  readonly normOut: NormWeights;
  readonly convOut: ConvWeights;
}

/** Where weights come from: a checkpoint (uploaded), or nothing (shape-only stand-ins for planning). */
interface WeightFactory {
  conv(names: readonly string[], cout: number, cin: number, k: ConvKernelSize): Promise<ConvWeights>;
  norm(name: string, channels: number): Promise<NormWeights>;
}

/** The decoder's structure from the config; `factory` supplies every tensor. */
async function buildWeights(config: VaeConfig, names: DecoderNames, f: WeightFactory): Promise<DecoderWeights> {
  const boc = config.blockOutChannels;
  const top = boc[boc.length - 1]!;
  const resnet = async (n: ResnetNames, cin: number, cout: number): Promise<ResnetWeights> => ({
    norm1: await f.norm(n.norm1, cin),
    conv1: await f.conv([n.conv1], cout, cin, 3),
    norm2: await f.norm(n.norm2, cout),
    conv2: await f.conv([n.conv2], cout, cout, 3),
    shortcut: cin === cout ? undefined : await f.conv([n.shortcut], cout, cin, 1),
  });
  const convIn = await f.conv([names.convIn], top, config.latentChannels, 3);
  const mid: [ResnetWeights, ResnetWeights] = [await resnet(names.midResnets[0], top, top), await resnet(names.midResnets[1], top, top)];
  const a = names.midAttention;
  const attn = { norm: await f.norm(a.norm, top), qkv: await f.conv([a.q, a.k, a.v], 3 * top, top, 1), out: await f.conv([a.out], top, top, 1) };
  const levels: DecoderWeights['levels'][number][] = new Array(boc.length);
  let channels = top;
  for (let L = boc.length - 1; L >= 0; L--) {
    const resnets: ResnetWeights[] = [];
    for (const [i, n] of names.levels[L]!.resnets.entries()) {
      resnets.push(await resnet(n, i === 0 ? channels : boc[L]!, boc[L]!));
    }
    channels = boc[L]!;
    const upsample = L > 0 ? await f.conv([names.levels[L]!.upsample!], channels, channels, 3) : undefined;
    levels[L] = { resnets, upsample };
  }
  return { convIn, mid, attention: attn, levels, normOut: await f.norm(names.normOut, boc[0]!), convOut: await f.conv([names.convOut], config.outChannels, boc[0]!, 3) };
}

/** Buffers for activations: the context's pool when decoding, a byte counter when planning. */
interface ActivationMemory {
  acquire(bytes: number, label: string): Promise<GPUBuffer>;
  release(buffer: GPUBuffer): void;
}

/** A row band of a pixel-major tensor: rows [row0, row0 + rows) as [rows, width, channels]. */
interface Band {
  readonly row0: number;
  readonly rows: number;
  readonly tensor: GpuTensor;
}

/** A pixel-major tensor [height, width, channels] stored as row bands. */
interface Banded {
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  readonly bands: Band[];
}

export interface VaeDecodeOptions {
  /**
   * Latent rows per band (the band count is the same at every resolution). Default: as many as keep the
   * largest band binding within 128 MiB and the adapter's storage-binding limit.
   */
  readonly bandRows?: number;
}

export interface VaeDecodeResult {
  /** [outChannels, 8h, 8w] channel-major, unclamped (as the reference decode returns). */
  readonly image: Float32Array;
  readonly height: number;
  readonly width: number;
  /** Latent rows per band used. */
  readonly bandRows: number;
}

export interface VaeDecodePlan {
  /** Most activation bytes alive at once during the decode (weights not included). */
  readonly peakActivationBytes: number;
  readonly weightBytes: number;
  /** Largest single band binding. */
  readonly largestBandBytes: number;
  readonly bandRows: number;
  readonly bands: number;
}

/** Records the decode of a latent already in `z`'s bands; returns the image bands (padded channels). */
export class DecodeRecorder {
  constructor(
    private readonly batch: CommandBatch,
    private readonly memory: ActivationMemory,
    private readonly config: VaeConfig,
    private readonly w: DecoderWeights,
    /** Bytes of conv gather scratch per dispatch chunk. */
    private readonly columnBudget: number,
  ) {}

  async alloc(height: number, width: number, channels: number, bandRows: number, bands: number, label: string): Promise<Banded> {
    const out: Band[] = [];
    for (let i = 0; i < bands; i++) {
      const row0 = i * bandRows;
      const rows = Math.min(bandRows, height - row0);
      out.push({ row0, rows, tensor: await this.tensor([rows, width, channels], label) });
    }
    return { height, width, channels, bands: out };
  }

  async tensor(shape: number[], label: string): Promise<GpuTensor> {
    const buffer = await this.memory.acquire(shape.reduce((a, b) => a * b, 1) * F32_BYTES, label);
    return { buffer, offset: 0, shape, dtype: 'f32' };
  }

  free(t: Banded | GpuTensor): void {
    if ('bands' in t) for (const b of t.bands) this.memory.release(b.tensor.buffer);
    else this.memory.release(t.buffer);
  }

  /** Runs the whole decoder on `z` (consumed); returns the output bands. */
  async decode(z: Banded): Promise<Banded> {
    const { w } = this;
    let x = await this.conv(z, w.convIn);
    this.free(z);
    x = await this.resnet(x, w.mid[0]);
    x = await this.attention(x);
    x = await this.resnet(x, w.mid[1]);
    for (let L = w.levels.length - 1; L >= 0; L--) {
      const level = w.levels[L]!;
      for (const r of level.resnets) x = await this.resnet(x, r);
      if (level.upsample) {
        const up = await this.conv(x, level.upsample, { upsample: true });
        this.free(x);
        x = up;
      }
    }
    const affine = await this.groupNorm(x, w.normOut);
    const image = await this.conv(x, w.convOut, { norm: affine, silu: true });
    this.free(affine);
    this.free(x);
    return image;
  }

  /** A band-for-band convolution into a new banded tensor. */
  private async conv(x: Banded, cw: ConvWeights, opts: { upsample?: boolean; norm?: GpuTensor; silu?: boolean } = {}): Promise<Banded> {
    const factor = opts.upsample ? 2 : 1;
    const bandRows = x.bands[0]!.rows * factor;
    const y = await this.alloc(x.height * factor, x.width * factor, cw.outChannels, bandRows, x.bands.length, 'vae activation');
    for (const [i, band] of y.bands.entries()) await this.convBand(x, i, cw, band.tensor, band.row0, band.rows, opts);
    return y;
  }

  /**
   * Output rows [outRow0, outRow0 + outRows) of conv(x) into `y` (from y's row yRow0). With several bands,
   * input band i and its neighbours' edge rows (through a halo buffer) are read; a one-band x is read whole.
   * The gathered inputs go through a scratch of at most `columnBudget` bytes, in chunks of output rows.
   */
  private async convBand(
    x: Banded,
    i: number,
    cw: ConvWeights,
    y: GpuTensor,
    outRow0: number,
    outRows: number,
    opts: { upsample?: boolean; norm?: GpuTensor; silu?: boolean; yRow0?: number } = {},
  ): Promise<void> {
    const whole = x.bands.length === 1;
    const band = x.bands[whole ? 0 : i]!;
    let halo: GpuTensor | undefined;
    if (!whole && cw.kernelSize === 3) {
      halo = await this.tensor([2, x.width, x.channels], 'vae halo');
      const rowBytes = x.width * x.channels * F32_BYTES;
      const above = x.bands[i - 1];
      const below = x.bands[i + 1];
      if (above) this.batch.copy(above.tensor.buffer, (above.rows - 1) * rowBytes, halo.buffer, 0, rowBytes);
      if (below) this.batch.copy(below.tensor.buffer, 0, halo.buffer, rowBytes, rowBytes);
    }
    const args = { weights: cw, x: band.tensor, inRow0: band.row0, inHeight: x.height, halo, norm: opts.norm, silu: opts.silu, upsample: opts.upsample, y };
    const yRow0 = opts.yRow0 ?? 0;
    if (!convNeedsColumns(args)) {
      await conv2d(this.batch, { ...args, outRow0, outRows, yRow0 });
    } else {
      const outWidth = x.width * (opts.upsample ? 2 : 1);
      const chunkRows = Math.max(1, Math.min(outRows, Math.floor(this.columnBudget / (convColumnsSize(cw, 1, outWidth) * F32_BYTES))));
      const columns = await this.tensor([convColumnsSize(cw, chunkRows, outWidth)], 'vae conv columns');
      for (let r = 0; r < outRows; r += chunkRows) {
        await conv2d(this.batch, { ...args, outRow0: outRow0 + r, outRows: Math.min(chunkRows, outRows - r), yRow0: yRow0 + r, columns });
      }
      this.free(columns);
    }
    if (halo) this.free(halo);
  }

  /** x_band += y_band, both [rows, width, channels] of the same size. */
  private async addBand(x: GpuTensor, y: GpuTensor): Promise<void> {
    const flat = (t: GpuTensor): GpuTensor => ({ ...t, shape: [t.shape[0]! * t.shape[1]!, t.shape[2]!] });
    await add(this.batch, { x: { tensor: flat(x) }, y: { tensor: flat(y) } });
  }

  /** The [2, channels] affine form of GroupNorm over all of x's bands. */
  private async groupNorm(x: Banded, norm: NormWeights): Promise<GpuTensor> {
    const { groups, eps } = this.config;
    const partials = await this.tensor([groupNormPartialsSize(x.bands.map((b) => b.rows * x.width), norm.channels, groups)], 'group norm partials');
    const means = await this.tensor([groups], 'group norm means');
    const affine = await this.tensor([2, norm.channels], 'group norm affine');
    await groupNormAffine(this.batch, { bands: x.bands.map((b) => b.tensor), channels: norm.channels, groups, eps, gamma: norm.gamma, beta: norm.beta, partials, means, affine });
    this.free(partials);
    this.free(means);
    return affine;
  }

  /** skip(x) + conv2(silu(GN2(conv1(silu(GN1(x)))))); x is consumed band by band. */
  private async resnet(x: Banded, r: ResnetWeights): Promise<Banded> {
    const a1 = await this.groupNorm(x, r.norm1);
    const h = await this.conv(x, r.conv1, { norm: a1, silu: true });
    this.free(a1);
    const a2 = await this.groupNorm(h, r.norm2);
    const out: Banded = { height: x.height, width: x.width, channels: r.conv2.outChannels, bands: [] };
    for (const [i, band] of x.bands.entries()) {
      const y = await this.tensor([band.rows, x.width, out.channels], 'vae activation');
      out.bands.push({ row0: band.row0, rows: band.rows, tensor: y });
      await this.convBand(h, i, r.conv2, y, band.row0, band.rows, { norm: a2, silu: true });
      if (r.shortcut) {
        const skip = await this.tensor([band.rows, x.width, out.channels], 'vae shortcut');
        await this.convBand(x, i, r.shortcut, skip, band.row0, band.rows);
        await this.addBand(y, skip);
        this.free(skip);
      } else {
        await this.addBand(y, band.tensor);
      }
      // Band i of x is not read again; band i - 1 of h was the last halo source for band i.
      this.memory.release(band.tensor.buffer);
      if (i > 0) this.memory.release(h.bands[i - 1]!.tensor.buffer);
    }
    this.memory.release(h.bands[h.bands.length - 1]!.tensor.buffer);
    this.free(a2);
    return out;
  }

  /** x + proj_out(attention(q, k, v of GN(x))), one head over all pixels; x is consumed. */
  private async attention(x: Banded): Promise<Banded> {
    const aw = this.w.attention;
    const c = x.channels;
    const pixels = x.height * x.width;
    const affine = await this.groupNorm(x, aw.norm);
    // q, k and v of every pixel side by side: the layout the flash attention kernel reads.
    const qkv = await this.tensor([x.height, x.width, 3 * c], 'vae attention qkv');
    for (const [i, band] of x.bands.entries()) {
      await this.convBand(x, i, aw.qkv, qkv, band.row0, band.rows, { norm: affine, yRow0: band.row0 });
    }
    this.free(affine);
    const o = await this.tensor([x.height, x.width, c], 'vae attention out');
    await attention(this.batch, { qkv: { ...qkv, shape: [pixels, 3 * c] }, heads: 1, headDim: c, out: { tensor: { ...o, shape: [pixels, c] } } });
    this.free(qkv);
    const whole: Banded = { height: x.height, width: x.width, channels: c, bands: [{ row0: 0, rows: x.height, tensor: o }] };
    const out: Banded = { height: x.height, width: x.width, channels: c, bands: [] };
    for (const band of x.bands) {
      const y = await this.tensor([band.rows, x.width, c], 'vae activation');
      out.bands.push({ row0: band.row0, rows: band.rows, tensor: y });
      await this.convBand(whole, 0, aw.out, y, band.row0, band.rows);
      await this.addBand(y, band.tensor);
      this.memory.release(band.tensor.buffer);
    }
    this.free(o);
    return out;
  }
}

/** Largest bytes one latent row's band occupies in any decoder activation. */
function bytesPerLatentRow(config: VaeConfig, width: number): number {
  const boc = config.blockOutChannels;
  const levels = boc.length;
  let most = 0;
  for (let L = levels - 1; L >= 0; L--) {
    // Level L runs at `scale` latent pixels per axis, reading the previous level's channels first, and its
    // upsample writes its channels at twice the scale.
    const scale = 2 ** (levels - 1 - L);
    const channels = Math.max(boc[L]!, boc[Math.min(L + 1, levels - 1)]!);
    most = Math.max(most, scale * scale * width * channels, L > 0 ? 4 * scale * scale * width * boc[L]! : 0);
  }
  return most * F32_BYTES;
}

/** Largest binding the decoder creates on purpose (bands, conv scratch). */
function bandBudget(ctx: GpuContext): number {
  return Math.min(DEFAULT_BAND_BYTES, ctx.limits.maxStorageBufferBindingSize);
}

function chooseBandRows(ctx: GpuContext, config: VaeConfig, height: number, width: number, requested: number | undefined): number {
  if (requested !== undefined) {
    if (!Number.isInteger(requested) || requested < 1) throw new FluxError('bad-argument', `VAE band rows must be a positive integer, got ${requested}`);
    return Math.min(requested, height);
  }
  const budget = bandBudget(ctx);
  return Math.max(1, Math.min(height, Math.floor(budget / bytesPerLatentRow(config, width))));
}

export class VaeDecoder {
  private constructor(
    readonly ctx: GpuContext,
    readonly config: VaeConfig,
    readonly layout: VaeLayout,
    private readonly weights: DecoderWeights,
    private readonly buffers: readonly GPUBuffer[],
    readonly weightBytes: number,
  ) {}

  /** Reads the decoder's tensors (BFL or diffusers layout, F32/F16/BF16) and uploads them as f32. */
  static async load(ctx: GpuContext, reader: TensorReader, config: VaeConfig): Promise<VaeDecoder> {
    const layout = detectVaeLayout(reader);
    const names = decoderNames(layout, config.blockOutChannels.length, config.layersPerBlock + 1, reader);
    const buffers: GPUBuffer[] = [];
    let bytes = 0;
    const upload = async (data: Float32Array, label: string): Promise<GpuTensor> => {
      const buffer = await uploadBuffer(ctx, data, label);
      buffers.push(buffer);
      bytes += buffer.size;
      return { buffer, offset: 0, shape: [data.length], dtype: 'f32' };
    };
    const read = async (name: string, shapes: readonly (readonly number[])[]): Promise<Float32Array> => {
      if (!reader.has(name)) throw new FluxError('bad-format', `${reader.name}: missing VAE tensor ${name}`);
      const { shape } = reader.info(name);
      if (!shapes.some((s) => s.length === shape.length && s.every((d, i) => d === shape[i]))) {
        throw new FluxError('bad-shape', `${reader.name}: ${name} has shape [${shape}], expected [${shapes[0]!.join(', ')}]`);
      }
      return reader.readFloat32(name);
    };
    const factory: WeightFactory = {
      async conv(list, cout, cin, k) {
        const part = cout / list.length;
        const shapes = k === 1 ? [[part, cin, 1, 1], [part, cin]] : [[part, cin, 3, 3]];
        const weight = new Float32Array(cout * cin * k * k);
        const bias = new Float32Array(cout);
        for (const [j, name] of list.entries()) {
          weight.set(await read(`${name}.weight`, shapes), j * part * cin * k * k);
          bias.set(await read(`${name}.bias`, [[part]]), j * part);
        }
        return {
          kernelSize: k,
          inChannels: cin,
          outChannels: cout,
          weight: await upload(convWeightLayout(weight, cout, cin, k), `${list[0]}.weight`),
          bias: await upload(bias, `${list[0]}.bias`),
        };
      },
      async norm(name, channels) {
        return { channels, gamma: await upload(await read(`${name}.weight`, [[channels]]), `${name}.weight`), beta: await upload(await read(`${name}.bias`, [[channels]]), `${name}.bias`) };
      },
    };
    try {
      const weights = await buildWeights(config, names, factory);
      return new VaeDecoder(ctx, config, layout, weights, buffers, bytes);
    } catch (e) {
      for (const b of buffers) b.destroy();
      throw e;
    }
  }

  /** Decodes latent z [latentChannels, h, w] (channel-major, before the z / scale + shift transform). */
  async decode(z: Float32Array, h: number, w: number, options: VaeDecodeOptions = {}): Promise<VaeDecodeResult> {
    const { config, ctx } = this;
    if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1 || z.length !== config.latentChannels * h * w) {
      throw new FluxError('bad-shape', `VAE decode: latent of ${z.length} values is not [${config.latentChannels}, ${h}, ${w}]`);
    }
    const bandRows = chooseBandRows(ctx, config, h, w, options.bandRows);
    const bands = Math.ceil(h / bandRows);
    const transformed = chwToHwc(z.map((v) => v / config.scalingFactor + config.shiftFactor), config.latentChannels, h * w);
    const batch = new CommandBatch(ctx, 'vae decode');
    const recorder = new DecodeRecorder(batch, ctx.pool, config, this.weights, bandBudget(ctx));
    const input = await recorder.alloc(h, w, config.latentChannels, bandRows, bands, 'vae latent');
    const rowValues = w * config.latentChannels;
    for (const band of input.bands) writeBuffer(ctx, band.tensor.buffer, 0, transformed.subarray(band.row0 * rowValues, (band.row0 + band.rows) * rowValues));
    const image = await recorder.decode(input);
    try {
      await batch.submit();
      const scale = vaeUpscale(config);
      const hwc = new Float32Array(image.height * image.width * image.channels);
      for (const band of image.bands) {
        const values = band.rows * image.width * image.channels;
        hwc.set(await readFloat32(ctx, band.tensor.buffer, 0, values), band.row0 * image.width * image.channels);
      }
      return { image: hwcToChw(hwc, config.outChannels, image.height * image.width, image.channels), height: h * scale, width: w * scale, bandRows };
    } finally {
      recorder.free(image);
    }
  }

  /** Frees the weights. */
  destroy(): void {
    for (const b of this.buffers) b.destroy();
  }
}

/**
 * The decode's memory without running it: the same recording as `decode`, with shape-only weights and
 * buffers that are counted instead of allocated (pipelines are compiled, nothing is submitted).
 */
export async function planVaeDecode(ctx: GpuContext, config: VaeConfig, h: number, w: number, options: VaeDecodeOptions = {}): Promise<VaeDecodePlan> {
  let live = 0;
  let peak = 0;
  let largest = 0;
  let weightBytes = 0;
  const fake = (bytes: number, label: string): GPUBuffer => ({ size: Math.max(4, Math.ceil(bytes / 4) * 4), label }) as unknown as GPUBuffer;
  const memory: ActivationMemory = {
    async acquire(bytes, label) {
      const buffer = fake(bytes, label);
      live += buffer.size;
      peak = Math.max(peak, live);
      largest = Math.max(largest, buffer.size);
      return buffer;
    },
    release(buffer) {
      live -= buffer.size;
    },
  };
  const weight = (values: number, label: string): GpuTensor => {
    weightBytes += values * F32_BYTES;
    return { buffer: fake(values * F32_BYTES, label), offset: 0, shape: [values], dtype: 'f32' };
  };
  const factory: WeightFactory = {
    async conv(names, cout, cin, k) {
      return { kernelSize: k, inChannels: cin, outChannels: cout, weight: weight(k * k * cin * cout, names[0]!), bias: weight(cout, names[0]!) };
    },
    async norm(name, channels) {
      return { channels, gamma: weight(channels, name), beta: weight(channels, name) };
    },
  };
  const names = decoderNames('bfl', config.blockOutChannels.length, config.layersPerBlock + 1, { has: () => false } as unknown as TensorReader);
  const weights = await buildWeights(config, names, factory);
  const bandRows = chooseBandRows(ctx, config, h, w, options.bandRows);
  const bands = Math.ceil(h / bandRows);
  const recorder = new DecodeRecorder(new CommandBatch(ctx, 'vae decode plan'), memory, config, weights, bandBudget(ctx));
  const input = await recorder.alloc(h, w, config.latentChannels, bandRows, bands, 'vae latent');
  recorder.free(await recorder.decode(input));
  return { peakActivationBytes: peak, weightBytes, largestBandBytes: largest, bandRows, bands };
}
