/**
 * Linear layers as stored records (src/weights/layer-record.ts): what the packed model file and the weight
 * cache keep of a layer, and the LinearSource that rebuilds exactly the same layer from it.
 *
 *   kind 'convrot': attrs { format, rotation, groupSize, inFeatures, outFeatures, wordsPerRow };
 *                   tensors packed U32 [N, wordsPerRow], meta U32 [N, 2], bias F32 [N] (optional)
 *   kind 'float':   tensors weight [N, K] in the GPU dtype the source had (BF16 or F32), bias F32 [N] (optional)
 *
 * Layout of the packed arrays: docs/packed-format.md.
 */
import { FluxError } from '../errors.ts';
import { readBuffer, uploadBuffer } from '../gpu/buffers.ts';
import type { GpuContext } from '../gpu/device.ts';
import { byteSize, type GpuDtype, type GpuTensor } from '../gpu/tensor.ts';
import type { RotationKind } from '../quant/hadamard.ts';
import type { QuantFormatName } from '../quant/quantize.ts';
import type { Dtype } from '../weights/dtypes.ts';
import { recordTensor, tensorValues, type LayerRecord, type RecordTensor } from '../weights/layer-record.ts';
import { ConvLinear, type PackedLinear } from './conv-linear.ts';
import { buildLinear, type LinearSource, type LinearSpec } from './factory.ts';
import { WeightOnlyLinear } from './weight-only-linear.ts';

export const CONVROT_RECORD = 'convrot';
export const FLOAT_RECORD = 'float';

const FILE_DTYPE: Partial<Record<GpuDtype, Dtype>> = { f32: 'F32', bf16: 'BF16', f16: 'F16' };
const GPU_DTYPE: Partial<Record<Dtype, GpuDtype>> = { F32: 'f32', BF16: 'bf16', F16: 'f16' };

function bytesOf(values: Uint32Array<ArrayBuffer> | Float32Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

async function readTensorBytes(ctx: GpuContext, t: GpuTensor): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await readBuffer(ctx, t.buffer, t.offset, byteSize(t)));
}

/** A packed layer as a 'convrot' record. */
export function packedRecord(name: string, p: PackedLinear): LayerRecord {
  const n = p.outFeatures;
  const tensors: RecordTensor[] = [
    { role: 'packed', dtype: 'U32', shape: [n, p.wordsPerRow], data: bytesOf(p.packed as Uint32Array<ArrayBuffer>) },
    { role: 'meta', dtype: 'U32', shape: [n, 2], data: bytesOf(p.meta as Uint32Array<ArrayBuffer>) },
  ];
  if (p.bias) tensors.push({ role: 'bias', dtype: 'F32', shape: [n], data: bytesOf(p.bias as Float32Array<ArrayBuffer>) });
  const q = p.quantization;
  return {
    name,
    kind: CONVROT_RECORD,
    attrs: { format: q.format, rotation: q.rotation, groupSize: q.groupSize, inFeatures: p.inFeatures, outFeatures: n, wordsPerRow: p.wordsPerRow },
    tensors,
  };
}

/**
 * The record of the layer `spec` builds from `source`: quantized specs are built (quantized on the GPU) and
 * read back packed; float weights are read back as they are on the GPU, so reloading is bit-exact. Consumes the
 * source (its GPU buffers are freed).
 */
export async function linearRecord(ctx: GpuContext, name: string, spec: LinearSpec, source: LinearSource): Promise<LayerRecord> {
  if (source.kind === 'packed') return packedRecord(name, source.packed);
  if (source.lowRank) {
    source.weight.buffer.destroy();
    source.bias?.buffer.destroy();
    throw new FluxError('bad-argument', `${name}: layers with a low-rank branch cannot be stored yet (use a precision map without ranks)`);
  }
  try {
    if (spec.precision !== 'float') {
      const layer = await buildLinear(ctx, { ...spec, label: spec.label ?? name }, { ...source });
      try {
        // Weight-only layers (the modulation linears) keep their weights in the same packed rows.
        if (!(layer instanceof ConvLinear || layer instanceof WeightOnlyLinear)) throw new FluxError('bad-argument', `${name}: a ${spec.precision} layer that is not ConvRot cannot be stored`);
        return packedRecord(name, await layer.exportPacked());
      } finally {
        layer.destroy();
      }
    }
    const dtype = FILE_DTYPE[source.weight.dtype];
    if (!dtype) throw new FluxError('unsupported-dtype', `${name}: float weights of GPU dtype ${source.weight.dtype} cannot be stored`);
    const tensors: RecordTensor[] = [{ role: 'weight', dtype, shape: source.weight.shape, data: await readTensorBytes(ctx, source.weight) }];
    if (source.bias) tensors.push({ role: 'bias', dtype: 'F32', shape: source.bias.shape, data: await readTensorBytes(ctx, source.bias) });
    return { name, kind: FLOAT_RECORD, attrs: {}, tensors };
  } finally {
    // buildLinear took ownership of a float source's buffers in the quantized case (and destroyed them).
    if (source.kind === 'float' && spec.precision === 'float') {
      source.weight.buffer.destroy();
      source.bias?.buffer.destroy();
    }
  }
}

/** The LinearSource a 'convrot' or 'float' record rebuilds its layer from (float weights are uploaded). */
export async function recordSource(ctx: GpuContext, record: LayerRecord): Promise<LinearSource> {
  const where = `${record.name} (${record.kind})`;
  const biasTensor = record.tensors.find((t) => t.role === 'bias');
  if (record.kind === CONVROT_RECORD) {
    const a = record.attrs;
    const packed: PackedLinear = {
      inFeatures: Number(a.inFeatures),
      outFeatures: Number(a.outFeatures),
      quantization: { format: a.format as QuantFormatName, rotation: a.rotation as RotationKind, groupSize: Number(a.groupSize) },
      wordsPerRow: Number(a.wordsPerRow),
      packed: tensorValues(recordTensor(record, 'packed'), 'U32', where),
      meta: tensorValues(recordTensor(record, 'meta'), 'U32', where),
      bias: biasTensor && tensorValues(biasTensor, 'F32', where),
    };
    return { kind: 'packed', packed };
  }
  if (record.kind === FLOAT_RECORD) {
    const w = recordTensor(record, 'weight');
    const dtype = GPU_DTYPE[w.dtype];
    if (!dtype || w.shape.length !== 2) throw new FluxError('bad-format', `${where}: weight must be [out, in] F32, F16 or BF16, got ${w.dtype} [${w.shape}]`);
    const weight: GpuTensor = { buffer: await uploadBuffer(ctx, w.data, `${record.name}.weight`), offset: 0, shape: w.shape, dtype };
    if (!biasTensor) return { kind: 'float', weight, bias: undefined };
    try {
      const values = tensorValues(biasTensor, 'F32', where);
      return { kind: 'float', weight, bias: { buffer: await uploadBuffer(ctx, values, `${record.name}.bias`), offset: 0, shape: [values.length], dtype: 'f32' } };
    } catch (e) {
      weight.buffer.destroy();
      throw e;
    }
  }
  throw new FluxError('bad-format', `${where}: unknown layer record kind (this engine reads ${CONVROT_RECORD} and ${FLOAT_RECORD})`);
}
