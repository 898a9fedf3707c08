/**
 * Checkpoint key layouts and the engine's canonical parameter names.
 *
 * Canonical names follow diffusers' FluxTransformer2DModel (`transformer_blocks.{i}.attn.to_q.weight`, …):
 * one linear per projection, q/k/v split. They key the weight plan, the reference forward and the
 * per-layer precision map. A BFL single file fuses some of them (double-block `qkv`, single-block
 * `linear1` = q|k|v|mlp); every canonical tensor is then a row range of a file tensor, and since a
 * PyTorch weight is [out, in] row-major, a row range is one contiguous byte range.
 *
 * Final-layer modulation (`norm_out.linear`): canonical rows are SHIFT then SCALE, the BFL order and the
 * order every other modulation linear uses (shift, scale[, gate]). Diffusers stores scale then shift, so
 * its two halves are swapped when planned.
 */
import { FluxError } from '../errors.ts';
import { DTYPE_BYTES, isSourceFloatDtype, type SourceFloatDtype } from '../weights/dtypes.ts';
import type { FluxConfig } from './config.ts';

export type LayoutKind = 'bfl' | 'diffusers';

export interface CheckpointLayout {
  readonly kind: LayoutKind;
  /** Prefix every tensor name in the file carries ('' or 'model.diffusion_model.'). */
  readonly prefix: string;
}

/** What a checkpoint reader reports about one tensor. */
export interface CheckpointTensor {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
}

export type SourceDtype = SourceFloatDtype;

/** Rows [rowStart, rowEnd) of a file tensor (dimension 0; a 1-D tensor's rows are its elements). */
export interface RowSlice {
  /** Full tensor name in the file, prefix included. */
  readonly sourceName: string;
  readonly dtype: SourceDtype;
  readonly sourceShape: readonly number[];
  readonly rowStart: number;
  readonly rowEnd: number;
}

/** A canonical tensor: the concatenation of its slices along rows (one slice except a swapped final layer). */
export interface PlannedParam {
  readonly name: string;
  readonly shape: readonly number[];
  readonly slices: readonly RowSlice[];
}

export interface WeightPlan {
  readonly layout: CheckpointLayout;
  /** Every canonical parameter, in forward order. */
  readonly params: ReadonlyMap<string, PlannedParam>;
}

export type LinearRole = 'embedder' | 'modulation' | 'block' | 'final';

export interface CanonicalLinear {
  /** Layer name without `.weight` / `.bias`. */
  readonly name: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /**
   * 'block' linears may be ConvRot-quantized (W4A4/W8A8); 'modulation' linears (every block's AdaLN and the final
   * norm_out) may be weight-only quantized; embedders and the final projection stay float.
   */
  readonly role: LinearRole;
}

/** Canonical names of one double-block stream, relative to `transformer_blocks.{i}.`. */
export interface DoubleStreamNames {
  readonly modulation: string;
  readonly q: string;
  readonly k: string;
  readonly v: string;
  readonly normQ: string;
  readonly normK: string;
  readonly attnOut: string;
  readonly mlpIn: string;
  readonly mlpOut: string;
}

export const DOUBLE_STREAMS: { readonly img: DoubleStreamNames; readonly txt: DoubleStreamNames } = {
  img: {
    modulation: 'norm1.linear',
    q: 'attn.to_q',
    k: 'attn.to_k',
    v: 'attn.to_v',
    normQ: 'attn.norm_q',
    normK: 'attn.norm_k',
    attnOut: 'attn.to_out.0',
    mlpIn: 'ff.net.0.proj',
    mlpOut: 'ff.net.2',
  },
  txt: {
    modulation: 'norm1_context.linear',
    q: 'attn.add_q_proj',
    k: 'attn.add_k_proj',
    v: 'attn.add_v_proj',
    normQ: 'attn.norm_added_q',
    normK: 'attn.norm_added_k',
    attnOut: 'attn.to_add_out',
    mlpIn: 'ff_context.net.0.proj',
    mlpOut: 'ff_context.net.2',
  },
};

/** Canonical names inside `single_transformer_blocks.{i}.`. */
export const SINGLE_BLOCK = {
  modulation: 'norm.linear',
  q: 'attn.to_q',
  k: 'attn.to_k',
  v: 'attn.to_v',
  normQ: 'attn.norm_q',
  normK: 'attn.norm_k',
  mlpIn: 'proj_mlp',
  out: 'proj_out',
} as const;

export const TOP_LEVEL = {
  imgIn: 'x_embedder',
  txtIn: 'context_embedder',
  timeIn1: 'time_text_embed.timestep_embedder.linear_1',
  timeIn2: 'time_text_embed.timestep_embedder.linear_2',
  guidanceIn1: 'time_text_embed.guidance_embedder.linear_1',
  guidanceIn2: 'time_text_embed.guidance_embedder.linear_2',
  vecIn1: 'time_text_embed.text_embedder.linear_1',
  vecIn2: 'time_text_embed.text_embedder.linear_2',
  finalModulation: 'norm_out.linear',
  finalLinear: 'proj_out',
} as const;

/** Width of the sinusoidal timestep / guidance embedding. */
export const TIMESTEP_EMBEDDING_DIM = 256;
/** shift1, scale1, gate1 (attention), shift2, scale2, gate2 (MLP). */
export const DOUBLE_MODULATION_CHUNKS = 6;
/** shift, scale, gate. */
export const SINGLE_MODULATION_CHUNKS = 3;
/** shift, scale (canonical order, see the file comment). */
export const FINAL_MODULATION_CHUNKS = 2;

export const doubleBlockPrefix = (i: number): string => `transformer_blocks.${i}.`;
export const singleBlockPrefix = (i: number): string => `single_transformer_blocks.${i}.`;

/** Reference-layout keys carry this prefix in files saved from a whole pipeline's state dict (e.g. ComfyUI's). */
const BFL_FILE_PREFIX = 'model.diffusion_model.';
const BFL_MARKER = 'img_in.weight';
const DIFFUSERS_MARKER = 'x_embedder.weight';

/** Tells the layout from the embedder's name, which each layout spells its own way. */
export function detectLayout(names: readonly string[]): CheckpointLayout {
  const set = new Set(names);
  const candidates: CheckpointLayout[] = [];
  if (set.has(BFL_MARKER)) candidates.push({ kind: 'bfl', prefix: '' });
  if (set.has(BFL_FILE_PREFIX + BFL_MARKER)) candidates.push({ kind: 'bfl', prefix: BFL_FILE_PREFIX });
  if (set.has(DIFFUSERS_MARKER)) candidates.push({ kind: 'diffusers', prefix: '' });
  if (candidates.length === 0) {
    throw new FluxError('bad-format', `not a FLUX transformer checkpoint: no "${BFL_MARKER}" (reference layout) or "${DIFFUSERS_MARKER}" (diffusers layout)`);
  }
  if (candidates.length > 1) {
    throw new FluxError('bad-format', 'checkpoint mixes key layouts: it has more than one of img_in.weight, model.diffusion_model.img_in.weight, x_embedder.weight');
  }
  return candidates[0];
}

/** Every linear of the model in forward order, with its canonical name, shape and role. */
export function canonicalLinears(config: FluxConfig): CanonicalLinear[] {
  const { hiddenSize: h, mlpHidden: m } = config;
  const linears: CanonicalLinear[] = [];
  const add = (name: string, inFeatures: number, outFeatures: number, role: LinearRole): void => {
    linears.push({ name, inFeatures, outFeatures, role });
  };
  add(TOP_LEVEL.imgIn, config.inChannels, h, 'embedder');
  add(TOP_LEVEL.timeIn1, TIMESTEP_EMBEDDING_DIM, h, 'embedder');
  add(TOP_LEVEL.timeIn2, h, h, 'embedder');
  if (config.guidanceEmbed) {
    add(TOP_LEVEL.guidanceIn1, TIMESTEP_EMBEDDING_DIM, h, 'embedder');
    add(TOP_LEVEL.guidanceIn2, h, h, 'embedder');
  }
  add(TOP_LEVEL.vecIn1, config.vecDim, h, 'embedder');
  add(TOP_LEVEL.vecIn2, h, h, 'embedder');
  add(TOP_LEVEL.txtIn, config.contextDim, h, 'embedder');
  for (let i = 0; i < config.depthDouble; i++) {
    const b = doubleBlockPrefix(i);
    for (const s of [DOUBLE_STREAMS.img, DOUBLE_STREAMS.txt]) {
      add(b + s.modulation, h, DOUBLE_MODULATION_CHUNKS * h, 'modulation');
      add(b + s.q, h, h, 'block');
      add(b + s.k, h, h, 'block');
      add(b + s.v, h, h, 'block');
      add(b + s.attnOut, h, h, 'block');
      add(b + s.mlpIn, h, m, 'block');
      add(b + s.mlpOut, m, h, 'block');
    }
  }
  for (let i = 0; i < config.depthSingle; i++) {
    const b = singleBlockPrefix(i);
    add(b + SINGLE_BLOCK.modulation, h, SINGLE_MODULATION_CHUNKS * h, 'modulation');
    add(b + SINGLE_BLOCK.q, h, h, 'block');
    add(b + SINGLE_BLOCK.k, h, h, 'block');
    add(b + SINGLE_BLOCK.v, h, h, 'block');
    add(b + SINGLE_BLOCK.mlpIn, h, m, 'block');
    add(b + SINGLE_BLOCK.out, h + m, h, 'block');
  }
  add(TOP_LEVEL.finalModulation, h, FINAL_MODULATION_CHUNKS * h, 'modulation');
  add(TOP_LEVEL.finalLinear, h, config.outChannels, 'final');
  return linears;
}

/** Canonical names of the QK-norm scales (each [headDim]), in forward order. */
export function canonicalNormScales(config: FluxConfig): string[] {
  const names: string[] = [];
  for (let i = 0; i < config.depthDouble; i++) {
    for (const s of [DOUBLE_STREAMS.img, DOUBLE_STREAMS.txt]) {
      names.push(`${doubleBlockPrefix(i)}${s.normQ}.weight`, `${doubleBlockPrefix(i)}${s.normK}.weight`);
    }
  }
  for (let i = 0; i < config.depthSingle; i++) {
    names.push(`${singleBlockPrefix(i)}${SINGLE_BLOCK.normQ}.weight`, `${singleBlockPrefix(i)}${SINGLE_BLOCK.normK}.weight`);
  }
  return names;
}

/** Rows [rowStart, rowEnd) of the file tensor `source` (a name without `.weight`/`.bias` for linears). */
interface Piece {
  readonly source: string;
  readonly sourceRows: number;
  readonly rowStart: number;
  readonly rowEnd: number;
}

const whole = (source: string, rows: number): Piece => ({ source, sourceRows: rows, rowStart: 0, rowEnd: rows });
/** The `index`-th of `count` equal row chunks of a fused linear with `chunkRows` rows per chunk. */
const chunk = (source: string, chunkRows: number, count: number, index: number): Piece => ({
  source,
  sourceRows: chunkRows * count,
  rowStart: chunkRows * index,
  rowEnd: chunkRows * (index + 1),
});

/** Where each canonical tensor comes from in a BFL file: linears as row pieces, QK-norm scales by name. */
function bflSources(config: FluxConfig): { linears: Map<string, Piece[]>; norms: Map<string, string> } {
  const { hiddenSize: h, mlpHidden: m } = config;
  const linears = new Map<string, Piece[]>([
    [TOP_LEVEL.imgIn, [whole('img_in', h)]],
    [TOP_LEVEL.txtIn, [whole('txt_in', h)]],
    [TOP_LEVEL.timeIn1, [whole('time_in.in_layer', h)]],
    [TOP_LEVEL.timeIn2, [whole('time_in.out_layer', h)]],
    [TOP_LEVEL.guidanceIn1, [whole('guidance_in.in_layer', h)]],
    [TOP_LEVEL.guidanceIn2, [whole('guidance_in.out_layer', h)]],
    [TOP_LEVEL.vecIn1, [whole('vector_in.in_layer', h)]],
    [TOP_LEVEL.vecIn2, [whole('vector_in.out_layer', h)]],
    [TOP_LEVEL.finalModulation, [whole('final_layer.adaLN_modulation.1', FINAL_MODULATION_CHUNKS * h)]],
    [TOP_LEVEL.finalLinear, [whole('final_layer.linear', config.outChannels)]],
  ]);
  const norms = new Map<string, string>();
  for (let i = 0; i < config.depthDouble; i++) {
    const b = doubleBlockPrefix(i);
    for (const [s, bfl] of [[DOUBLE_STREAMS.img, `double_blocks.${i}.img_`], [DOUBLE_STREAMS.txt, `double_blocks.${i}.txt_`]] as const) {
      linears.set(b + s.modulation, [whole(`${bfl}mod.lin`, DOUBLE_MODULATION_CHUNKS * h)]);
      linears.set(b + s.q, [chunk(`${bfl}attn.qkv`, h, 3, 0)]);
      linears.set(b + s.k, [chunk(`${bfl}attn.qkv`, h, 3, 1)]);
      linears.set(b + s.v, [chunk(`${bfl}attn.qkv`, h, 3, 2)]);
      linears.set(b + s.attnOut, [whole(`${bfl}attn.proj`, h)]);
      linears.set(b + s.mlpIn, [whole(`${bfl}mlp.0`, m)]);
      linears.set(b + s.mlpOut, [whole(`${bfl}mlp.2`, h)]);
      norms.set(`${b}${s.normQ}.weight`, `${bfl}attn.norm.query_norm.scale`);
      norms.set(`${b}${s.normK}.weight`, `${bfl}attn.norm.key_norm.scale`);
    }
  }
  for (let i = 0; i < config.depthSingle; i++) {
    const b = singleBlockPrefix(i);
    const bfl = `single_blocks.${i}.`;
    // linear1 rows: q | k | v | mlp.
    const linear1 = (rowStart: number, rowEnd: number): Piece => ({ source: `${bfl}linear1`, sourceRows: 3 * h + m, rowStart, rowEnd });
    linears.set(b + SINGLE_BLOCK.modulation, [whole(`${bfl}modulation.lin`, SINGLE_MODULATION_CHUNKS * h)]);
    linears.set(b + SINGLE_BLOCK.q, [linear1(0, h)]);
    linears.set(b + SINGLE_BLOCK.k, [linear1(h, 2 * h)]);
    linears.set(b + SINGLE_BLOCK.v, [linear1(2 * h, 3 * h)]);
    linears.set(b + SINGLE_BLOCK.mlpIn, [linear1(3 * h, 3 * h + m)]);
    linears.set(b + SINGLE_BLOCK.out, [whole(`${bfl}linear2`, h)]);
    norms.set(`${b}${SINGLE_BLOCK.normQ}.weight`, `${bfl}norm.query_norm.scale`);
    norms.set(`${b}${SINGLE_BLOCK.normK}.weight`, `${bfl}norm.key_norm.scale`);
  }
  return { linears, norms };
}

/** Diffusers names are canonical; only the final modulation is stored scale-then-shift, so its halves swap. */
function diffusersLinearPieces(linear: CanonicalLinear, config: FluxConfig): Piece[] {
  if (linear.name !== TOP_LEVEL.finalModulation) return [whole(linear.name, linear.outFeatures)];
  const h = config.hiddenSize;
  return [chunk(linear.name, h, FINAL_MODULATION_CHUNKS, 1), chunk(linear.name, h, FINAL_MODULATION_CHUNKS, 0)];
}

/** A canonical tensor as pieces of file tensors (names without the file prefix), with the expected file shapes. */
interface Recipe {
  readonly name: string;
  readonly shape: readonly number[];
  readonly parts: readonly { source: string; sourceShape: readonly number[]; rowStart: number; rowEnd: number }[];
}

function recipes(kind: LayoutKind, config: FluxConfig): Recipe[] {
  const bfl = kind === 'bfl' ? bflSources(config) : undefined;
  const out: Recipe[] = [];
  for (const linear of canonicalLinears(config)) {
    const pieces = bfl ? bfl.linears.get(linear.name) : diffusersLinearPieces(linear, config);
    if (!pieces) throw new Error(`no ${kind} source for linear ${linear.name}`);
    const rows = pieces.reduce((sum, p) => sum + p.rowEnd - p.rowStart, 0);
    if (rows !== linear.outFeatures) throw new Error(`${kind} pieces of ${linear.name} cover ${rows} rows, not ${linear.outFeatures}`);
    for (const suffix of ['weight', 'bias'] as const) {
      const cols = suffix === 'weight' ? [linear.inFeatures] : [];
      out.push({
        name: `${linear.name}.${suffix}`,
        shape: [linear.outFeatures, ...cols],
        parts: pieces.map((p) => ({ source: `${p.source}.${suffix}`, sourceShape: [p.sourceRows, ...cols], rowStart: p.rowStart, rowEnd: p.rowEnd })),
      });
    }
  }
  for (const name of canonicalNormScales(config)) {
    const source = bfl ? bfl.norms.get(name) : name;
    if (!source) throw new Error(`no ${kind} source for norm scale ${name}`);
    out.push({ name, shape: [config.headDim], parts: [{ source, sourceShape: [config.headDim], rowStart: 0, rowEnd: config.headDim }] });
  }
  return out;
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);
const showShape = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

/**
 * Maps every canonical parameter to row slices of the file's tensors. Throws FluxError when a tensor the
 * config needs is missing ('bad-format'), has the wrong shape ('bad-shape') or dtype ('unsupported-dtype'),
 * or when the file holds a tensor the plan does not use ('bad-format': a wrong config or a different model).
 */
export function buildWeightPlan(tensorInfos: readonly CheckpointTensor[], config: FluxConfig): WeightPlan {
  const layout = detectLayout(tensorInfos.map((t) => t.name));
  const infos = new Map(tensorInfos.map((t) => [t.name, t]));
  const used = new Set<string>();
  const params = new Map<string, PlannedParam>();
  for (const recipe of recipes(layout.kind, config)) {
    const slices = recipe.parts.map((part): RowSlice => {
      const sourceName = layout.prefix + part.source;
      const info = infos.get(sourceName);
      if (!info) throw new FluxError('bad-format', `checkpoint is missing tensor "${sourceName}" (${layout.kind} layout)`);
      if (!sameShape(info.shape, part.sourceShape)) {
        throw new FluxError('bad-shape', `tensor "${sourceName}" has shape ${showShape(info.shape)}, expected ${showShape(part.sourceShape)}`);
      }
      if (!isSourceFloatDtype(info.dtype)) {
        throw new FluxError('unsupported-dtype', `tensor "${sourceName}" has dtype ${info.dtype}; only F32, F16, BF16, F8_E4M3 and F8_E5M2 are supported`);
      }
      used.add(sourceName);
      return { sourceName, dtype: info.dtype, sourceShape: info.shape, rowStart: part.rowStart, rowEnd: part.rowEnd };
    });
    params.set(recipe.name, { name: recipe.name, shape: recipe.shape, slices });
  }
  for (const t of tensorInfos) {
    if (!used.has(t.name)) {
      throw new FluxError('bad-format', `unexpected tensor "${t.name}" in the ${layout.kind} checkpoint (not part of this FLUX config)`);
    }
  }
  return { layout, params };
}

/** Byte range of a row slice within its source tensor's data (row-major, so one contiguous range). */
export function sliceByteRange(slice: RowSlice): { byteOffset: number; byteLength: number } {
  const rowBytes = slice.sourceShape.slice(1).reduce((a, b) => a * b, 1) * DTYPE_BYTES[slice.dtype];
  return { byteOffset: slice.rowStart * rowBytes, byteLength: (slice.rowEnd - slice.rowStart) * rowBytes };
}
