/** The text-tiny-a golden files: ids and reference outputs, and the encoder folders. */
import { openCheckpoint, type TensorReader } from '../../src/weights/safetensors.ts';

export const TEXT_GOLDEN = 'tests/fixtures/text-tiny-a';
export const CLIP_DIR = `${TEXT_GOLDEN}/text_encoder`;
export const T5_DIR = `${TEXT_GOLDEN}/text_encoder_2`;

/** I64 or I32 ids as an Int32Array. */
export async function readIds(file: TensorReader, name: string): Promise<Int32Array> {
  const t = await file.readTensor(name);
  if (t.dtype === 'I32') return new Int32Array(t.data.buffer);
  return Int32Array.from(new BigInt64Array(t.data.buffer), (v) => Number(v));
}

export interface TextGolden {
  readonly t5Ids: Int32Array;
  readonly clipIds: Int32Array;
  readonly t5Hidden: Float32Array;
  readonly clipHidden: Float32Array;
  readonly clipPooled: Float32Array;
}

export async function loadTextGolden(): Promise<TextGolden> {
  const file = await openCheckpoint(`${TEXT_GOLDEN}/encode.safetensors`);
  try {
    return {
      t5Ids: await readIds(file, 't5_input_ids'),
      clipIds: await readIds(file, 'clip_input_ids'),
      t5Hidden: await file.readFloat32('t5_hidden'),
      clipHidden: await file.readFloat32('clip_hidden'),
      clipPooled: await file.readFloat32('clip_pooled'),
    };
  } finally {
    await file.close();
  }
}
