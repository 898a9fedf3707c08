/** Writes safetensors files: in memory (CLI outputs, test fixtures) or streamed tensor by tensor (packed models). */
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

function checkTensor(t: TensorToWrite, seen: Set<string>): void {
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

type HeaderEntry = Pick<TensorToWrite, 'name' | 'dtype' | 'shape'> & { readonly byteLength: number };

/** The 8-byte length, the JSON header and its space padding, for tensors laid out contiguously in `entries` order. */
function encodeHeader(entries: readonly HeaderEntry[], metadata: Readonly<Record<string, string>> | undefined): Uint8Array<ArrayBuffer> {
  const header: Record<string, unknown> = {};
  if (metadata) header[METADATA_KEY] = metadata;
  let dataSize = 0;
  for (const t of entries) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [dataSize, dataSize + t.byteLength] };
    dataSize += t.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerSize = Math.ceil(json.byteLength / DATA_ALIGNMENT) * DATA_ALIGNMENT;
  const out = new Uint8Array(HEADER_LENGTH_BYTES + headerSize);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerSize), true);
  out.set(json, HEADER_LENGTH_BYTES);
  out.fill(HEADER_PADDING, HEADER_LENGTH_BYTES + json.byteLength);
  return out;
}

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
  for (const t of tensors) checkTensor(t, seen);
  const ordered = [...tensors].sort((a, b) => DTYPE_BYTES[b.dtype] - DTYPE_BYTES[a.dtype]);
  const header = encodeHeader(
    ordered.map((t) => ({ ...t, byteLength: t.data.byteLength })),
    metadata,
  );
  const out = new Uint8Array(header.byteLength + ordered.reduce((n, t) => n + t.data.byteLength, 0));
  out.set(header);
  let offset = header.byteLength;
  for (const t of ordered) {
    out.set(t.data, offset);
    offset += t.data.byteLength;
  }
  return out;
}

/** Where streamed bytes go (a file, a network upload, a test buffer), in order. */
export interface ByteSink {
  write(bytes: Uint8Array): Promise<void>;
}

/**
 * Writes a safetensors file whose tensors arrive one at a time, so only one tensor is ever in memory: each
 * tensor's bytes go to `body` (the data section) as they come, and `header()` gives the header to put in front
 * once the last one is added (safetensors puts every offset in the header, which is known only then). The
 * tensors are laid out in the order added, so an element is aligned to its size only if the tensors before it
 * keep it so (the engine's readers copy, and need no alignment).
 */
export class SafetensorsStreamWriter {
  private readonly entries: HeaderEntry[] = [];
  private readonly seen = new Set<string>();
  private bytes = 0;

  constructor(private readonly body: ByteSink) {}

  async add(t: TensorToWrite): Promise<void> {
    checkTensor(t, this.seen);
    this.entries.push({ name: t.name, dtype: t.dtype, shape: [...t.shape], byteLength: t.data.byteLength });
    this.bytes += t.data.byteLength;
    await this.body.write(t.data);
  }

  /** Bytes of tensor data written so far. */
  get dataBytes(): number {
    return this.bytes;
  }

  /** The header for every tensor added so far. */
  header(metadata?: Readonly<Record<string, string>>): Uint8Array<ArrayBuffer> {
    return encodeHeader(this.entries, metadata);
  }
}
