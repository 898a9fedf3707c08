/**
 * Local folders in the browser: the Files of an `<input type=file webkitdirectory>` or of a File System Access
 * directory handle, mounted (sources.ts mountFiles) under a fresh folder name, so `FluxPipeline.load(folder.location)`
 * reads a diffusers folder or the reference single files from disk in place, like a path.
 */
import { FluxError } from '../errors.ts';
import { mountFiles } from './sources.ts';

export interface LocalFolder {
  /** Pass this where a folder path is expected (FluxPipeline.load, openCheckpoint, readJson, sibling). */
  readonly location: string;
  /** Relative paths ('transformer/config.json') of the files, sorted. */
  readonly paths: readonly string[];
  /** Forgets the files; locations under it no longer open. */
  unmount(): void;
}

/** Mount points are unique, so two picks of folders with the same name never see each other's files. */
const MOUNT_PREFIX = 'local-folder-';
let nextId = 1;

/** 'a//b/./c/' → 'a/b/c'; '..' is refused (a location never leaves its folder). */
function normalize(path: string): string {
  const parts = path.split(/[/\\]+/).filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new FluxError('bad-argument', `${path}: ".." is not allowed in a folder path`);
  return parts.join('/');
}

/** Mounts files by path relative to a new folder. */
function mountFolder(files: readonly (readonly [path: string, file: Blob])[]): LocalFolder {
  const root = `${MOUNT_PREFIX}${nextId++}`;
  const relative = files.map(([path, file]) => [normalize(path), file] as const);
  const unmount = mountFiles(relative.map(([path, file]) => [`${root}/${path}`, file] as const));
  return { location: `${root}/`, paths: relative.map(([path]) => path).sort(), unmount };
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
  return mountFolder(list.map((f, i) => [(underRoot ? relative[i]!.slice(1) : relative[i]!).join('/'), f] as const));
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
  return mountFolder(files);
}
