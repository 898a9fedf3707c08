/** Builds a safetensors file in memory (CLI outputs, test fixtures). */
import { FluxError } from '../errors.ts';
import { DTYPE_BYTES, type Dtype } from './dtypes.ts';

export interface TensorToWrite {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  /** Little-endian, row-major bytes. */
  readonly data: Uint8Array;
}

const HEADER_LENGTH_BYTES = 8;
/** The format recommends padding the header so the data section starts 8-byte aligned. */
const DATA_ALIGNMENT = 8;
const HEADER_PADDING = 0x20; // space, which JSON ignores
const METADATA_KEY = '__metadata__';

/**
 * Encodes tensors as one safetensors file. Tensors are laid out contiguously (readers such as the
 * reference Rust crate reject gaps) in order of decreasing element size, which keeps every tensor
 * aligned to its element size without padding; within a size, input order is kept.
 */
export function encodeSafetensors(
  tensors: readonly TensorToWrite[],
  metadata?: Readonly<Record<string, string>>,
): Uint8Array<ArrayBuffer> {
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === METADATA_KEY || seen.has(t.name)) {
      throw new FluxError('bad-argument', `safetensors writer: tensor name "${t.name}" is reserved or repeated`);
    }
    seen.add(t.name);
    const expected = t.shape.reduce((n, d) => n * d, DTYPE_BYTES[t.dtype]);
    if (t.data.byteLength !== expected) {
      throw new FluxError(
        'bad-shape',
        `safetensors writer: tensor "${t.name}" ${t.dtype} [${t.shape.join(', ')}] needs ${expected} bytes, got ${t.data.byteLength}`,
      );
    }
  }
  const ordered = [...tensors].sort((a, b) => DTYPE_BYTES[b.dtype] - DTYPE_BYTES[a.dtype]);

  const header: Record<string, unknown> = {};
  if (metadata) header[METADATA_KEY] = metadata;
  let dataSize = 0;
  for (const t of ordered) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [dataSize, dataSize + t.data.byteLength] };
    dataSize += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerSize = Math.ceil(json.byteLength / DATA_ALIGNMENT) * DATA_ALIGNMENT;
  const dataStart = HEADER_LENGTH_BYTES + headerSize;

  const out = new Uint8Array(dataStart + dataSize);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerSize), true);
  out.set(json, HEADER_LENGTH_BYTES);
  out.fill(HEADER_PADDING, HEADER_LENGTH_BYTES + json.byteLength, dataStart);
  let offset = dataStart;
  for (const t of ordered) {
    out.set(t.data, offset);
    offset += t.data.byteLength;
  }
  return out;
}
