/**
 * Re-encoded copies of the golden text encoders for loader tests: another dtype, the embedding under another
 * name, shards with an index, an edited config.
 */
import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromFloat32, type FloatDtype } from '../../src/weights/dtypes.ts';
import { encodeSafetensors, type TensorToWrite } from '../../src/weights/safetensors-writer.ts';
import { openCheckpoint } from '../../src/weights/safetensors.ts';

export interface VariantOptions {
  readonly dtype: FloatDtype;
  /** Tensor renames (from → to). */
  readonly rename?: Readonly<Record<string, string>>;
  /** Split the tensors over this many shards behind model.safetensors.index.json. */
  readonly shards?: number;
  /** config.json fields to override. */
  readonly config?: Readonly<Record<string, unknown>>;
}

/** A temporary encoder folder made from `folder` (config.json + model.safetensors). */
export async function encoderVariant(folder: string, options: VariantOptions): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'text-encoder-'));
  const reader = await openCheckpoint(folder);
  const tensors: TensorToWrite[] = [];
  for (const name of reader.names()) {
    const { shape } = reader.info(name);
    tensors.push({ name: options.rename?.[name] ?? name, dtype: options.dtype, shape, data: fromFloat32(await reader.readFloat32(name), options.dtype) });
  }
  await reader.close();
  const shards = options.shards ?? 1;
  if (shards === 1) await writeFile(join(dir, 'model.safetensors'), encodeSafetensors(tensors));
  else {
    const weightMap: Record<string, string> = {};
    const per = Math.ceil(tensors.length / shards);
    for (let s = 0; s < shards; s++) {
      const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      const part = tensors.slice(s * per, (s + 1) * per);
      for (const t of part) weightMap[t.name] = file;
      await writeFile(join(dir, file), encodeSafetensors(part));
    }
    await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  }
  if (options.config) {
    const config = JSON.parse(await readFile(join(folder, 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, ...options.config }));
  } else await copyFile(join(folder, 'config.json'), join(dir, 'config.json'));
  return dir;
}
