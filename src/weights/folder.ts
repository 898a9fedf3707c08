/**
 * Local folders in the browser: the Files of an `<input type=file webkitdirectory>` or of a File System Access
 * directory handle, mounted under a location string (`local-folder://<id>/`) that every loader accepts like a
 * path, so `FluxPipeline.load(folder.location)` reads a diffusers folder or the reference single files from disk
 * without uploading anything. openSource resolves such locations to Blob slices (src/weights/sources.ts).
 */
import { FluxError } from '../errors.ts';

export const FOLDER_SCHEME = 'local-folder://';

export interface LocalFolder {
  /** Pass this where a folder path is expected (FluxPipeline.load, openCheckpoint, readJson, sibling). */
  readonly location: string;
  /** Relative paths ('transformer/config.json') of the files, sorted. */
  readonly paths: readonly string[];
  /** Forgets the files; locations under it no longer open. */
  unmount(): void;
}

const mounted = new Map<string, ReadonlyMap<string, Blob>>();
let nextId = 1;

/** 'a//b/./c/' → 'a/b/c'; '..' is refused (a location never leaves its folder). */
function normalize(path: string): string {
  const parts = path.split(/[/\\]+/).filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new FluxError('bad-argument', `${path}: ".." is not allowed in a folder path`);
  return parts.join('/');
}

/** Mounts files by relative path. */
export function mountFiles(files: Iterable<readonly [path: string, file: Blob]>): LocalFolder {
  const map = new Map<string, Blob>();
  for (const [path, file] of files) map.set(normalize(path), file);
  const id = String(nextId++);
  mounted.set(id, map);
  return {
    location: `${FOLDER_SCHEME}${id}/`,
    paths: [...map.keys()].sort(),
    unmount: () => void mounted.delete(id),
  };
}

/**
 * The Files of `<input type=file webkitdirectory>` (or a drop of a folder): each carries its path from the chosen
 * folder itself (`FLUX.1-dev/transformer/config.json`), whose first part is dropped so the folder is the root.
 */
export function folderFromFiles(files: Iterable<File> | ArrayLike<File>): LocalFolder {
  const list = Array.from(files as ArrayLike<File>);
  const relative = list.map((f) => (f.webkitRelativePath || f.name).split('/'));
  // Strip the chosen folder's own name when every file is under it.
  const root = relative[0]?.[0];
  const underRoot = relative.length > 0 && relative.every((parts) => parts.length > 1 && parts[0] === root);
  return mountFiles(list.map((f, i) => [(underRoot ? relative[i]!.slice(1) : relative[i]!).join('/'), f] as const));
}

/** What the File System Access API's directory handle offers (typed here: not every DOM lib version has it). */
export interface DirectoryHandleLike {
  readonly kind: 'directory';
  readonly name: string;
  values(): AsyncIterable<DirectoryHandleLike | { readonly kind: 'file'; readonly name: string; getFile(): Promise<File> }>;
}

/** A directory picked with `showDirectoryPicker()` (where the browser has it), walked recursively. */
export async function folderFromDirectoryHandle(handle: DirectoryHandleLike): Promise<LocalFolder> {
  const files: [string, Blob][] = [];
  const walk = async (dir: DirectoryHandleLike, prefix: string): Promise<void> => {
    for await (const entry of dir.values()) {
      if (entry.kind === 'directory') await walk(entry, `${prefix}${entry.name}/`);
      else files.push([`${prefix}${entry.name}`, await entry.getFile()]);
    }
  };
  await walk(handle, '');
  return mountFiles(files);
}

export function isFolderLocation(location: string): boolean {
  return location.startsWith(FOLDER_SCHEME);
}

/** The file a mounted location names; FluxError 'io' (like a missing path) when there is none. */
export function folderFile(location: string): Blob {
  const rest = location.slice(FOLDER_SCHEME.length);
  const slash = rest.indexOf('/');
  const id = slash < 0 ? rest : rest.slice(0, slash);
  const files = mounted.get(id);
  if (!files) throw new FluxError('io', `${location}: the folder is not mounted (unmounted, or from another page)`);
  const file = files.get(normalize(slash < 0 ? '' : rest.slice(slash + 1)));
  if (!file) throw new FluxError('io', `${location}: no such file in the chosen folder`);
  return file;
}
