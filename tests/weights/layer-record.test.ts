import { describe, expect, it } from 'vitest';
import { decodeRecord, encodeRecord, type LayerRecord } from '../../src/weights/layer-record.ts';

const bytes = (...values: number[]) => new Uint8Array(new Float32Array(values).buffer);

describe('layer records', () => {
  it('decode back every tensor of a record (the file is closed only after the last read)', async () => {
    const record: LayerRecord = {
      name: 'transformer_blocks.0.norm1.linear',
      kind: 'float',
      attrs: { note: 'three tensors' },
      tensors: [
        { role: 'weight', dtype: 'F32', shape: [2, 2], data: bytes(1, 2, 3, 4) },
        { role: 'bias', dtype: 'F32', shape: [2], data: bytes(5, 6) },
        { role: 'extra', dtype: 'F32', shape: [1], data: bytes(7) },
      ],
    };
    const decoded = await decodeRecord(encodeRecord(record), 'test record');
    expect(decoded.name).toBe(record.name);
    expect(decoded.attrs).toEqual(record.attrs);
    expect(decoded.tensors.map((t) => [t.role, t.shape, Array.from(new Float32Array(t.data.slice().buffer))])).toEqual([
      ['weight', [2, 2], [1, 2, 3, 4]],
      ['bias', [2], [5, 6]],
      ['extra', [1], [7]],
    ]);
  });
});
