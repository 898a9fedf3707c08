/**
 * The weight cache in the browser, for e2e/cache.test.ts: `window.cacheCheck` loads a tiny model folder served
 * under `?model=<path>` through FluxPipeline.load({ cache }), runs one transformer call and reports its output,
 * the load time and the cache's counts; helpers damage a chunk, abort a load, or make IndexedDB run out of quota.
 */
import { createStore, get, keys, set } from 'idb-keyval';
import { GpuContext } from '../src/gpu/device.ts';
import type { PrecisionPreset } from '../src/model/precision.ts';
import { FluxPipeline } from '../src/pipeline/flux-pipeline.ts';
import { TransformerRunner } from '../src/pipeline/transformer-runner.ts';
import type { FluxInputs } from '../src/model/inputs.ts';
import { WeightCache, type CachedModelInfo } from '../src/weights/cache.ts';
import { openCheckpoint } from '../src/weights/safetensors.ts';

export interface CacheLoadResult {
  readonly out: number[];
  readonly loadMs: number;
  readonly stats: { cached: number; built: number; corrupt: number } | undefined;
}

export interface CacheLoadRequest {
  /** Folder under the server root. */
  readonly model: string;
  /** The transformer file inside transformer/ (default the diffusers index of a sharded folder). */
  readonly transformerFile?: string;
  readonly precision?: PrecisionPreset;
  readonly useCache?: boolean;
  /** Abort after this many load progress events. */
  readonly abortAfter?: number;
  /** Make the IndexedDB put number N (counted from the start of this load) fail with QuotaExceededError. */
  readonly quotaAfterPuts?: number;
}

declare global {
  interface Window {
    cacheCheck?: {
      load(request: CacheLoadRequest): Promise<CacheLoadResult>;
      list(): Promise<CachedModelInfo[]>;
      size(): Promise<number>;
      clear(): Promise<void>;
      /** Flips one bit in the first chunk of a layer record whose key contains `layer`; returns the chunk key. */
      corrupt(layer: string): Promise<string>;
    };
  }
}

const DB_NAME = 'flux-w4a4-e2e-cache';
const cache = new WeightCache({ dbName: DB_NAME });
const raw = createStore(DB_NAME, 'entries');
let gpu: Promise<GpuContext> | undefined;

/** The golden tiny call's inputs (tests/fixtures/flux-tiny-a/forward.safetensors). */
async function goldenInputs(): Promise<FluxInputs> {
  const file = await openCheckpoint(new URL('/tests/fixtures/flux-tiny-a/forward.safetensors', location.origin).href);
  try {
    const read = (name: string) => file.readFloat32(name);
    return {
      img: await read('img'),
      imgIds: await read('img_ids'),
      txt: await read('txt'),
      txtIds: await read('txt_ids'),
      timestep: (await read('timesteps'))[0]!,
      y: await read('y'),
      guidance: file.has('guidance') ? (await read('guidance'))[0] : undefined,
    };
  } finally {
    await file.close();
  }
}

async function load(request: CacheLoadRequest): Promise<CacheLoadResult> {
  const folder = new URL(`${request.model}/`, location.origin).href;
  const at = (path: string) => new URL(path, folder).href;
  const ctx = await (gpu ??= GpuContext.create());
  const controller = new AbortController();
  let events = 0;
  const realPut = IDBObjectStore.prototype.put;
  let puts = 0;
  if (request.quotaAfterPuts !== undefined) {
    const limit = request.quotaAfterPuts;
    IDBObjectStore.prototype.put = function (this: IDBObjectStore, value: unknown, key?: IDBValidKey) {
      if (++puts >= limit) throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
      return realPut.call(this, value, key);
    };
  }
  try {
    const start = performance.now();
    const pipe = await FluxPipeline.load(
      {
        transformer: at(`transformer/${request.transformerFile ?? 'diffusion_pytorch_model.safetensors.index.json'}`),
        transformerConfig: at('transformer/config.json'),
        vae: at('vae/diffusion_pytorch_model.safetensors'),
        vaeConfig: at('vae/config.json'),
        text: { clip: at('text_encoder/model.safetensors'), clipTokenizer: at('tokenizer/'), t5: at('text_encoder_2/model.safetensors'), t5Tokenizer: at('tokenizer_2/') },
      },
      {
        gpu: ctx,
        precision: request.precision,
        cache: request.useCache === false ? undefined : cache,
        signal: controller.signal,
        onProgress: () => {
          if (request.abortAfter !== undefined && ++events >= request.abortAfter) controller.abort();
        },
      },
    );
    const loadMs = performance.now() - start;
    try {
      const inputs = await goldenInputs();
      const runner = new TransformerRunner(pipe.transformer);
      try {
        const { out } = await runner.forward(inputs);
        return { out: Array.from(out), loadMs, stats: pipe.cacheStats };
      } finally {
        runner.dispose();
      }
    } finally {
      pipe.destroy();
    }
  } finally {
    IDBObjectStore.prototype.put = realPut;
  }
}

async function corrupt(layer: string): Promise<string> {
  const key = (await keys<string>(raw)).find((k) => k.startsWith('chunk/') && k.includes(`/${layer}/`) && k.endsWith('/0'));
  if (!key) throw new Error(`no cached chunk of ${layer}`);
  const chunk = (await get<Uint8Array>(key, raw))!;
  chunk[chunk.length >> 1]! ^= 0x01;
  await set(key, chunk, raw);
  return key;
}

window.cacheCheck = { load, list: () => cache.list(), size: () => cache.size(), clear: () => cache.clear(), corrupt };
document.querySelector('#status')!.textContent = 'ready';
