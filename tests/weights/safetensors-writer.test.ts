import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeSafetensorsStreamed } from '../../src/cli/quantize.ts';
import { openFileSource } from '../../src/platform/node.ts';
import { FluxError } from '../../src/errors.ts';
import { DTYPE_BYTES, type Dtype } from '../../src/weights/dtypes.ts';
import { SafetensorsFile } from '../../src/weights/safetensors.ts';
import { encodeSafetensors, SafetensorsStreamWriter, type TensorToWrite } from '../../src/weights/safetensors-writer.ts';
import { blobSource } from '../../src/weights/sources.ts';

/** Bytes 0, 1, 2, ... so every tensor's content is distinct and checkable. */
function counting(length: number, start: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (start + i) & 0xff);
}

function open(bytes: Uint8Array<ArrayBuffer>): Promise<SafetensorsFile> {
  return SafetensorsFile.open(blobSource(new Blob([bytes]), 'written.safetensors'));
}

describe('encodeSafetensors', () => {
  // One tensor per dtype, smallest elements first, so the writer has to reorder them to keep alignment.
  const tensors: TensorToWrite[] = (['U8', 'I8', 'BF16', 'F16', 'I32', 'F32', 'I64'] as Dtype[]).map((dtype, i) => {
    const shape = [3, i + 1];
    return { name: `t.${dtype}`, dtype, shape, data: counting(3 * (i + 1) * DTYPE_BYTES[dtype], 17 * i) };
  });

  it('round-trips every dtype, with metadata, aligned', async () => {
    const bytes = encodeSafetensors(tensors, { format: 'pt', note: 'round trip' });
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(headerLength % 8).toBe(0);
    const file = await open(bytes);
    expect(file.metadata).toEqual({ format: 'pt', note: 'round trip' });
    expect(new Set(file.names())).toEqual(new Set(tensors.map((t) => t.name)));
    for (const t of tensors) {
      const info = file.info(t.name);
      expect(info.offset % DTYPE_BYTES[t.dtype]).toBe(0);
      const read = await file.readTensor(t.name);
      expect(read.dtype).toBe(t.dtype);
      expect(read.shape).toEqual(t.shape);
      expect(read.data).toEqual(t.data);
    }
    // Contiguous: the last tensor ends at the end of the file.
    const last = file.info(file.names().at(-1)!);
    expect(last.offset + last.byteLength).toBe(bytes.byteLength);
  });

  it('pads the header with spaces', () => {
    const bytes = encodeSafetensors([{ name: 'x', dtype: 'U8', shape: [1], data: new Uint8Array([5]) }]);
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
    expect(header).toMatch(/^\{.*\} *$/);
    expect(JSON.parse(header)).toEqual({ x: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } });
  });

  it('writes scalars and empty tensors', async () => {
    const file = await open(
      encodeSafetensors([
        { name: 'scalar', dtype: 'F32', shape: [], data: new Uint8Array(new Float32Array([0.25]).buffer) },
        { name: 'empty', dtype: 'F16', shape: [0, 4], data: new Uint8Array(0) },
      ]),
    );
    expect(Array.from(await file.readFloat32('scalar'))).toEqual([0.25]);
    expect(file.info('empty')).toMatchObject({ shape: [0, 4], byteLength: 0 });
  });

  it('rejects wrong data lengths and repeated or reserved names', () => {
    const one = { name: 'a', dtype: 'F32' as const, shape: [2], data: new Uint8Array(8) };
    expect(() => encodeSafetensors([{ ...one, data: new Uint8Array(7) }])).toThrow(/"a" F32 \[2\] needs 8 bytes, got 7/);
    expect(() => encodeSafetensors([one, one])).toThrow(FluxError);
    expect(() => encodeSafetensors([{ ...one, name: '__metadata__' }])).toThrow(/reserved or repeated/);
  });
});

describe('streamed safetensors', () => {
  it('SafetensorsStreamWriter: tensors go to the sink one by one, in order; the header describes them', async () => {
    const written: Uint8Array[] = [];
    const writer = new SafetensorsStreamWriter({ write: async (b) => void written.push(b.slice()) });
    const tensors: TensorToWrite[] = [
      { name: 'b', dtype: 'BF16', shape: [3], data: counting(6, 1) },
      { name: 'u', dtype: 'U32', shape: [2, 2], data: counting(16, 50) },
    ];
    for (const t of tensors) await writer.add(t);
    expect(written).toEqual(tensors.map((t) => t.data));
    expect(writer.dataBytes).toBe(22);
    await expect(writer.add(tensors[0]!)).rejects.toThrow(/reserved or repeated/);
    const header = writer.header({ format: 'x' });
    const file = await open(new Uint8Array([...header, ...written.flat().flatMap((b) => [...b])]) as Uint8Array<ArrayBuffer>);
    expect(file.metadata).toEqual({ format: 'x' });
    expect(file.names()).toEqual(['b', 'u']);
    for (const t of tensors) expect((await file.readTensor(t.name)).data).toEqual(t.data);
  });

  it('writeSafetensorsStreamed writes the file whole or not at all', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flux-w4a4-stream-'));
    try {
      const path = join(dir, 'out.safetensors');
      const size = await writeSafetensorsStreamed(path, async (w) => {
        await w.add({ name: 't', dtype: 'F32', shape: [4], data: counting(16, 3) });
        return { k: 'v' };
      });
      const file = await SafetensorsFile.open(await openFileSource(path));
      expect(file.metadata).toEqual({ k: 'v' });
      expect((await file.readTensor('t')).data).toEqual(counting(16, 3));
      await file.close();
      expect((await stat(path)).size).toBe(size);
      const failing = join(dir, 'failing.safetensors');
      await expect(
        writeSafetensorsStreamed(failing, async (w) => {
          await w.add({ name: 't', dtype: 'U8', shape: [1], data: new Uint8Array(1) });
          throw new Error('source broke');
        }),
      ).rejects.toThrow('source broke');
      expect((await readdir(dir)).sort()).toEqual(['out.safetensors']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
