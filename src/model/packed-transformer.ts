/**
 * The packed transformer file (docs/packed-format.md): a safetensors file holding every layer already
 * quantized (ConvRot layers packed, float layers and vectors as they were on the GPU), with the config, the
 * precision map, the format version and the source's identity in its metadata. Written layer by layer from any
 * weight source; read back as a weight source that uploads the arrays as they are (no re-quantization).
 */
import { FluxError } from '../errors.ts';
import type { GpuContext } from '../gpu/device.ts';
import { recordSource, linearRecord } from '../nn/stored-linear.ts';
import type { LinearSource, LinearSpec } from '../nn/factory.ts';
import { readRecord, recordTensorName, type RecordEntry, parseJsonObject } from '../weights/layer-record.ts';
import type { SafetensorsStreamWriter } from '../weights/safetensors-writer.ts';
import type { TensorReader } from '../weights/safetensors.ts';
import { validateConfig, type FluxConfig } from './config.ts';
import { canonicalLinears, canonicalNormScales } from './layout.ts';
import type { QuantPlan } from './precision.ts';
import { decodePlan, encodePlan, planSpecs, recordVector, vectorRecord, vectorRecordName } from './stored-weights.ts';
import type { TransformerWeightSource } from './weight-loader.ts';

/** `format` metadata value that marks a packed model (other safetensors files are source checkpoints). */
export const PACKED_FORMAT = 'flux-w4a4-packed';
/** Bumped whenever a reader of the previous version would misread a new file. */
export const PACKED_FORMAT_VERSION = 1;

/** Metadata keys of a packed file; every value is a string, JSON where structured. */
export const PACKED_METADATA = {
  format: 'format',
  version: 'format_version',
  config: 'config',
  precision: 'precision_map',
  source: 'source',
  layers: 'layers',
} as const;

/** Which weights a packed file was made from. */
export interface PackedOrigin {
  /** Stable identity of the source (its path or URL, or what the caller chose); cache keys use it. */
  readonly identity: string;
  /** Human-readable name (the folder). */
  readonly label: string;
}

export interface PackProgress {
  readonly done: number;
  readonly total: number;
  readonly layer: string;
  /** Tensor bytes written so far. */
  readonly bytes: number;
}

/**
 * Writes the transformer at `plan` from `source` into `writer`, one layer in memory at a time (read from the
 * source, quantized on the GPU, read back packed, appended), and returns the file's metadata, which the caller
 * passes to `writer.header`.
 */
export async function packTransformer(
  ctx: GpuContext,
  source: TransformerWeightSource,
  plan: QuantPlan,
  writer: SafetensorsStreamWriter,
  origin: PackedOrigin,
  onProgress?: (p: PackProgress) => void,
): Promise<Record<string, string>> {
  const { config } = source;
  const precision = encodePlan(plan, config);
  const specs = planSpecs(plan, config);
  const entries: RecordEntry[] = [];
  const linears = canonicalLinears(config);
  const vectors = canonicalNormScales(config);
  const total = linears.length + vectors.length;
  const append = async (record: Awaited<ReturnType<typeof linearRecord>>): Promise<void> => {
    for (const t of record.tensors) await writer.add({ name: recordTensorName(record.name, t.role), dtype: t.dtype, shape: t.shape, data: t.data });
    entries.push({ name: record.name, kind: record.kind, attrs: record.attrs, roles: record.tensors.map((t) => t.role) });
    onProgress?.({ done: entries.length, total, layer: record.name, bytes: writer.dataBytes });
  };
  for (const { name } of linears) {
    const spec = specs.get(name)!;
    const [src] = await source.linears([name], [spec]);
    await append(await linearRecord(ctx, name, spec, src!));
  }
  for (const name of vectors) await append(vectorRecord(name, await source.vector(name)));
  return {
    [PACKED_METADATA.format]: PACKED_FORMAT,
    [PACKED_METADATA.version]: String(PACKED_FORMAT_VERSION),
    [PACKED_METADATA.config]: JSON.stringify(config),
    [PACKED_METADATA.precision]: precision,
    [PACKED_METADATA.source]: JSON.stringify(origin),
    [PACKED_METADATA.layers]: JSON.stringify(entries),
  };
}

export function isPackedTransformer(reader: TensorReader): boolean {
  return reader.metadata[PACKED_METADATA.format] === PACKED_FORMAT;
}

function parseEntries(text: string | undefined, origin: string): RecordEntry[] {
  let value: unknown;
  try {
    value = JSON.parse(text ?? '');
  } catch {
    value = undefined;
  }
  const valid = (e: unknown): e is RecordEntry => {
    const r = e as Partial<RecordEntry>;
    return typeof r?.name === 'string' && typeof r.kind === 'string' && typeof r.attrs === 'object' && Array.isArray(r.roles) && r.roles.every((x) => typeof x === 'string');
  };
  if (!Array.isArray(value) || !value.every(valid)) throw new FluxError('bad-format', `${origin}: the packed file's layer list is missing or malformed`);
  return value;
}

/** A packed file opened as a weight source: its layers are uploaded as stored. */
export class PackedTransformer implements TransformerWeightSource {
  private readonly entries: ReadonlyMap<string, RecordEntry>;

  private constructor(
    private readonly ctx: GpuContext,
    private readonly reader: TensorReader,
    readonly config: FluxConfig,
    /** The precision plan the file was quantized with. */
    readonly plan: QuantPlan,
    readonly origin: PackedOrigin,
    entries: readonly RecordEntry[],
  ) {
    this.entries = new Map(entries.map((e) => [e.name, e]));
  }

  /** Parses the metadata of an opened packed file (see isPackedTransformer); the reader stays the caller's to close. */
  static open(ctx: GpuContext, reader: TensorReader): PackedTransformer {
    const m = reader.metadata;
    const file = reader.name;
    if (!isPackedTransformer(reader)) throw new FluxError('bad-format', `${file}: not a packed flux-w4a4 model (no "${PACKED_METADATA.format}": "${PACKED_FORMAT}")`);
    const version = Number(m[PACKED_METADATA.version]);
    if (version !== PACKED_FORMAT_VERSION) {
      throw new FluxError('bad-format', `${file}: packed format version ${m[PACKED_METADATA.version]}, this engine reads version ${PACKED_FORMAT_VERSION} (re-run quantize)`);
    }
    let config: FluxConfig;
    try {
      config = validateConfig(JSON.parse(m[PACKED_METADATA.config] ?? '') as FluxConfig);
    } catch (e) {
      if (e instanceof FluxError) throw e;
      throw new FluxError('bad-format', `${file}: the packed file's config is not JSON`, { cause: e });
    }
    const plan = decodePlan(m[PACKED_METADATA.precision] ?? '', config, `${file} precision map`);
    const origin = parseJsonObject(m[PACKED_METADATA.source], file);
    return new PackedTransformer(ctx, reader, config, plan, { identity: String(origin.identity), label: String(origin.label) }, parseEntries(m[PACKED_METADATA.layers], file));
  }

  async linears(names: readonly string[], specs: readonly LinearSpec[]): Promise<LinearSource[]> {
    const sources: LinearSource[] = [];
    for (const [i, name] of names.entries()) {
      const record = await readRecord(this.reader, this.entry(name));
      const stored = this.plan.layers.get(name) ?? 'float';
      if (specs[i]!.precision !== stored) {
        throw new FluxError('bad-argument', `${this.reader.name}: ${name} is stored at ${stored}; ${specs[i]!.precision} needs the source model (quantize again)`);
      }
      sources.push(await recordSource(this.ctx, record));
    }
    return sources;
  }

  async vector(name: string): Promise<Float32Array<ArrayBuffer>> {
    return recordVector(await readRecord(this.reader, this.entry(vectorRecordName(name))));
  }

  private entry(name: string): RecordEntry {
    const entry = this.entries.get(name);
    if (!entry) throw new FluxError('bad-format', `${this.reader.name}: the packed file has no layer ${name}`);
    return entry;
  }
}
