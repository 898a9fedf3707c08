import { describe, expect, it } from 'vitest';
import { canonicalLinears } from '../../src/model/layout.ts';
import { configFromDiffusers } from '../../src/model/config.ts';
import { blockLinearNames } from '../../src/model/precision.ts';
import { blockCount, groupLayers, groupPrecision, LAYER_GROUPS } from '../../src/ui/layer-groups.ts';
import demoConfig from '../../public/models/flux-demo/transformer/config.json' with { type: 'json' };

const config = configFromDiffusers(demoConfig);
const names = new Set(canonicalLinears(config).map((l) => l.name));

describe('demo layer groups', () => {
  it('cover every block linear exactly once, and nothing else', () => {
    const grouped = LAYER_GROUPS.flatMap((g) => groupLayers(g, names, 0, blockCount(names, g.kind) - 1));
    expect([...grouped].sort()).toEqual(blockLinearNames(config).sort());
    expect(new Set(grouped).size).toBe(grouped.length);
  });

  it('select a block range of one kind', () => {
    expect(blockCount(names, 'double')).toBe(2);
    expect(blockCount(names, 'single')).toBe(2);
    const singleOut = LAYER_GROUPS.find((g) => g.id === 'single-out')!;
    expect(groupLayers(singleOut, names, 1, 1)).toEqual(['single_transformer_blocks.1.proj_out']);
    const mlpDown = LAYER_GROUPS.find((g) => g.id === 'mlp-down')!;
    expect(groupLayers(mlpDown, names, 0, 0)).toEqual(['transformer_blocks.0.ff.net.2', 'transformer_blocks.0.ff_context.net.2']);
  });

  it('summarise a group as one precision or mixed', () => {
    expect(groupPrecision(['int8', 'int8'])).toBe('int8');
    expect(groupPrecision(['int8', 'int4'])).toBe('mixed');
    expect(groupPrecision([])).toBeUndefined();
  });
});
