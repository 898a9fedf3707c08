/**
 * Where the demo page loads a model from: the embedded demo model (served with the page), a diffusers folder
 * at a URL, or a folder picked on this computer (its files mounted so the engine reads them as paths), with the
 * byte total the loading meter needs for its ETA.
 */
import { FluxError } from '../errors.ts';
import { sibling } from '../weights/safetensors.ts';
import { mountFiles, readJson } from '../weights/sources.ts';

export type ModelChoice = { readonly kind: 'demo' } | { readonly kind: 'url'; readonly url: string } | { readonly kind: 'folder'; readonly files: readonly File[] };

export interface ResolvedModel {
  /** What FluxPipeline.load takes: a folder URL or a (mounted) folder path. */
  readonly location: string;
  readonly label: string;
  readonly isDemo: boolean;
  /** The folder URL, for URL sources (the page offers to reload cached entries from it). */
  readonly url?: string;
  /** What names the source's weights in the weight cache (default: the transformer location). */
  readonly cacheIdentity?: string;
  /** Bytes of the weight files, when known (for the ETA). */
  readonly totalBytes: number | undefined;
  /** Unmounts a picked folder's files once the model is loaded or given up. */
  release(): void;
}

/** Served from public/ by Vite (and copied into the build), so the page works with no download. */
export const DEMO_MODEL_PATH = 'models/flux-demo/';

/** The weight files of the components FluxPipeline reads, as a diffusers folder names them. */
const WEIGHT_FILES: readonly (readonly [folder: string, stem: string])[] = [
  ['transformer', 'diffusion_pytorch_model'],
  ['vae', 'diffusion_pytorch_model'],
  ['text_encoder', 'model'],
  ['text_encoder_2', 'model'],
];

/** Size of one component's weights over HTTP: a shard index's metadata.total_size, or the file's Content-Length. */
async function remoteComponentBytes(folder: string, stem: string): Promise<number | undefined> {
  try {
    const index = (await readJson(sibling(folder, `${stem}.safetensors.index.json`))) as { metadata?: { total_size?: unknown } };
    const total = Number(index.metadata?.total_size);
    return Number.isFinite(total) ? total : undefined;
  } catch {
    const head = await fetch(sibling(folder, `${stem}.safetensors`), { method: 'HEAD' }).catch(() => undefined);
    const length = head?.ok ? Number(head.headers.get('Content-Length')) : NaN;
    return Number.isFinite(length) ? length : undefined;
  }
}

async function remoteBytes(url: string): Promise<number | undefined> {
  const sizes = await Promise.all(WEIGHT_FILES.map(([folder, stem]) => remoteComponentBytes(sibling(url, folder), stem)));
  return sizes.every((s) => s !== undefined) ? sizes.reduce((a, b) => a + b, 0) : undefined;
}

function folderUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text, location.href);
  } catch {
    throw new FluxError('bad-argument', `"${text}" is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new FluxError('bad-argument', `${text}: use an http or https URL`);
  return url.href.endsWith('/') ? url.href : `${url.href}/`;
}

export function demoModelUrl(): string {
  return new URL(`${import.meta.env.BASE_URL}${DEMO_MODEL_PATH}`, location.href).href;
}

export async function resolveModel(choice: ModelChoice): Promise<ResolvedModel> {
  if (choice.kind === 'demo' || choice.kind === 'url') {
    const url = choice.kind === 'demo' ? demoModelUrl() : folderUrl(choice.url);
    const label = choice.kind === 'demo' ? 'Embedded demo model (small, trained on flat shapes)' : url;
    return { location: url, url, label, isDemo: choice.kind === 'demo', totalBytes: await remoteBytes(url), release: () => {} };
  }
  const files = choice.files;
  const root = files[0]?.webkitRelativePath.split('/')[0];
  if (!root) throw new FluxError('bad-argument', 'pick a folder (a diffusers FLUX.1 folder holding model_index.json)');
  if (!files.some((f) => f.webkitRelativePath === `${root}/model_index.json`)) {
    throw new FluxError('io', `${root}: not a diffusers FLUX folder (no model_index.json at its top level)`);
  }
  const unmount = mountFiles(files.map((f) => [f.webkitRelativePath, f] as const));
  const weightFolders = WEIGHT_FILES.map(([folder]) => `${root}/${folder}/`);
  const isWeightFile = (f: File) => f.name.endsWith('.safetensors') && weightFolders.some((folder) => f.webkitRelativePath.startsWith(folder));
  const totalBytes = files.filter(isWeightFile).reduce((n, f) => n + f.size, 0);
  // Two picked folders of one name are told apart by their weights' size.
  const cacheIdentity = `local folder ${root} (${totalBytes} bytes of weights)`;
  return { location: root, label: `${root} (local folder)`, isDemo: false, totalBytes, cacheIdentity, release: unmount };
}
