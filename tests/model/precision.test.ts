import { describe, expect, it } from 'vitest';
import { FluxError } from '../../src/errors.ts';
import { FLUX1_DEFAULTS, type FluxConfig } from '../../src/model/config.ts';
import { canonicalLinears } from '../../src/model/layout.ts';
import { textQuantPlan } from '../../src/model/text-precision.ts';
import { blockLinearNames, decodePrecisionMap, DEFAULT_GROUP_SIZE, encodePrecisionMap, globMatch, makeQuantPlan, presetPrecisions } from '../../src/model/precision.ts';

const TINY: FluxConfig = { ...FLUX1_DEFAULTS, hiddenSize: 256, numHeads: 4, headDim: 64, mlpHidden: 1024, depthDouble: 2, depthSingle: 4, axesDim: [8, 28, 28] };
const ALWAYS_FLOAT = [
  'x_embedder',
  'context_embedder',
  'time_text_embed.timestep_embedder.linear_1',
  'time_text_embed.guidance_embedder.linear_2',
  'time_text_embed.text_embedder.linear_1',
  'proj_out',
];
const MODULATION = ['transformer_blocks.0.norm1.linear', 'transformer_blocks.1.norm1_context.linear', 'single_transformer_blocks.3.norm.linear', 'norm_out.linear'];

describe('blockLinearNames', () => {
  it('lists 12 linears per double block and 5 per single block, without modulation', () => {
    const names = blockLinearNames(FLUX1_DEFAULTS);
    expect(names.length).toBe(19 * 12 + 38 * 5);
    expect(names.slice(0, 6)).toEqual([
      'transformer_blocks.0.attn.to_q',
      'transformer_blocks.0.attn.to_k',
      'transformer_blocks.0.attn.to_v',
      'transformer_blocks.0.attn.to_out.0',
      'transformer_blocks.0.ff.net.0.proj',
      'transformer_blocks.0.ff.net.2',
    ]);
    expect(names).toContain('transformer_blocks.18.ff_context.net.2');
    expect(names).toContain('single_transformer_blocks.37.proj_out');
    expect(names.some((n) => n.includes('norm'))).toBe(false);
  });
});

describe('globMatch', () => {
  it('anchors the pattern and lets * span dots', () => {
    expect(globMatch('transformer_blocks.*.ff.net.2', 'transformer_blocks.12.ff.net.2')).toBe(true);
    expect(globMatch('transformer_blocks.*.ff.net.2', 'single_transformer_blocks.1.ff.net.2')).toBe(false);
    expect(globMatch('transformer_blocks.*.ff.net.2', 'transformer_blocks.1.ff.net.20')).toBe(false);
    expect(globMatch('*.attn.to_v', 'single_transformer_blocks.0.attn.to_v')).toBe(true);
    expect(globMatch('transformer_blocks.1.attn.to_q', 'transformer_blocks.1xattn.to_q')).toBe(false);
  });
});

describe('presets', () => {
  it('keeps embedders and the final projection float in every preset', () => {
    for (const preset of ['float', 'w8a8', 'w4a4', 'mixed'] as const) {
      const layers = presetPrecisions(preset, TINY);
      expect([...layers.keys()]).toEqual(canonicalLinears(TINY).map((l) => l.name));
      for (const name of ALWAYS_FLOAT) expect(layers.get(name), `${preset} ${name}`).toBe('float');
    }
  });

  it('gives the modulation linears float / INT8 / INT4 / INT8 under float / w8a8 / w4a4 / mixed; `modulation` overrides', () => {
    const expected = { float: 'float', w8a8: 'int8', w4a4: 'int4', mixed: 'int8' } as const;
    for (const [preset, precision] of Object.entries(expected) as [keyof typeof expected, string][]) {
      const layers = presetPrecisions(preset, TINY);
      for (const name of MODULATION) expect(layers.get(name), `${preset} ${name}`).toBe(precision);
    }
    const plan = makeQuantPlan(TINY, { preset: 'w4a4', modulation: 'float' });
    for (const name of MODULATION) expect(plan.layers.get(name)).toBe('float');
    expect(plan.layers.get('transformer_blocks.0.attn.to_q')).toBe('int4');
  });

  it('quantizes every block linear at the preset precision', () => {
    const blocks = blockLinearNames(TINY);
    const expectAll = (preset: 'float' | 'fp32' | 'w8a8' | 'w4a4', precision: string) => {
      const layers = presetPrecisions(preset, TINY);
      for (const name of blocks) expect(layers.get(name)).toBe(precision);
    };
    expectAll('float', 'float');
    // The preset's old name (it keeps bf16 weights bf16, so 'fp32' misnamed it) still works.
    expectAll('fp32', 'float');
    expectAll('w8a8', 'int8');
    expectAll('w4a4', 'int4');
    expect(textQuantPlan(['a.linear'], 'fp32', 'text').layers.get('a.linear')).toBe('float');
    expect(() => presetPrecisions('fp16' as 'float', TINY)).toThrow(/must be one of float, w8a8, w4a4, mixed/);
  });

  it('mixed keeps double to_out.0, single to_v and single proj_out at INT8', () => {
    const layers = presetPrecisions('mixed', TINY);
    const int8 = blockLinearNames(TINY).filter((n) => layers.get(n) === 'int8');
    expect(int8).toEqual([
      'transformer_blocks.0.attn.to_out.0',
      'transformer_blocks.1.attn.to_out.0',
      ...[0, 1, 2, 3].flatMap((i) => [`single_transformer_blocks.${i}.attn.to_v`, `single_transformer_blocks.${i}.proj_out`]),
    ]);
    expect(layers.get('transformer_blocks.0.attn.to_add_out')).toBe('int4');
    expect(layers.get('transformer_blocks.0.attn.to_v')).toBe('int4');
  });
});

describe('makeQuantPlan', () => {
  it('defaults to regular rotation in groups of 256', () => {
    const plan = makeQuantPlan(TINY, { preset: 'w4a4' });
    expect(plan.rotation).toBe('regular');
    expect(plan.groupSize).toBe(DEFAULT_GROUP_SIZE);
  });

  it('applies glob overrides in order to block linears only', () => {
    const plan = makeQuantPlan(TINY, {
      preset: 'w4a4',
      overrides: [
        { pattern: 'transformer_blocks.*.ff.net.2', precision: 'int8' },
        { pattern: '*', precision: 'int8' },
        { pattern: 'single_transformer_blocks.3.*', precision: 'float' },
      ],
    });
    expect(plan.layers.get('transformer_blocks.1.ff.net.2')).toBe('int8');
    expect(plan.layers.get('transformer_blocks.0.attn.to_q')).toBe('int8');
    expect(plan.layers.get('single_transformer_blocks.3.proj_mlp')).toBe('float');
    // `*` reaches the modulation linears but not the always-float layers.
    expect(plan.layers.get('transformer_blocks.0.norm1.linear')).toBe('int8');
    expect(plan.layers.get('x_embedder')).toBe('float');
  });

  it('rejects a pattern that matches no block linear, and invalid group sizes', () => {
    const error = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        expect(e).toBeInstanceOf(FluxError);
        return (e as FluxError).code;
      }
      throw new Error('expected a FluxError');
    };
    expect(error(() => makeQuantPlan(TINY, { preset: 'w4a4', overrides: [{ pattern: 'x_embedder', precision: 'int8' }] }))).toBe('bad-argument');
    expect(error(() => makeQuantPlan(TINY, { preset: 'w4a4', groupSize: 128 }))).toBe('bad-argument');
    expect(makeQuantPlan(TINY, { preset: 'w4a4', rotation: 'sylvester', groupSize: 128 }).groupSize).toBe(128);
    expect(error(() => makeQuantPlan(TINY, { preset: 'w4a4', rotation: 'sylvester', groupSize: 96 }))).toBe('bad-argument');
  });

  it('takes a whole precision map with low-rank ranks, and saves and reads it as JSON', () => {
    const names = blockLinearNames(TINY);
    const map = new Map(names.map((n, i) => [n, i % 4 === 0 ? ('int8' as const) : ('int4' as const)]));
    const ranks = new Map([[names[1]!, 8], [names[2]!, 0]]);
    const plan = makeQuantPlan(TINY, { preset: map, ranks, rotation: 'sylvester', groupSize: 64 });
    expect(plan.layers.get(names[0]!)).toBe('int8');
    expect(plan.layers.get('x_embedder')).toBe('float');
    const read = decodePrecisionMap(JSON.parse(encodePrecisionMap(plan, TINY, 'test')), 'map.json');
    const again = makeQuantPlan(TINY, read);
    expect(again.layers).toEqual(plan.layers);
    expect(again.ranks).toEqual(new Map([[names[1]!, 8]]));
    expect([again.rotation, again.groupSize]).toEqual(['sylvester', 64]);
    // Quantizing an always-float layer, a rank on a float layer or past the matrix size, a foreign file.
    expect(() => makeQuantPlan(TINY, { preset: new Map([['x_embedder', 'int4']]) })).toThrow(/not a block or modulation linear/);
    expect(() => makeQuantPlan(TINY, { preset: 'float', ranks: new Map([[names[0]!, 4]]) })).toThrow(/float/);
    expect(() => makeQuantPlan(TINY, { preset: 'w4a4', ranks: new Map([[names[0]!, 1e6]]) })).toThrow(/rank/);
    expect(() => decodePrecisionMap({ layers: {} }, 'x.json')).toThrow(/not a precision map/);
  });
});
