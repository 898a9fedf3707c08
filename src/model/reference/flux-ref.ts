/**
 * CPU float32 reference forward of the FLUX transformer (docs/architecture.md, "The FLUX transformer"), batch 1, built
 * from the primitives in ops.ts and canonical parameter names (layout.ts). Every linear goes through a
 * hook, so a fake-quantized layer can replace the float one per layer name.
 */
import type { FluxConfig } from '../config.ts';
import { checkFluxInputs, type FluxInputs } from '../inputs.ts';
import {
  DOUBLE_MODULATION_CHUNKS,
  DOUBLE_STREAMS,
  type DoubleStreamNames,
  doubleBlockPrefix,
  FINAL_MODULATION_CHUNKS,
  SINGLE_BLOCK,
  SINGLE_MODULATION_CHUNKS,
  singleBlockPrefix,
  TIMESTEP_EMBEDDING_DIM,
  TOP_LEVEL,
} from '../layout.ts';
import { applyRope, attention, gatedResidual, geluTanh, layerNormModulate, linear, type RopeTable, rmsNorm, ropeTable, silu, timestepEmbedding } from './ops.ts';

/** A canonical parameter as float32 (e.g. 'transformer_blocks.0.attn.to_q.weight'). */
export type ParamGetter = (canonicalName: string) => Float32Array;

/** The canonical linear `name` (no `.weight`) applied to x [rows, in]; returns [rows, out]. */
export type LinearHook = (name: string, x: Float32Array, rows: number) => Float32Array;

export interface FluxReferenceResult {
  /** Velocity prediction [imgTokens, outChannels]. */
  readonly out: Float32Array;
  /**
   * Streams after each block, named as in the golden forward file: `double_blocks.N.img` [imgTokens, H],
   * `double_blocks.N.txt` [txtTokens, H], `single_blocks.N.out` [txtTokens + imgTokens, H] (text first).
   */
  readonly streams: ReadonlyMap<string, Float32Array>;
}

/** The float linear: weight and bias straight from the parameters. */
export function floatLinear(getParam: ParamGetter): LinearHook {
  return (name, x, rows) => linear(x, rows, getParam(`${name}.weight`), getParam(`${name}.bias`));
}

function concatRows(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** [rows, aCols] ‖ [rows, bCols] → [rows, aCols + bCols]. */
function concatCols(a: Float32Array, aCols: number, b: Float32Array, bCols: number, rows: number): Float32Array {
  const cols = aCols + bCols;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    out.set(a.subarray(r * aCols, (r + 1) * aCols), r * cols);
    out.set(b.subarray(r * bCols, (r + 1) * bCols), r * cols + aCols);
  }
  return out;
}

function add(a: Float32Array, b: Float32Array): Float32Array {
  return a.map((v, i) => v + b[i]);
}

/** What every block needs besides its own parameters. */
interface BlockContext {
  readonly config: FluxConfig;
  readonly getParam: ParamGetter;
  readonly linear: LinearHook;
  /** SiLU(vec): the input of every modulation linear. */
  readonly siluVec: Float32Array;
  /** RoPE table of the joint sequence (text first). */
  readonly rope: RopeTable;
  readonly txtTokens: number;
  readonly imgTokens: number;
}

/** Splits a modulation linear's output on SiLU(vec) into `count` chunks of the hidden size. */
function modulation(ctx: BlockContext, name: string, count: number): Float32Array[] {
  const h = ctx.config.hiddenSize;
  const mod = ctx.linear(name, ctx.siluVec, 1);
  return Array.from({ length: count }, (_, c) => mod.subarray(c * h, (c + 1) * h));
}

type QkvNames = Pick<DoubleStreamNames, 'q' | 'k' | 'v' | 'normQ' | 'normK'>;

/** q and k (RMS-normalized per head) and v of x [rows, H], from the layer names under `prefix`. */
function projectQkv(ctx: BlockContext, prefix: string, names: QkvNames, x: Float32Array, rows: number) {
  const { numHeads, headDim } = ctx.config;
  return {
    q: rmsNorm(ctx.linear(prefix + names.q, x, rows), rows, numHeads, headDim, ctx.getParam(`${prefix}${names.normQ}.weight`)),
    k: rmsNorm(ctx.linear(prefix + names.k, x, rows), rows, numHeads, headDim, ctx.getParam(`${prefix}${names.normK}.weight`)),
    v: ctx.linear(prefix + names.v, x, rows),
  };
}

/** RoPE on q and k, then attention over the joint sequence. */
function jointAttention(ctx: BlockContext, q: Float32Array, k: Float32Array, v: Float32Array): Float32Array {
  const { numHeads, headDim } = ctx.config;
  const tokens = ctx.txtTokens + ctx.imgTokens;
  const rotate = (x: Float32Array) => applyRope(x, tokens, numHeads, headDim, ctx.rope);
  return attention(rotate(q), rotate(k), v, tokens, numHeads, headDim);
}

/** One double-block stream between its attention inputs and the joint attention. */
interface StreamState {
  readonly names: DoubleStreamNames;
  readonly x: Float32Array;
  readonly rows: number;
  readonly gate1: Float32Array;
  readonly shift2: Float32Array;
  readonly scale2: Float32Array;
  readonly gate2: Float32Array;
  readonly q: Float32Array;
  readonly k: Float32Array;
  readonly v: Float32Array;
}

function streamBeforeAttention(ctx: BlockContext, prefix: string, names: DoubleStreamNames, x: Float32Array, rows: number): StreamState {
  const [shift1, scale1, gate1, shift2, scale2, gate2] = modulation(ctx, prefix + names.modulation, DOUBLE_MODULATION_CHUNKS);
  const normed = layerNormModulate(x, rows, ctx.config.hiddenSize, shift1, scale1);
  return { names, x, rows, gate1, shift2, scale2, gate2, ...projectQkv(ctx, prefix, names, normed, rows) };
}

function streamAfterAttention(ctx: BlockContext, prefix: string, st: StreamState, attnOut: Float32Array): Float32Array {
  const x = gatedResidual(st.x, st.gate1, ctx.linear(prefix + st.names.attnOut, attnOut, st.rows));
  const normed = layerNormModulate(x, st.rows, ctx.config.hiddenSize, st.shift2, st.scale2);
  const hidden = geluTanh(ctx.linear(prefix + st.names.mlpIn, normed, st.rows));
  return gatedResidual(x, st.gate2, ctx.linear(prefix + st.names.mlpOut, hidden, st.rows));
}

/** Double block i: each stream has its own weights; attention runs on both jointly, text first. */
function doubleBlock(ctx: BlockContext, i: number, img: Float32Array, txt: Float32Array): { img: Float32Array; txt: Float32Array } {
  const prefix = doubleBlockPrefix(i);
  const t = streamBeforeAttention(ctx, prefix, DOUBLE_STREAMS.txt, txt, ctx.txtTokens);
  const s = streamBeforeAttention(ctx, prefix, DOUBLE_STREAMS.img, img, ctx.imgTokens);
  const o = jointAttention(ctx, concatRows(t.q, s.q), concatRows(t.k, s.k), concatRows(t.v, s.v));
  const split = ctx.txtTokens * ctx.config.hiddenSize;
  return { img: streamAfterAttention(ctx, prefix, s, o.subarray(split)), txt: streamAfterAttention(ctx, prefix, t, o.subarray(0, split)) };
}

/** Single block i on the joint sequence x [txt + img, H]: attention and MLP in parallel from one input. */
function singleBlock(ctx: BlockContext, i: number, x: Float32Array): Float32Array {
  const { hiddenSize: h, mlpHidden: m } = ctx.config;
  const tokens = ctx.txtTokens + ctx.imgTokens;
  const prefix = singleBlockPrefix(i);
  const [shift, scale, gate] = modulation(ctx, prefix + SINGLE_BLOCK.modulation, SINGLE_MODULATION_CHUNKS);
  const u = layerNormModulate(x, tokens, h, shift, scale);
  const { q, k, v } = projectQkv(ctx, prefix, SINGLE_BLOCK, u, tokens);
  const o = jointAttention(ctx, q, k, v);
  const hidden = geluTanh(ctx.linear(prefix + SINGLE_BLOCK.mlpIn, u, tokens));
  return gatedResidual(x, gate, ctx.linear(prefix + SINGLE_BLOCK.out, concatCols(o, h, hidden, m, tokens), tokens));
}

/** Runs one transformer call; `linearHook` defaults to the float linear over `getParam`. */
export function fluxForward(config: FluxConfig, getParam: ParamGetter, inputs: FluxInputs, linearHook: LinearHook = floatLinear(getParam)): FluxReferenceResult {
  const h = config.hiddenSize;
  const { imgTokens, txtTokens } = checkFluxInputs(config, inputs);
  const tokens = txtTokens + imgTokens;
  const mlp = (first: string, second: string, x: Float32Array): Float32Array => linearHook(second, silu(linearHook(first, x, 1)), 1);

  // vec = time MLP (+ guidance MLP) + pooled-text MLP; consumers apply SiLU to it themselves.
  let vec = mlp(TOP_LEVEL.timeIn1, TOP_LEVEL.timeIn2, timestepEmbedding(inputs.timestep, TIMESTEP_EMBEDDING_DIM));
  if (config.guidanceEmbed) {
    vec = add(vec, mlp(TOP_LEVEL.guidanceIn1, TOP_LEVEL.guidanceIn2, timestepEmbedding(inputs.guidance!, TIMESTEP_EMBEDDING_DIM)));
  }
  vec = add(vec, mlp(TOP_LEVEL.vecIn1, TOP_LEVEL.vecIn2, inputs.y));
  const ctx: BlockContext = {
    config,
    getParam,
    linear: linearHook,
    siluVec: silu(vec),
    rope: ropeTable(concatRows(inputs.txtIds, inputs.imgIds), tokens, config.axesDim, config.theta),
    txtTokens,
    imgTokens,
  };

  const streams = new Map<string, Float32Array>();
  let img = linearHook(TOP_LEVEL.imgIn, inputs.img, imgTokens);
  let txt = linearHook(TOP_LEVEL.txtIn, inputs.txt, txtTokens);
  for (let i = 0; i < config.depthDouble; i++) {
    ({ img, txt } = doubleBlock(ctx, i, img, txt));
    streams.set(`double_blocks.${i}.img`, img);
    streams.set(`double_blocks.${i}.txt`, txt);
  }
  let x = concatRows(txt, img);
  for (let i = 0; i < config.depthSingle; i++) {
    x = singleBlock(ctx, i, x);
    streams.set(`single_blocks.${i}.out`, x);
  }

  // Final layer on the image tokens only.
  const [shift, scale] = modulation(ctx, TOP_LEVEL.finalModulation, FINAL_MODULATION_CHUNKS);
  const normed = layerNormModulate(x.subarray(txtTokens * h), imgTokens, h, shift, scale);
  return { out: linearHook(TOP_LEVEL.finalLinear, normed, imgTokens), streams };
}
