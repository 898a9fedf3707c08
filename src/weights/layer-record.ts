/**
 * The unit the packed model file and the weight cache store: one named layer (or vector parameter) at one
 * precision, as a kind, a few attributes and tensors by role. The format knows no layer kinds; readers
 * dispatch on `kind` (docs/packed-format.md), so a new kind of layer needs no format change.
 */
import { FluxError } from '../errors.ts';
import { DTYPE_BYTES, type Dtype } from './dtypes.ts';
import { encodeSafetensors } from './safetensors-writer.ts';
import { SafetensorsFile } from './safetensors.ts';
import { blobSource } from './sources.ts';

export interface RecordTensor {
  /** What the tensor is to the layer kind: `weight`, `bias`, `packed`, `meta`, … */
  readonly role: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  /** Little-endian, row-major bytes. */
  readonly data: Uint8Array<ArrayBuffer>;
}

export type RecordAttrs = Readonly<Record<string, string | number>>;

export interface LayerRecord {
  /** Canonical layer name (`transformer_blocks.0.attn.to_q`), or a vector parameter's name without `.weight`. */
  readonly name: string;
  /** `convrot`, `float`, `vector`, … */
  readonly kind: string;
  readonly attrs: RecordAttrs;
  readonly tensors: readonly RecordTensor[];
}

/** Safetensors tensor name of a record's tensor: `<layer>.<role>` (so float layers keep their checkpoint names). */
export function recordTensorName(layer: string, role: string): string {
  return `${layer}.${role}`;
}

/** The tensor of `role`; a missing one is a corrupt or foreign record. */
export function recordTensor(record: LayerRecord, role: string): RecordTensor {
  const t = record.tensors.find((x) => x.role === role);
  if (!t) throw new FluxError('bad-format', `${record.name}: ${record.kind} record has no "${role}" tensor`);
  return t;
}

/** Bytes a record's tensors take. */
export function recordBytes(record: LayerRecord): number {
  return record.tensors.reduce((n, t) => n + t.data.byteLength, 0);
}

const RECORD_META = { name: 'name', kind: 'kind', attrs: 'attrs', roles: 'roles' } as const;

/** One record as a small safetensors file (what the cache stores per record). */
export function encodeRecord(record: LayerRecord): Uint8Array<ArrayBuffer> {
  return encodeSafetensors(
    record.tensors.map((t) => ({ name: recordTensorName(record.name, t.role), dtype: t.dtype, shape: t.shape, data: t.data })),
    {
      [RECORD_META.name]: record.name,
      [RECORD_META.kind]: record.kind,
      [RECORD_META.attrs]: JSON.stringify(record.attrs),
      [RECORD_META.roles]: JSON.stringify(record.tensors.map((t) => t.role)),
    },
  );
}

export async function decodeRecord(bytes: Uint8Array<ArrayBuffer>, origin: string): Promise<LayerRecord> {
  const file = await SafetensorsFile.open(blobSource(new Blob([bytes]), origin));
  try {
    const m = file.metadata;
    const name = m[RECORD_META.name];
    const kind = m[RECORD_META.kind];
    if (name === undefined || kind === undefined) throw new FluxError('bad-format', `${origin}: not a layer record (no name or kind)`);
    return await readRecord(file, { name, kind, attrs: parseJsonObject(m[RECORD_META.attrs], origin), roles: parseRoles(m[RECORD_META.roles], origin) });
  } finally {
    await file.close();
  }
}

/** What a record looks like before its tensors are read: how the packed file lists its layers. */
export interface RecordEntry {
  readonly name: string;
  readonly kind: string;
  readonly attrs: RecordAttrs;
  readonly roles: readonly string[];
}

/** Reads an entry's tensors from a file holding them under `<layer>.<role>`. */
export async function readRecord(
  reader: { readTensor(name: string): Promise<{ dtype: Dtype; shape: readonly number[]; data: Uint8Array<ArrayBuffer> }> },
  entry: RecordEntry,
): Promise<LayerRecord> {
  const tensors: RecordTensor[] = [];
  for (const role of entry.roles) {
    const t = await reader.readTensor(recordTensorName(entry.name, role));
    tensors.push({ role, dtype: t.dtype, shape: t.shape, data: t.data });
  }
  return { name: entry.name, kind: entry.kind, attrs: entry.attrs, tensors };
}

/** A typed-array view of a tensor's bytes for the element type the role needs. */
export function tensorValues<T extends 'U32' | 'F32'>(t: RecordTensor, dtype: T, where: string): T extends 'U32' ? Uint32Array<ArrayBuffer> : Float32Array<ArrayBuffer> {
  if (t.dtype !== dtype) throw new FluxError('bad-format', `${where}: "${t.role}" is ${t.dtype}, expected ${dtype}`);
  // Readers hand out fresh buffers, so the view starts at an aligned offset (copy otherwise).
  const data = t.data.byteOffset % DTYPE_BYTES[dtype] === 0 ? t.data : t.data.slice();
  const n = data.byteLength / DTYPE_BYTES[dtype];
  return (dtype === 'U32' ? new Uint32Array(data.buffer, data.byteOffset, n) : new Float32Array(data.buffer, data.byteOffset, n)) as never;
}

export function parseJsonObject(text: string | undefined, origin: string): Record<string, string | number> {
  try {
    const value: unknown = JSON.parse(text ?? '{}');
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, string | number>;
  } catch {
    // reported below
  }
  throw new FluxError('bad-format', `${origin}: record attributes are not a JSON object`);
}

function parseRoles(text: string | undefined, origin: string): string[] {
  try {
    const value: unknown = JSON.parse(text ?? '');
    if (Array.isArray(value) && value.every((r) => typeof r === 'string')) return value;
  } catch {
    // reported below
  }
  throw new FluxError('bad-format', `${origin}: record roles are not a JSON list of strings`);
}
