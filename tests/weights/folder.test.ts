/** Local folders as the browser gives them (Files with relative paths, directory handles), mounted as locations. */
import { copyFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyFlux } from '../../scripts/make-tiny-flux.ts';
import { resolvePipelineSource } from '../../src/pipeline/flux-pipeline.ts';
import { openTransformerCheckpoint } from '../../src/pipeline/load.ts';
import { folderFromDirectoryHandle, folderFromFiles, type DirectoryHandleLike } from '../../src/weights/folder.ts';
import { openCheckpoint } from '../../src/weights/safetensors.ts';
import { readJson } from '../../src/weights/sources.ts';
import { BFL_TRANSFORMER } from '../model/helpers.ts';
import { sameBytes } from './helpers.ts';

let dir: string;
let files: File[];

async function listFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(root, join(e.parentPath, e.name)));
}

/** Files as `<input webkitdirectory>` gives them: each with its path from the chosen folder's own name. */
async function pickedFiles(root: string, folderName: string): Promise<File[]> {
  return Promise.all(
    (await listFiles(root)).map(async (path) => {
      const file = new File([await readFile(join(root, path))], path.split('/').pop()!);
      Object.defineProperty(file, 'webkitRelativePath', { value: `${folderName}/${path}` });
      return file;
    }),
  );
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tiny-folder-'));
  await makeTinyFlux(dir);
  files = await pickedFiles(dir, 'FLUX.1-tiny');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('local folder sources', () => {
  it('a webkitdirectory pick loads as a diffusers folder: same components, configs and tensor bytes as the path', async () => {
    const folder = folderFromFiles(files);
    try {
      expect(folder.paths).toContain('transformer/config.json');
      expect(folder.paths.every((p) => !p.startsWith('FLUX.1-tiny'))).toBe(true);
      const resolved = await resolvePipelineSource(folder.location);
      expect(resolved.transformer).toBe(`${folder.location}transformer`);
      expect(await readJson(`${folder.location}model_index.json`)).toEqual(await readJson(join(dir, 'model_index.json')));
      const fromFolder = await openTransformerCheckpoint(resolved.transformer);
      const fromPath = await openTransformerCheckpoint(join(dir, 'transformer'));
      try {
        expect(fromFolder.config).toEqual(fromPath.config);
        expect(fromFolder.reader.names()).toEqual(fromPath.reader.names());
        for (const name of fromPath.reader.names()) {
          expect(sameBytes((await fromFolder.reader.readTensor(name)).data, (await fromPath.reader.readTensor(name)).data), name).toBe(true);
        }
      } finally {
        await fromFolder.close();
        await fromPath.close();
      }
      const vae = await openCheckpoint(resolved.vae);
      expect(vae.names().length).toBeGreaterThan(0);
      await vae.close();
    } finally {
      folder.unmount();
    }
    await expect(readJson(`${folder.location}model_index.json`)).rejects.toMatchObject({ code: 'io' });
  });

  it('a directory handle (File System Access) walks subfolders; missing files are io errors', async () => {
    const handle = (path: string): DirectoryHandleLike => ({
      kind: 'directory',
      name: path.split('/').pop()!,
      async *values() {
        for (const entry of await readdir(join(dir, path), { withFileTypes: true })) {
          const sub = path ? `${path}/${entry.name}` : entry.name;
          if (entry.isDirectory()) yield handle(sub);
          else yield { kind: 'file' as const, name: entry.name, getFile: async () => new File([await readFile(join(dir, sub))], entry.name) };
        }
      },
    });
    const folder = await folderFromDirectoryHandle(handle(''));
    try {
      expect(folder.paths).toEqual((await listFiles(dir)).sort());
      const reader = await openCheckpoint(`${folder.location}vae`);
      expect(reader.names().length).toBeGreaterThan(0);
      await reader.close();
      await expect(readJson(`${folder.location}nope.json`)).rejects.toMatchObject({ code: 'io' });
    } finally {
      folder.unmount();
    }
  });

  it('a folder with the reference single files (flux1-dev.safetensors, ae.safetensors) uses them for transformer and VAE', async () => {
    const single = await mkdtemp(join(tmpdir(), 'flux-single-'));
    try {
      await writeFile(join(single, 'model_index.json'), '{"_class_name": "FluxPipeline"}');
      await copyFile(BFL_TRANSFORMER, join(single, 'flux1-dev.safetensors'));
      await copyFile(join(dir, 'vae/diffusion_pytorch_model.safetensors'), join(single, 'ae.safetensors'));
      const fromPath = await resolvePipelineSource(single);
      expect([fromPath.transformer, fromPath.vae]).toEqual([join(single, 'flux1-dev.safetensors'), join(single, 'ae.safetensors')]);
      const folder = folderFromFiles(await pickedFiles(single, 'FLUX.1-dev'));
      try {
        const resolved = await resolvePipelineSource(folder.location);
        expect([resolved.transformer, resolved.vae]).toEqual([`${folder.location}flux1-dev.safetensors`, `${folder.location}ae.safetensors`]);
        const checkpoint = await openTransformerCheckpoint(resolved.transformer);
        expect(checkpoint.plan.layout.kind).toBe('bfl');
        await checkpoint.close();
      } finally {
        folder.unmount();
      }
    } finally {
      await rm(single, { recursive: true, force: true });
    }
  });
});
