/**
 * FLUX transformer hyper-parameters: from a diffusers `config.json`, or inferred from a checkpoint's
 * tensor names and shapes when the file comes alone (the BFL single-file release has no config).
 */
import { FluxError } from '../errors.ts';
import type { CheckpointLayout } from './layout.ts';

export interface FluxConfig {
  readonly hiddenSize: number;
  readonly numHeads: number;
  readonly headDim: number;
  /** Hidden width of every MLP (double-block ff, single-block proj_mlp). */
  readonly mlpHidden: number;
  readonly depthDouble: number;
  readonly depthSingle: number;
  /** Features per packed latent token (16 channels × 2×2 patch). */
  readonly inChannels: number;
  readonly outChannels: number;
  /** T5 hidden size fed to context_embedder. */
  readonly contextDim: number;
  /** CLIP pooled size fed to the text embedder of `vec`. */
  readonly vecDim: number;
  /** RoPE dims per position axis (id component); they split the head dim, so they sum to headDim. */
  readonly axesDim: readonly number[];
  readonly theta: number;
  /** Guidance-distilled models (dev) embed the guidance scale; schnell does not. */
  readonly guidanceEmbed: boolean;
}

const FLUX_MLP_RATIO = 4;
const FLUX_ROPE_THETA = 10_000;

/** FLUX.1-dev. FLUX.1-schnell is the same with `guidanceEmbed: false`. */
export const FLUX1_DEFAULTS: FluxConfig = Object.freeze({
  hiddenSize: 3072,
  numHeads: 24,
  headDim: 128,
  mlpHidden: 12288,
  depthDouble: 19,
  depthSingle: 38,
  inChannels: 64,
  outChannels: 64,
  contextDim: 4096,
  vecDim: 768,
  axesDim: Object.freeze([16, 56, 56]),
  theta: FLUX_ROPE_THETA,
  guidanceEmbed: true,
});

/** Checks the relations the engine relies on; throws FluxError 'bad-format' naming the broken one. */
export function validateConfig(config: FluxConfig): FluxConfig {
  const counts: [string, number][] = [
    ['hiddenSize', config.hiddenSize],
    ['numHeads', config.numHeads],
    ['headDim', config.headDim],
    ['mlpHidden', config.mlpHidden],
    ['inChannels', config.inChannels],
    ['outChannels', config.outChannels],
    ['contextDim', config.contextDim],
    ['vecDim', config.vecDim],
  ];
  for (const [field, value] of counts) {
    if (!Number.isInteger(value) || value <= 0) bad(`${field} must be a positive integer, got ${value}`);
  }
  for (const [field, value] of [['depthDouble', config.depthDouble], ['depthSingle', config.depthSingle]] as const) {
    if (!Number.isInteger(value) || value < 0) bad(`${field} must be a non-negative integer, got ${value}`);
  }
  if (config.hiddenSize !== config.numHeads * config.headDim) {
    bad(`hiddenSize ${config.hiddenSize} != numHeads ${config.numHeads} × headDim ${config.headDim}`);
  }
  // RoPE rotates (2p, 2p+1) pairs, and each axis owns whole pairs.
  if (config.axesDim.length === 0 || config.axesDim.some((d) => !Number.isInteger(d) || d <= 0 || d % 2 !== 0)) {
    bad(`axesDim [${config.axesDim.join(', ')}] must be positive even integers`);
  }
  const axesSum = config.axesDim.reduce((a, b) => a + b, 0);
  if (axesSum !== config.headDim) {
    bad(`axesDim [${config.axesDim.join(', ')}] sums to ${axesSum}, not headDim ${config.headDim}`);
  }
  if (!(config.theta > 0)) bad(`theta must be positive, got ${config.theta}`);
  return config;
}

/** Reads a diffusers `FluxTransformer2DModel` config.json (already parsed). */
export function configFromDiffusers(json: unknown): FluxConfig {
  if (typeof json !== 'object' || json === null) bad('transformer config.json is not a JSON object');
  const fields = json as Record<string, unknown>;
  const int = (key: string): number => {
    const value = fields[key];
    if (typeof value !== 'number' || !Number.isInteger(value)) bad(`transformer config.json: "${key}" must be an integer`);
    return value;
  };
  const patchSize = fields['patch_size'];
  if (patchSize !== undefined && patchSize !== 1) {
    bad(`transformer config.json: patch_size ${String(patchSize)} is not supported (FLUX uses 1)`);
  }
  const axes = fields['axes_dims_rope'];
  if (!Array.isArray(axes) || !axes.every((d) => typeof d === 'number')) {
    bad('transformer config.json: "axes_dims_rope" must be an array of numbers');
  }
  const guidance = fields['guidance_embeds'];
  if (typeof guidance !== 'boolean') bad('transformer config.json: "guidance_embeds" must be true or false');
  const headDim = int('attention_head_dim');
  const numHeads = int('num_attention_heads');
  const hiddenSize = headDim * numHeads;
  const inChannels = int('in_channels');
  const outChannels = fields['out_channels'] === null || fields['out_channels'] === undefined ? inChannels : int('out_channels');
  return validateConfig({
    hiddenSize,
    numHeads,
    headDim,
    mlpHidden: hiddenSize * FLUX_MLP_RATIO,
    depthDouble: int('num_layers'),
    depthSingle: int('num_single_layers'),
    inChannels,
    outChannels,
    contextDim: int('joint_attention_dim'),
    vecDim: int('pooled_projection_dim'),
    axesDim: [...(axes as number[])],
    theta: FLUX_ROPE_THETA,
    guidanceEmbed: guidance,
  });
}

/** The tensors inferConfig reads, named per layout (before the layout's prefix). */
const SHAPE_SOURCES = {
  bfl: {
    imgIn: 'img_in.weight',
    txtIn: 'txt_in.weight',
    vecIn: 'vector_in.in_layer.weight',
    guidanceIn: 'guidance_in.in_layer.weight',
    finalLinear: 'final_layer.linear.weight',
    doubleBlock: 'double_blocks.',
    singleBlock: 'single_blocks.',
    doubleMlp: (i: number) => `double_blocks.${i}.img_mlp.0.weight`,
    doubleQueryNorm: (i: number) => `double_blocks.${i}.img_attn.norm.query_norm.scale`,
    singleQueryNorm: (i: number) => `single_blocks.${i}.norm.query_norm.scale`,
  },
  diffusers: {
    imgIn: 'x_embedder.weight',
    txtIn: 'context_embedder.weight',
    vecIn: 'time_text_embed.text_embedder.linear_1.weight',
    guidanceIn: 'time_text_embed.guidance_embedder.linear_1.weight',
    finalLinear: 'proj_out.weight',
    doubleBlock: 'transformer_blocks.',
    singleBlock: 'single_transformer_blocks.',
    doubleMlp: (i: number) => `transformer_blocks.${i}.ff.net.0.proj.weight`,
    doubleQueryNorm: (i: number) => `transformer_blocks.${i}.attn.norm_q.weight`,
    singleQueryNorm: (i: number) => `single_transformer_blocks.${i}.attn.norm_q.weight`,
  },
} as const;

/** FLUX.1 splits the head dim 16:56:56 over the (index, row, column) axes, i.e. 1/8 : 7/16 : 7/16. */
function fluxAxesFor(headDim: number): number[] {
  const first = headDim / 8;
  const rest = (headDim * 7) / 16;
  if (!Number.isInteger(first / 2) || !Number.isInteger(rest / 2)) {
    bad(`cannot derive RoPE axes for head dim ${headDim} (not a multiple of 32); provide a config.json`);
  }
  return [first, rest, rest];
}

/**
 * Derives the config from tensor shapes: depths by counting blocks, widths from the embedders, head dim
 * from the QK-norm scale, guidance from the presence of the guidance embedder. What shapes cannot tell is
 * FLUX.1's: theta 10000 and the 16:56:56 RoPE axes split (scaled to the head dim, so 128 gives [16, 56, 56]).
 */
export function inferConfig(tensors: readonly { name: string; shape: readonly number[] }[], layout: CheckpointLayout): FluxConfig {
  const keys = SHAPE_SOURCES[layout.kind];
  const shapes = new Map<string, readonly number[]>();
  for (const t of tensors) {
    if (t.name.startsWith(layout.prefix)) shapes.set(t.name.slice(layout.prefix.length), t.shape);
  }
  const shapeOf = (name: string, rank: number): readonly number[] => {
    const shape = shapes.get(name);
    if (!shape) bad(`checkpoint has no tensor "${layout.prefix}${name}" (needed to infer the model config)`);
    if (shape.length !== rank) bad(`tensor "${layout.prefix}${name}" has shape [${shape.join(', ')}], expected rank ${rank}`);
    return shape;
  };
  const blockCount = (prefix: string): number => {
    let count = 0;
    for (const name of shapes.keys()) {
      if (!name.startsWith(prefix)) continue;
      const index = Number(name.slice(prefix.length).split('.', 1)[0]);
      if (Number.isInteger(index)) count = Math.max(count, index + 1);
    }
    return count;
  };

  const [hiddenSize, inChannels] = shapeOf(keys.imgIn, 2) as [number, number];
  const depthDouble = blockCount(keys.doubleBlock);
  const depthSingle = blockCount(keys.singleBlock);
  const queryNorm = depthDouble > 0 ? keys.doubleQueryNorm(0) : depthSingle > 0 ? keys.singleQueryNorm(0) : undefined;
  const headDim = queryNorm ? shapeOf(queryNorm, 1)[0] : FLUX1_DEFAULTS.headDim;
  if (hiddenSize % headDim !== 0) bad(`hidden size ${hiddenSize} is not a multiple of the head dim ${headDim}`);
  // Single blocks fuse the MLP into other layers in the BFL layout; the double-block MLP states it plainly.
  const mlpHidden = depthDouble > 0 ? shapeOf(keys.doubleMlp(0), 2)[0] : hiddenSize * FLUX_MLP_RATIO;
  return validateConfig({
    hiddenSize,
    numHeads: hiddenSize / headDim,
    headDim,
    mlpHidden,
    depthDouble,
    depthSingle,
    inChannels,
    outChannels: shapeOf(keys.finalLinear, 2)[0],
    contextDim: shapeOf(keys.txtIn, 2)[1],
    vecDim: shapeOf(keys.vecIn, 2)[1],
    axesDim: fluxAxesFor(headDim),
    theta: FLUX_ROPE_THETA,
    guidanceEmbed: shapes.has(keys.guidanceIn),
  });
}

function bad(message: string): never {
  throw new FluxError('bad-format', message);
}
