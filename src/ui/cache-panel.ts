/**
 * The weight cache section: cached models with their sizes, delete, clear, the storage estimate and the
 * persistence request. Written against the shape of `WeightCache` (src/weights/cache.ts, the weight store):
 * until a store is given, only the browser's storage estimate and persistence are shown.
 */
import { formatBytes } from '../gpu/buffers.ts';

export interface CachedModelEntry {
  readonly key: string;
  readonly label: string;
  readonly bytes: number;
  readonly createdAt: number;
  readonly precision: string;
}

/** What the panel needs of the weight store. */
export interface ModelCacheStore {
  list(): Promise<readonly CachedModelEntry[]>;
  delete(key: string): Promise<void>;
  clear(): Promise<void>;
  estimate(): Promise<{ readonly usage: number; readonly quota: number } | undefined>;
  persist(): Promise<boolean>;
}

const $ = <T extends HTMLElement>(selector: string) => document.querySelector<T>(selector)!;

/** The browser's own storage calls: estimate and persistence work before (and without) a weight store. */
const browserStorage: Pick<ModelCacheStore, 'estimate' | 'persist'> = {
  async estimate() {
    const e = await navigator.storage?.estimate?.();
    return e && { usage: e.usage ?? 0, quota: e.quota ?? 0 };
  },
  async persist() {
    return (await navigator.storage?.persist?.()) ?? false;
  },
};

export class CachePanel {
  constructor(
    private readonly store: ModelCacheStore | undefined,
    private readonly onError: (e: unknown) => void,
  ) {
    $('#cache-refresh').addEventListener('click', () => void this.refresh());
    $('#cache-clear').addEventListener('click', () => void this.run(async () => this.store?.clear()));
    $('#cache-persist').addEventListener('click', () => void this.run(async () => {
      const granted = await (this.store ?? browserStorage).persist();
      $('#cache-persist').textContent = granted ? 'Storage is kept (persistent)' : 'Not granted (the browser may evict the cache)';
    }));
    $<HTMLButtonElement>('#cache-clear').disabled = !store;
  }

  private async run(action: () => Promise<unknown>): Promise<void> {
    try {
      await action();
    } catch (e) {
      this.onError(e);
    }
    await this.refresh();
  }

  async refresh(): Promise<void> {
    try {
      const estimate = await (this.store ?? browserStorage).estimate();
      const persisted = (await navigator.storage?.persisted?.()) ?? false;
      $('#cache-storage').textContent = estimate
        ? `This site uses ${formatBytes(estimate.usage)} of ${formatBytes(estimate.quota)} available${persisted ? ' (persistent)' : ''}.`
        : 'This browser does not report storage use.';
      const list = $<HTMLUListElement>('#cache-list');
      if (!this.store) {
        list.replaceChildren(item('Quantized models are cached here once the weight store is available.'));
        return;
      }
      const entries = await this.store.list();
      if (entries.length === 0) {
        list.replaceChildren(item('No cached models yet: a loaded model is cached at its precision.'));
        return;
      }
      list.replaceChildren(...entries.map((entry) => this.entryItem(entry)));
    } catch (e) {
      this.onError(e);
    }
  }

  private entryItem(entry: CachedModelEntry): HTMLLIElement {
    const li = item(`${entry.label} · ${entry.precision} · ${formatBytes(entry.bytes)} · ${new Date(entry.createdAt).toLocaleString()}`);
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.textContent = 'Delete';
    remove.setAttribute('aria-label', `Delete ${entry.label} (${entry.precision}) from the cache`);
    remove.addEventListener('click', () => void this.run(async () => this.store?.delete(entry.key)));
    li.append(' ', remove);
    return li;
  }
}

function item(text: string): HTMLLIElement {
  const li = document.createElement('li');
  li.textContent = text;
  return li;
}
