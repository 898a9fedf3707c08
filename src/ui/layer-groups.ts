/**
 * The demo's INT4/INT8 toggles: block linears grouped by role (as docs/convrot.md discusses their
 * sensitivity), each applied over a range of blocks of its kind.
 */
import type { LayerPrecision } from '../model/precision.ts';

export type BlockKind = 'double' | 'single';

export interface LayerGroup {
  /** Stable id, used in `data-testid="int8-toggle-<id>"`. */
  readonly id: string;
  readonly label: string;
  readonly kind: BlockKind;
  /** Layer names inside one block (after `transformer_blocks.<i>.` or `single_transformer_blocks.<i>.`). */
  readonly suffixes: readonly string[];
}

const BLOCK_PREFIX: Readonly<Record<BlockKind, string>> = { double: 'transformer_blocks.', single: 'single_transformer_blocks.' };

export const LAYER_GROUPS: readonly LayerGroup[] = [
  {
    id: 'qkv',
    label: 'Attention q/k/v (double blocks, image and text)',
    kind: 'double',
    suffixes: ['attn.to_q', 'attn.to_k', 'attn.to_v', 'attn.add_q_proj', 'attn.add_k_proj', 'attn.add_v_proj'],
  },
  { id: 'attn-out', label: 'Attention out (double blocks)', kind: 'double', suffixes: ['attn.to_out.0', 'attn.to_add_out'] },
  { id: 'mlp-up', label: 'MLP up (double blocks)', kind: 'double', suffixes: ['ff.net.0.proj', 'ff_context.net.0.proj'] },
  { id: 'mlp-down', label: 'MLP down (double blocks)', kind: 'double', suffixes: ['ff.net.2', 'ff_context.net.2'] },
  { id: 'single-in', label: 'Single-block fused in (q/k/v + MLP up)', kind: 'single', suffixes: ['attn.to_q', 'attn.to_k', 'attn.to_v', 'proj_mlp'] },
  { id: 'single-out', label: 'Single-block out (attention + MLP)', kind: 'single', suffixes: ['proj_out'] },
];

/** Number of blocks of `kind` among the layer names (highest block index + 1). */
export function blockCount(names: Iterable<string>, kind: BlockKind): number {
  const prefix = BLOCK_PREFIX[kind];
  let count = 0;
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    count = Math.max(count, Number.parseInt(name.slice(prefix.length), 10) + 1);
  }
  return count;
}

/** The group's layer names in blocks `first`..`last` (inclusive), those that exist among `names`. */
export function groupLayers(group: LayerGroup, names: ReadonlySet<string> | ReadonlyMap<string, unknown>, first: number, last: number): string[] {
  const out: string[] = [];
  for (let block = first; block <= last; block++) {
    for (const suffix of group.suffixes) {
      const name = `${BLOCK_PREFIX[group.kind]}${block}.${suffix}`;
      if (names.has(name)) out.push(name);
    }
  }
  return out;
}

/** What a group's layers are at: one precision, or 'mixed' when they differ (a tri-state toggle). */
export function groupPrecision(precisions: readonly LayerPrecision[]): LayerPrecision | 'mixed' | undefined {
  const kinds = new Set(precisions);
  if (kinds.size === 0) return undefined;
  return kinds.size === 1 ? precisions[0] : 'mixed';
}
