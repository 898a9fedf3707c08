/** The arguments of one transformer call, named as the reference `Flux.forward` (batch 1), and their checks. */
import { FluxError } from '../errors.ts';
import type { FluxConfig } from './config.ts';

export interface FluxInputs {
  /** Packed latent tokens [imgTokens, inChannels]. */
  readonly img: Float32Array;
  /** Position ids [imgTokens, axes]: (0, row, column). */
  readonly imgIds: Float32Array;
  /** T5 hidden states [txtTokens, contextDim]. */
  readonly txt: Float32Array;
  /** Position ids [txtTokens, axes]: zeros for FLUX.1. */
  readonly txtIds: Float32Array;
  /** Time in [0, 1] (1 = pure noise). */
  readonly timestep: number;
  /** CLIP pooled vector [vecDim]. */
  readonly y: Float32Array;
  /** Guidance scale; required by guidance-distilled models, ignored otherwise. */
  readonly guidance?: number;
}

/** Token counts of valid inputs; throws a FluxError naming the input whose size does not fit the config. */
export function checkFluxInputs(config: FluxConfig, inputs: FluxInputs): { imgTokens: number; txtTokens: number } {
  const axes = config.axesDim.length;
  const tokens = (data: Float32Array, width: number, what: string): number => {
    if (data.length % width !== 0) throw new FluxError('bad-shape', `${what}: ${data.length} values is not a whole number of ${width}-wide tokens`);
    return data.length / width;
  };
  const imgTokens = tokens(inputs.img, config.inChannels, 'img');
  if (imgTokens === 0) throw new FluxError('bad-shape', 'img: no image tokens');
  const txtTokens = tokens(inputs.txt, config.contextDim, 'txt');
  if (inputs.imgIds.length !== imgTokens * axes) throw new FluxError('bad-shape', `img_ids: expected [${imgTokens}, ${axes}], got ${inputs.imgIds.length} values`);
  if (inputs.txtIds.length !== txtTokens * axes) throw new FluxError('bad-shape', `txt_ids: expected [${txtTokens}, ${axes}], got ${inputs.txtIds.length} values`);
  if (inputs.y.length !== config.vecDim) throw new FluxError('bad-shape', `y: expected ${config.vecDim} values, got ${inputs.y.length}`);
  if (config.guidanceEmbed && inputs.guidance === undefined) {
    throw new FluxError('bad-argument', 'guidance is required: this model is guidance-distilled (dev)');
  }
  return { imgTokens, txtTokens };
}
