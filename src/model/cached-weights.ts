/**
 * A transformer weight source backed by the browser's weight cache (src/weights/cache.ts). Every layer is a
 * record keyed by (source identity, layer, precision), so the records of one precision map serve any other map
 * that shares layers, and switching a layer group between INT4 and INT8 rebuilds only those layers (from the
 * cache when that precision is there). A model entry, keyed by (source identity, precision request, format
 * version), names all records and is written last (`commit`), so the next load finds the whole model without
 * opening the source at all.
 *
 * The source is opened lazily: a complete, intact entry never touches it. A corrupt record drops the entry; the
 * layer is rebuilt from the source and the entry written again on commit.
 */
import { FluxError } from '../errors.ts';
import { formatBytes } from '../gpu/buffers.ts';
import type { GpuContext } from '../gpu/device.ts';
import type { LinearSource, LinearSpec } from '../nn/factory.ts';
import { linearRecord, recordSource } from '../nn/stored-linear.ts';
import { CACHE_FORMAT_VERSION, CorruptCacheEntry, type WeightCache } from '../weights/cache.ts';
import { decodeRecord, encodeRecord, type LayerRecord } from '../weights/layer-record.ts';
import type { FluxConfig } from './config.ts';
import { PACKED_FORMAT_VERSION } from './packed-transformer.ts';
import type { QuantPlan } from './precision.ts';
import { decodePlan, encodePlan, recordVector, specKey, storedBytesEstimate, vectorRecord } from './stored-weights.ts';
import type { TransformerWeightSource } from './weight-loader.ts';

/** A source opened on a cache miss. */
export interface OpenedWeights {
  readonly source: TransformerWeightSource;
  close(): Promise<void>;
}

export interface CachedTransformerOptions {
  readonly cache: WeightCache;
  /** Same identity means same weights: a URL or path, or a File's name, size and date. */
  readonly identity: string;
  /** Shown in the cache's list. */
  readonly label: string;
  /** The precision request as text (`mixed`, or a preset with overrides); part of the entry's key. */
  readonly precision: string;
  /** Opens the source (only on a miss or to repair a corrupt record). */
  readonly open: () => Promise<OpenedWeights>;
  /** The plan for the source's config (used when there is no entry yet). */
  readonly plan: (config: FluxConfig) => QuantPlan;
}

interface ModelPayload {
  readonly config: FluxConfig;
  readonly precisionMap: string;
}

export interface CacheLoadStats {
  /** Records read from the cache. */
  cached: number;
  /** Records built from the source and stored. */
  built: number;
  /** Records found corrupt (dropped and rebuilt). */
  corrupt: number;
}

async function sha256Text(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
  return Array.from(digest.subarray(0, 16), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Identity and layout versions in every key: a new engine version never reads an old layout's records. */
async function sourceKey(identity: string): Promise<string> {
  return sha256Text(`${identity}\npacked v${PACKED_FORMAT_VERSION}\ncache v${CACHE_FORMAT_VERSION}`);
}

export class CachedTransformer implements TransformerWeightSource {
  readonly stats: CacheLoadStats = { cached: 0, built: 0, corrupt: 0 };
  private opened: OpenedWeights | undefined;
  /** Records this load stored, removed again if the quota runs out. */
  private readonly written: string[] = [];
  /** Keys of every record the model entry will name, in load order. */
  private readonly records: string[] = [];
  private entryValid: boolean;
  /** After commit, records serve layer swaps and no longer belong to the entry. */
  private committed = false;

  private constructor(
    private readonly ctx: GpuContext,
    private readonly options: CachedTransformerOptions,
    private readonly idKey: string,
    /** The model entry's key. */
    readonly key: string,
    readonly config: FluxConfig,
    readonly plan: QuantPlan,
    entryValid: boolean,
    opened: OpenedWeights | undefined,
  ) {
    this.entryValid = entryValid;
    this.opened = opened;
  }

  /** Looks the model up in the cache; opens the source only if there is no entry. */
  static async open(ctx: GpuContext, options: CachedTransformerOptions): Promise<CachedTransformer> {
    const idKey = await sourceKey(options.identity);
    const key = await sha256Text(`${idKey}\n${options.precision}`);
    const manifest = await options.cache.readModel(key);
    if (manifest) {
      const { config, precisionMap } = manifest.payload as ModelPayload;
      return new CachedTransformer(ctx, options, idKey, key, config, decodePlan(precisionMap, config, 'cached precision map'), true, undefined);
    }
    const opened = await options.open();
    try {
      const config = opened.source.config;
      return new CachedTransformer(ctx, options, idKey, key, config, options.plan(config), false, opened);
    } catch (e) {
      await opened.close();
      throw e;
    }
  }

  /** True when every record so far came from the cache. */
  get fromCache(): boolean {
    return this.stats.built === 0 && this.stats.corrupt === 0;
  }

  async linears(names: readonly string[], specs: readonly LinearSpec[]): Promise<LinearSource[]> {
    const sources: LinearSource[] = [];
    for (const [i, name] of names.entries()) {
      const spec = specs[i]!;
      const key = `${this.idKey}/${name}/${specKey(spec)}`;
      const record = (await this.cached(key)) ?? (await this.store(key, await this.build(name, spec)));
      sources.push(await recordSource(this.ctx, record));
    }
    return sources;
  }

  async vector(name: string): Promise<Float32Array<ArrayBuffer>> {
    const key = `${this.idKey}/${name}/vector`;
    const record = (await this.cached(key)) ?? (await this.store(key, vectorRecord(name, await (await this.source()).vector(name))));
    return recordVector(record);
  }

  /**
   * Ends the load: writes the model entry if this load built or repaired anything, or if `alsoOwns` (records the
   * rest of the model's load used: the VAE's and text encoders' tensors) names records the entry lacks; after
   * every record is stored. Later calls (slot rebuilds at other precisions) read and store records without
   * touching the entry.
   */
  async commit(alsoOwns: readonly string[] = []): Promise<void> {
    if (this.committed) return;
    this.committed = true;
    this.written.length = 0;
    const owned = new Set(this.entryValid ? ((await this.options.cache.readModel(this.key))?.records ?? []) : []);
    const added = alsoOwns.filter((k) => !owned.has(k));
    this.records.push(...new Set(added));
    if (this.entryValid && added.length === 0) return;
    const bytes = await this.recordsBytes();
    const payload: ModelPayload = { config: this.config, precisionMap: encodePlan(this.plan, this.config) };
    await this.options.cache.writeModel({ key: this.key, label: this.options.label, bytes, createdAt: Date.now(), precision: this.options.precision, records: this.records, payload });
    this.entryValid = true;
  }

  /** Closes the source if it was opened. */
  async close(): Promise<void> {
    await this.opened?.close();
    this.opened = undefined;
  }

  private async recordsBytes(): Promise<number> {
    let bytes = 0;
    for (const key of this.records) bytes += (await this.options.cache.recordBytes(key)) ?? 0;
    return bytes;
  }

  private async source(): Promise<TransformerWeightSource> {
    this.opened ??= await this.options.open();
    return this.opened.source;
  }

  private async build(name: string, spec: LinearSpec): Promise<LayerRecord> {
    const [src] = await (await this.source()).linears([name], [spec]);
    return linearRecord(this.ctx, name, spec, src!);
  }

  /** The record under `key`, or undefined; a corrupt one drops the model entry (it is rebuilt by the caller). */
  private async cached(key: string): Promise<LayerRecord | undefined> {
    let bytes: Uint8Array<ArrayBuffer> | undefined;
    try {
      bytes = await this.options.cache.readRecord(key);
    } catch (e) {
      if (!(e instanceof CorruptCacheEntry)) throw e;
      this.stats.corrupt++;
      await this.invalidate();
      return undefined;
    }
    if (!bytes) return undefined;
    if (!this.committed) this.records.push(key);
    this.stats.cached++;
    return decodeRecord(bytes, `cache record ${key}`);
  }

  private async store(key: string, record: LayerRecord): Promise<LayerRecord> {
    await this.invalidate();
    try {
      await this.options.cache.writeRecord(key, encodeRecord(record));
    } catch (e) {
      if (!(e instanceof FluxError && e.code === 'quota-exceeded')) throw e;
      // Nothing half-written: this load's records go too, the source still works without the cache.
      for (const k of this.written) await this.options.cache.deleteRecord(k);
      const needed = storedBytesEstimate(this.plan, this.config);
      const estimate = await this.options.cache.estimate().catch(() => undefined);
      const room = estimate ? ` (${formatBytes(estimate.usage)} of the ${formatBytes(estimate.quota)} quota in use)` : '';
      throw new FluxError(
        'quota-exceeded',
        `caching ${this.options.label} (${this.options.precision}) needs about ${formatBytes(needed)} (${needed} bytes) of browser storage, more than is free${room}; delete cached models, grant persistent storage, or load without the cache`,
        { cause: e },
      );
    }
    this.written.push(key);
    if (!this.committed) this.records.push(key);
    this.stats.built++;
    return record;
  }

  private async invalidate(): Promise<void> {
    if (!this.entryValid || this.committed) return;
    this.entryValid = false;
    await this.options.cache.dropModel(this.key);
  }
}
