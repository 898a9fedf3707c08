/**
 * The transformer through the weight cache (fake-indexeddb): the second load reads every record without
 * opening the source and gives bit-identical outputs; a corrupt chunk is rebuilt from the source; an aborted
 * load leaves no model entry; running out of quota gives the clear message and leaves nothing behind; a layer
 * swap stores only that layer and reuses it when swapped again.
 */
import 'fake-indexeddb/auto';
import { createStore, get, keys, set } from 'idb-keyval';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { FluxError } from '../../src/errors.ts';
import { CachedTransformer, type CachedTransformerOptions } from '../../src/model/cached-weights.ts';
import type { FluxInputs } from '../../src/model/inputs.ts';
import { makeQuantPlan, type PrecisionPreset } from '../../src/model/precision.ts';
import { FluxTransformer } from '../../src/model/transformer.ts';
import { sourceWeights } from '../../src/model/weight-loader.ts';
import { openTransformerWeights } from '../../src/pipeline/load.ts';
import { TransformerRunner } from '../../src/pipeline/transformer-runner.ts';
import { WeightCache } from '../../src/weights/cache.ts';
import { testGpu } from '../helpers/gpu.ts';
import { DIFFUSERS_TRANSFORMER, loadTinyGolden } from './helpers.ts';

const PRESET: PrecisionPreset = 'mixed';
let inputs: FluxInputs;
let dbCount = 0;
/** GPU quantization on SwiftShader, on a shared machine. */
const SLOW = 900_000;

beforeAll(async () => {
  ({ inputs } = await loadTinyGolden());
});

function setup(): { cache: WeightCache; raw: ReturnType<typeof createStore>; options: CachedTransformerOptions; opens: () => number } {
  const dbName = `cached-weights-${dbCount++}`;
  // Small chunks, so every layer spans several.
  const cache = new WeightCache({ dbName, chunkBytes: 4096 });
  let opens = 0;
  const options: CachedTransformerOptions = {
    cache,
    identity: DIFFUSERS_TRANSFORMER,
    label: 'flux-tiny-a',
    precision: PRESET,
    open: async () => {
      opens++;
      return openTransformerWeights(await testGpu(), DIFFUSERS_TRANSFORMER, undefined, { preset: PRESET });
    },
    plan: (config) => makeQuantPlan(config, { preset: PRESET }),
  };
  return { cache, raw: createStore(dbName, 'entries'), options, opens: () => opens };
}

/** Loads through the cache, commits, and returns the transformer with the cache's stats. */
async function load(options: CachedTransformerOptions, onLayer?: (done: number) => void): Promise<{ model: FluxTransformer; cached: CachedTransformer }> {
  const ctx = await testGpu();
  const cached = await CachedTransformer.open(ctx, options);
  try {
    const model = await FluxTransformer.load(ctx, cached, { quant: cached.plan, onProgress: (p) => onLayer?.(p.done) });
    await cached.commit();
    return { model, cached };
  } finally {
    await cached.close();
  }
}

async function forward(model: FluxTransformer): Promise<Uint32Array> {
  const runner = new TransformerRunner(model);
  try {
    const { out } = await runner.forward(inputs);
    return new Uint32Array(out.buffer, out.byteOffset, out.length);
  } finally {
    runner.dispose();
  }
}

describe('the transformer through the weight cache (flux-tiny-a, mixed)', () => {
  it('loads from the cache alone the second time, bit-identically; a corrupt chunk is rebuilt from the source', async () => {
    const { cache, raw, options, opens } = setup();
    const first = await load(options);
    const records = first.cached.stats.built;
    expect(first.cached.stats).toEqual({ cached: 0, built: records, corrupt: 0 });
    const firstOut = await forward(first.model);
    first.model.destroy();
    const [entry] = await cache.list();
    expect(entry).toMatchObject({ label: 'flux-tiny-a', precision: PRESET });
    expect(entry!.bytes).toBeGreaterThan(0);
    expect(opens()).toBe(1);

    const second = await load(options);
    expect(second.cached.stats).toEqual({ cached: records, built: 0, corrupt: 0 });
    expect(opens()).toBe(1);
    expect(await forward(second.model)).toEqual(firstOut);
    second.model.destroy();

    // Flip a byte of one chunk of a quantized layer.
    const chunkKey = (await keys<string>(raw)).find((k) => k.startsWith('chunk/') && k.includes('/transformer_blocks.0.attn.to_q/int4'))!;
    const chunk = (await get<Uint8Array>(chunkKey, raw))!;
    chunk[0]! ^= 0x10;
    await set(chunkKey, chunk, raw);
    const third = await load(options);
    expect(third.cached.stats).toEqual({ cached: records - 1, built: 1, corrupt: 1 });
    expect(opens()).toBe(2);
    expect(await forward(third.model)).toEqual(firstOut);
    third.model.destroy();
    // The entry was written again and is whole.
    expect((await cache.list()).length).toBe(1);
    const fourth = await load(options);
    expect(fourth.cached.stats).toEqual({ cached: records, built: 0, corrupt: 0 });

    // A layer swap stores that layer at the new precision once, then reads it back.
    const slot = fourth.model.layers().get('transformer_blocks.0.attn.to_q')!;
    await slot.rebuild('int8', sourceWeights(fourth.cached));
    expect(fourth.cached.stats).toMatchObject({ built: 1 });
    await slot.rebuild('int4', sourceWeights(fourth.cached));
    await slot.rebuild('int8', sourceWeights(fourth.cached));
    expect(fourth.cached.stats).toEqual({ cached: records + 2, built: 1, corrupt: 0 });
    await fourth.cached.close();
    fourth.model.destroy();
    // The swap did not disturb the entry.
    expect((await load(options)).cached.stats).toEqual({ cached: records, built: 0, corrupt: 0 });
  }, SLOW);

  it('an aborted load leaves no entry; out of quota gives the bytes needed and leaves nothing', async () => {
    const { cache, options } = setup();
    const stop = new Error('aborted');
    await expect(
      load(options, (done) => {
        if (done === 5) throw stop;
      }),
    ).rejects.toBe(stop);
    expect(await cache.list()).toEqual([]);
    // The records written so far are reused by the next load.
    const resumed = await load(options);
    expect(resumed.cached.stats.cached).toBeGreaterThan(0);
    resumed.model.destroy();

    const full = setup();
    const real = IDBObjectStore.prototype.put;
    let puts = 0;
    vi.spyOn(IDBObjectStore.prototype, 'put').mockImplementation(function (this: IDBObjectStore, value: unknown, key?: IDBValidKey) {
      if (++puts === 40) throw new DOMException('quota', 'QuotaExceededError');
      return real.call(this, value, key);
    });
    const error = await load(full.options).catch((e: unknown) => e);
    vi.restoreAllMocks();
    expect(error).toBeInstanceOf(FluxError);
    expect((error as FluxError).code).toBe('quota-exceeded');
    expect((error as FluxError).message).toMatch(/^caching flux-tiny-a \(mixed\) needs about [\d.]+ MiB \(\d+ bytes\) of browser storage, more than is free/);
    expect(await full.cache.list()).toEqual([]);
    expect(await full.cache.size()).toBe(0);
    expect(await keys(full.raw)).toEqual([]);
  }, SLOW);
});
