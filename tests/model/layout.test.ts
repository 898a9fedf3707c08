import { beforeAll, describe, expect, it } from 'vitest';
import { FluxError } from '../../src/errors.ts';
import { configFromDiffusers, type FluxConfig } from '../../src/model/config.ts';
import { buildWeightPlan, canonicalLinears, canonicalNormScales, detectLayout, sliceByteRange, type CheckpointTensor } from '../../src/model/layout.ts';
import { BFL_TRANSFORMER, DIFFUSERS_TRANSFORMER, loadPlanned, openSafetensors, readConfigJson, tensorList, type PlannedCheckpoint } from './helpers.ts';

let config: FluxConfig;
let bflTensors: CheckpointTensor[];
let bfl: PlannedCheckpoint;
let diffusers: PlannedCheckpoint;

beforeAll(async () => {
  config = configFromDiffusers(await readConfigJson());
  const file = await openSafetensors(BFL_TRANSFORMER);
  bflTensors = tensorList(file);
  await file.close();
  bfl = await loadPlanned(BFL_TRANSFORMER, config);
  diffusers = await loadPlanned(DIFFUSERS_TRANSFORMER, config);
});

/** The FluxError a call throws. */
function fluxErrorOf(fn: () => unknown): FluxError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FluxError);
    return e as FluxError;
  }
  throw new Error('expected a FluxError');
}

describe('detectLayout', () => {
  it('tells the reference layout, with or without the full-pipeline prefix, from diffusers', () => {
    expect(detectLayout(['img_in.weight', 'double_blocks.0.img_attn.qkv.weight'])).toEqual({ kind: 'bfl', prefix: '' });
    expect(detectLayout(['model.diffusion_model.img_in.weight'])).toEqual({ kind: 'bfl', prefix: 'model.diffusion_model.' });
    expect(detectLayout(['x_embedder.weight', 'transformer_blocks.0.attn.to_q.weight'])).toEqual({ kind: 'diffusers', prefix: '' });
  });

  it('rejects files that are neither, or both', () => {
    expect(fluxErrorOf(() => detectLayout(['encoder.block.0.layer.0.SelfAttention.q.weight'])).code).toBe('bad-format');
    expect(fluxErrorOf(() => detectLayout(['img_in.weight', 'x_embedder.weight'])).message).toMatch(/mixes key layouts/);
  });
});

describe('buildWeightPlan on flux-tiny-a', () => {
  it('plans the same canonical parameters from both layouts', () => {
    expect(bfl.plan.layout.kind).toBe('bfl');
    expect(diffusers.plan.layout.kind).toBe('diffusers');
    const names = [...bfl.plan.params.keys()];
    expect([...diffusers.plan.params.keys()]).toEqual(names);
    const linears = canonicalLinears(config).flatMap((l) => [`${l.name}.weight`, `${l.name}.bias`]);
    expect(new Set(names)).toEqual(new Set([...linears, ...canonicalNormScales(config)]));
    for (const name of names) expect(bfl.plan.params.get(name)!.shape).toEqual(diffusers.plan.params.get(name)!.shape);
  });

  it('slices fused BFL tensors by rows', () => {
    const h = config.hiddenSize;
    const toK = bfl.plan.params.get('transformer_blocks.1.attn.add_k_proj.weight')!;
    expect(toK.shape).toEqual([h, h]);
    expect(toK.slices).toEqual([
      { sourceName: 'double_blocks.1.txt_attn.qkv.weight', dtype: 'BF16', sourceShape: [3 * h, h], rowStart: h, rowEnd: 2 * h },
    ]);
    const mlp = bfl.plan.params.get('single_transformer_blocks.3.proj_mlp.bias')!;
    expect(mlp.slices).toEqual([
      { sourceName: 'single_blocks.3.linear1.bias', dtype: 'BF16', sourceShape: [3 * h + config.mlpHidden], rowStart: 3 * h, rowEnd: 3 * h + config.mlpHidden },
    ]);
    expect(sliceByteRange(toK.slices[0]!)).toEqual({ byteOffset: h * h * 2, byteLength: h * h * 2 });
  });

  it('puts the final modulation in shift-then-scale order, swapping the diffusers halves', () => {
    const h = config.hiddenSize;
    expect(bfl.plan.params.get('norm_out.linear.weight')!.slices.map((s) => [s.sourceName, s.rowStart, s.rowEnd])).toEqual([
      ['final_layer.adaLN_modulation.1.weight', 0, 2 * h],
    ]);
    expect(diffusers.plan.params.get('norm_out.linear.weight')!.slices.map((s) => [s.sourceName, s.rowStart, s.rowEnd])).toEqual([
      ['norm_out.linear.weight', h, 2 * h],
      ['norm_out.linear.weight', 0, h],
    ]);
  });

  it('yields byte-identical canonical tensors from both files', () => {
    for (const name of bfl.plan.params.keys()) {
      const a = bfl.bytes(name);
      expect(a.length, name).toBe(bfl.plan.params.get(name)!.shape.reduce((x, y) => x * y, 1) * 2);
      expect(Buffer.from(diffusers.bytes(name)).equals(Buffer.from(a)), name).toBe(true);
    }
  });

  it('accepts the reference layout under the model.diffusion_model. prefix', () => {
    const prefixed = bflTensors.map((t) => ({ ...t, name: `model.diffusion_model.${t.name}` }));
    const plan = buildWeightPlan(prefixed, config);
    expect(plan.layout.prefix).toBe('model.diffusion_model.');
    expect(plan.params.get('x_embedder.weight')!.slices[0]!.sourceName).toBe('model.diffusion_model.img_in.weight');
  });
});

describe('buildWeightPlan errors', () => {
  it('names a missing tensor', () => {
    const tensors = bflTensors.filter((t) => t.name !== 'single_blocks.2.linear1.weight');
    const error = fluxErrorOf(() => buildWeightPlan(tensors, config));
    expect(error.code).toBe('bad-format');
    expect(error.message).toContain('"single_blocks.2.linear1.weight"');
    expect(error.message).toMatch(/missing/);
  });

  it('names a tensor the plan does not use', () => {
    const tensors = [...bflTensors, { name: 'double_blocks.0.img_attn.extra.weight', dtype: 'BF16', shape: [4] }];
    const error = fluxErrorOf(() => buildWeightPlan(tensors, config));
    expect(error.code).toBe('bad-format');
    expect(error.message).toContain('unexpected tensor "double_blocks.0.img_attn.extra.weight"');
  });

  it('reports the blocks of a deeper file as unexpected tensors', () => {
    const shallower: FluxConfig = { ...config, depthSingle: config.depthSingle - 1 };
    expect(fluxErrorOf(() => buildWeightPlan(bflTensors, shallower)).message).toMatch(/unexpected tensor "single_blocks\.3\./);
  });

  it('names a misshapen tensor with the expected and actual shapes', () => {
    const tensors = bflTensors.map((t) => (t.name === 'double_blocks.1.img_attn.qkv.weight' ? { ...t, shape: [512, 256] } : t));
    const error = fluxErrorOf(() => buildWeightPlan(tensors, config));
    expect(error.code).toBe('bad-shape');
    expect(error.message).toBe('tensor "double_blocks.1.img_attn.qkv.weight" has shape [512, 256], expected [768, 256]');
  });

  it('rejects non-float dtypes', () => {
    const tensors = bflTensors.map((t) => (t.name === 'txt_in.weight' ? { ...t, dtype: 'I8' } : t));
    const error = fluxErrorOf(() => buildWeightPlan(tensors, config));
    expect(error.code).toBe('unsupported-dtype');
    expect(error.message).toContain('"txt_in.weight"');
  });

  it('requires the guidance embedder of a guidance-distilled config', () => {
    const tensors = bflTensors.filter((t) => !t.name.startsWith('guidance_in.'));
    expect(fluxErrorOf(() => buildWeightPlan(tensors, config)).message).toContain('"guidance_in.in_layer.weight"');
    expect(buildWeightPlan(tensors, { ...config, guidanceEmbed: false }).params.has('time_text_embed.guidance_embedder.linear_1.weight')).toBe(false);
  });
});
