/**
 * Decoder tensor names in the two checkpoint layouts: the reference `ae.safetensors` (`decoder.up.{L}` with
 * level 0 at full resolution, attention as 1×1 convs) and diffusers' `vae/` (`decoder.up_blocks.{j}` in
 * execution order, j = levels − 1 − L, attention as linears, legacy attention names accepted).
 */
import { FluxError } from '../../errors.ts';
import type { TensorReader } from '../../weights/safetensors.ts';

export type VaeLayout = 'bfl' | 'diffusers';

/** Names of one resnet's tensors, without the `.weight` / `.bias` suffix. */
export interface ResnetNames {
  readonly norm1: string;
  readonly conv1: string;
  readonly norm2: string;
  readonly conv2: string;
  /** 1×1 conv on the skip path; present only where channels change. */
  readonly shortcut: string;
}

export interface AttentionNames {
  readonly norm: string;
  readonly q: string;
  readonly k: string;
  readonly v: string;
  readonly out: string;
}

export interface DecoderNames {
  readonly convIn: string;
  readonly midResnets: readonly [ResnetNames, ResnetNames];
  readonly midAttention: AttentionNames;
  /** levels[L].resnets in execution order; levels[L].upsample for L > 0. Level 0 is full resolution. */
  readonly levels: readonly { readonly resnets: readonly ResnetNames[]; readonly upsample?: string }[];
  readonly normOut: string;
  readonly convOut: string;
}

const PROBES: Readonly<Record<VaeLayout, string>> = {
  bfl: 'decoder.mid.block_1.conv1.weight',
  diffusers: 'decoder.mid_block.resnets.0.conv1.weight',
};

export function detectVaeLayout(reader: TensorReader): VaeLayout {
  for (const [layout, probe] of Object.entries(PROBES) as [VaeLayout, string][]) if (reader.has(probe)) return layout;
  throw new FluxError('bad-format', `${reader.name}: not a FLUX autoencoder (no ${PROBES.bfl} or ${PROBES.diffusers})`);
}

function resnet(prefix: string, shortcut: string): ResnetNames {
  return { norm1: `${prefix}.norm1`, conv1: `${prefix}.conv1`, norm2: `${prefix}.norm2`, conv2: `${prefix}.conv2`, shortcut: `${prefix}.${shortcut}` };
}

export function decoderNames(layout: VaeLayout, levels: number, resnetsPerLevel: number, reader: TensorReader): DecoderNames {
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  if (layout === 'bfl') {
    return {
      convIn: 'decoder.conv_in',
      midResnets: [resnet('decoder.mid.block_1', 'nin_shortcut'), resnet('decoder.mid.block_2', 'nin_shortcut')],
      midAttention: { norm: 'decoder.mid.attn_1.norm', q: 'decoder.mid.attn_1.q', k: 'decoder.mid.attn_1.k', v: 'decoder.mid.attn_1.v', out: 'decoder.mid.attn_1.proj_out' },
      levels: range(levels).map((L) => ({
        resnets: range(resnetsPerLevel).map((i) => resnet(`decoder.up.${L}.block.${i}`, 'nin_shortcut')),
        upsample: L > 0 ? `decoder.up.${L}.upsample.conv` : undefined,
      })),
      normOut: 'decoder.norm_out',
      convOut: 'decoder.conv_out',
    };
  }
  const attn = 'decoder.mid_block.attentions.0';
  const legacy = reader.has(`${attn}.query.weight`);
  return {
    convIn: 'decoder.conv_in',
    midResnets: [resnet('decoder.mid_block.resnets.0', 'conv_shortcut'), resnet('decoder.mid_block.resnets.1', 'conv_shortcut')],
    midAttention: legacy
      ? { norm: `${attn}.group_norm`, q: `${attn}.query`, k: `${attn}.key`, v: `${attn}.value`, out: `${attn}.proj_attn` }
      : { norm: `${attn}.group_norm`, q: `${attn}.to_q`, k: `${attn}.to_k`, v: `${attn}.to_v`, out: `${attn}.to_out.0` },
    levels: range(levels).map((L) => {
      const j = levels - 1 - L;
      return {
        resnets: range(resnetsPerLevel).map((i) => resnet(`decoder.up_blocks.${j}.resnets.${i}`, 'conv_shortcut')),
        upsample: L > 0 ? `decoder.up_blocks.${j}.upsamplers.0.conv` : undefined,
      };
    }),
    normOut: 'decoder.conv_norm_out',
    convOut: 'decoder.conv_out',
  };
}
