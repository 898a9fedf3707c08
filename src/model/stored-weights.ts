/**
 * A transformer's weights as stored records (the packed model file and the browser cache share them): one
 * record per canonical linear at its precision, one per QK-norm scale, the plan as a precision map.
 */
import { FluxError } from '../errors.ts';
import { packedWordsPerRow } from '../kernels/convrot.ts';
import type { LinearSpec } from '../nn/factory.ts';
import { recordTensor, tensorValues, type LayerRecord } from '../weights/layer-record.ts';
import type { FluxConfig } from './config.ts';
import { canonicalLinears, canonicalNormScales } from './layout.ts';
import { decodePrecisionMap, encodePrecisionMap, makeQuantPlan, type QuantPlan } from './precision.ts';

export const VECTOR_RECORD = 'vector';
const VECTOR_SUFFIX = '.weight';

/** A vector parameter (`….norm_q.weight`) as a record named `….norm_q` with one F32 `weight` tensor. */
export function vectorRecord(name: string, values: Float32Array<ArrayBuffer>): LayerRecord {
  return {
    name: vectorRecordName(name),
    kind: VECTOR_RECORD,
    attrs: {},
    tensors: [{ role: 'weight', dtype: 'F32', shape: [values.length], data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) }],
  };
}

export function vectorRecordName(name: string): string {
  if (!name.endsWith(VECTOR_SUFFIX)) throw new FluxError('bad-argument', `vector parameter names end in ${VECTOR_SUFFIX}, got ${name}`);
  return name.slice(0, -VECTOR_SUFFIX.length);
}

export function recordVector(record: LayerRecord): Float32Array<ArrayBuffer> {
  if (record.kind !== VECTOR_RECORD) throw new FluxError('bad-format', `${record.name}: expected a ${VECTOR_RECORD} record, got ${record.kind}`);
  return tensorValues(recordTensor(record, 'weight'), 'F32', record.name);
}

/** What a layer is stored as: `float`, or `int4-regular-256` (format, rotation, group). Part of cache keys. */
export function specKey(spec: LinearSpec): string {
  return spec.precision === 'float' ? 'float' : `${spec.precision}-${spec.rotation ?? 'regular'}-${spec.groupSize ?? 256}`;
}

/** The plan as JSON text (a precision map file), and back; float layers outside the blocks are implied. */
export function encodePlan(plan: QuantPlan, config: FluxConfig): string {
  if ([...(plan.ranks ?? [])].some(([, r]) => r > 0)) throw new FluxError('bad-argument', 'low-rank branches cannot be stored in a packed model or the cache yet');
  return encodePrecisionMap(plan, config);
}

export function decodePlan(text: string, config: FluxConfig, origin: string): QuantPlan {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FluxError('bad-format', `${origin}: the precision map is not JSON`, { cause: e });
  }
  return makeQuantPlan(config, decodePrecisionMap(json, origin));
}

/** Specs of every canonical linear under the plan, by name. */
export function planSpecs(plan: QuantPlan, config: FluxConfig): Map<string, LinearSpec> {
  return new Map(canonicalLinears(config).map((l) => [l.name, { precision: plan.layers.get(l.name) ?? 'float', rotation: plan.rotation, groupSize: plan.groupSize }]));
}

/** Words of packed weights plus (scale, Σq) per row, plus the f32 bias. */
const META_BYTES_PER_ROW = 8;
const BIAS_BYTES_PER_ROW = 4;
/** Checkpoints ship bf16; f32 checkpoints need twice this. */
const FLOAT_WEIGHT_BYTES = 2;

/** About how many bytes the plan's records take (packed layers exactly, float ones as bf16). */
export function storedBytesEstimate(plan: QuantPlan, config: FluxConfig): number {
  let bytes = 0;
  for (const l of canonicalLinears(config)) {
    const precision = plan.layers.get(l.name) ?? 'float';
    bytes +=
      l.outFeatures *
      (precision === 'float'
        ? l.inFeatures * FLOAT_WEIGHT_BYTES + BIAS_BYTES_PER_ROW
        : packedWordsPerRow(l.inFeatures, { format: precision, rotation: plan.rotation, groupSize: plan.groupSize }) * 4 + META_BYTES_PER_ROW + BIAS_BYTES_PER_ROW);
  }
  return bytes + canonicalNormScales(config).length * config.headDim * 4;
}
