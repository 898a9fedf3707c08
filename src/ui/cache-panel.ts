/**
 * The weight cache section: cached models with their sizes, load (for sources the page remembers), delete,
 * clear, the storage estimate and the persistence request, over `WeightCache` (src/weights/cache.ts).
 */
import { formatBytes } from '../gpu/buffers.ts';
import type { CachedModelInfo, WeightCache } from '../weights/cache.ts';

const $ = <T extends HTMLElement>(selector: string) => document.querySelector<T>(selector)!;

/**
 * Cache entries name their source by label only, so the page remembers which URL each (label, precision) came
 * from to offer loading it again (a picked folder cannot be reopened without the user).
 */
const REMEMBERED_SOURCES = 'flux-w4a4.cached-sources';

function remembered(): Record<string, string> {
  try {
    return JSON.parse(localStorage.getItem(REMEMBERED_SOURCES) ?? '{}') as Record<string, string>;
  } catch {
    return {};
  }
}

const entryId = (label: string, precision: string) => `${label}\n${precision}`;

/** Remembers that the cache entry of `label` at `precision` was loaded from `url`. */
export function rememberCachedSource(label: string, precision: string, url: string): void {
  localStorage.setItem(REMEMBERED_SOURCES, JSON.stringify({ ...remembered(), [entryId(label, precision)]: url }));
}

/** Opens the browser's weight cache, or undefined where IndexedDB is missing (the panel says so). */
export function openWeightCache(construct: () => WeightCache): WeightCache | undefined {
  try {
    return construct();
  } catch {
    return undefined;
  }
}

export class CachePanel {
  constructor(
    private readonly cache: WeightCache | undefined,
    private readonly onError: (e: unknown) => void,
    /** Loads a remembered source at a cached precision. */
    private readonly onLoad: (url: string, precision: string) => void,
  ) {
    $('#cache-refresh').addEventListener('click', () => void this.refresh());
    $('#cache-clear').addEventListener('click', () => void this.run(async () => this.cache?.clear()));
    $('#cache-persist').addEventListener('click', () =>
      void this.run(async () => {
        const granted = (await this.cache?.persist()) ?? false;
        $('#cache-persist').textContent = granted ? 'Storage is kept (persistent)' : 'Not granted (the browser may evict the cache)';
      }),
    );
    $<HTMLButtonElement>('#cache-clear').disabled = !cache;
    $<HTMLButtonElement>('#cache-persist').disabled = !cache;
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
    const list = $<HTMLUListElement>('#cache-list');
    if (!this.cache) {
      $('#cache-storage').textContent = 'This browser has no IndexedDB here (private window?): models load from their source each time.';
      list.replaceChildren();
      return;
    }
    try {
      const estimate = await this.cache.estimate();
      const persisted = (await navigator.storage?.persisted?.()) ?? false;
      $('#cache-storage').textContent = estimate
        ? `This site uses ${formatBytes(estimate.usage)} of ${formatBytes(estimate.quota)} available${persisted ? ' (persistent)' : ''}.`
        : 'This browser does not report storage use.';
      const entries = await this.cache.list();
      list.replaceChildren(...(entries.length === 0 ? [item('No cached models yet: a loaded model is cached at its precision.')] : entries.map((e) => this.entryItem(e))));
    } catch (e) {
      this.onError(e);
    }
  }

  private entryItem(entry: CachedModelInfo): HTMLLIElement {
    const li = item(`${entry.label} · ${entry.precision} · ${formatBytes(entry.bytes)} · ${new Date(entry.createdAt).toLocaleString()}`);
    li.dataset.key = entry.key;
    const url = remembered()[entryId(entry.label, entry.precision)];
    if (url) li.append(' ', button('Load', `Load ${entry.label} (${entry.precision}) from the cache`, () => this.onLoad(url, entry.precision)));
    li.append(' ', button('Delete', `Delete ${entry.label} (${entry.precision}) from the cache`, () => void this.run(async () => this.cache?.delete(entry.key))));
    return li;
  }
}

function item(text: string): HTMLLIElement {
  const li = document.createElement('li');
  li.textContent = text;
  return li;
}

function button(text: string, label: string, onClick: () => void): HTMLButtonElement {
  const b = Object.assign(document.createElement('button'), { type: 'button', textContent: text });
  b.setAttribute('aria-label', label);
  b.addEventListener('click', onClick);
  return b;
}
